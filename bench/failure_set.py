"""Build the failure set from the dev ground truth: every family of ``monitor.sim.failures``, graded.

Usage:
    python bench/failure_set.py --out /tmp/failure-set [--data ../shared/data/acdc-dev] [--patients 20]
        [--families missing_basal swapped_slices ...] [--seed 0]

Reads only ``<data>/gt`` (the ground truth; never predictions or other data) and writes, under
``--out``, one folder per family and strength laid out like a segmenter's predictions, each with a
``metrics.csv`` of the real DSC/HD (mm) of every edited volume against its ground truth, and the
manifest ``families.json``. Then evaluate it (images paired from the GT folder):

    cmr-monitor evaluate --gt <data>/gt --families /tmp/failure-set/families.json --out /tmp/report

Prints, per set: volumes written, volumes the edit could not be made on, mean real DSC per structure
and the median of the worst structure's HD (mm). Deterministic for a seed. Do not commit the output.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_DEFAULT_DATA = _REPO.parent / "shared" / "data" / "acdc-dev"


def _float(text: str) -> float:
    return float(text) if text else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=_DEFAULT_DATA, help="the acdc-dev tree (its gt/ is read)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (not under the repository)")
    parser.add_argument("--patients", type=int, default=None, help="first N patients only (both phases)")
    parser.add_argument("--families", nargs="+", default=None, help="family names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sys.path.insert(0, str(_REPO))
    from monitor.evaluation.pairing import ground_truth_files
    from monitor.sim.failure_set import write_failure_set

    gt_dir = args.data / "gt"
    cases = None
    if args.patients is not None:
        keys = ground_truth_files(gt_dir)
        patients = sorted({k.split("_")[0] for k in keys})[: args.patients]
        cases = [k for k in keys if k.split("_")[0] in patients]
    started = time.perf_counter()
    summary = write_failure_set(
        gt_dir,
        args.out,
        families=args.families,
        cases=cases,
        seed=args.seed,
        progress=lambda name, done, total: print(f"[{done}/{total}] {name}", file=sys.stderr, flush=True),
    )
    print(f"failure set from {gt_dir}: {len(summary.sets)} sets in {time.perf_counter() - started:.0f} s")
    print(f"manifest: {summary.manifest}")
    print()
    print(
        "| set | clearly wrong | volumes | not applicable | DSC LV | DSC RV | DSC MYO | worst HD mm (median) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for s in summary.sets:
        with (s.folder / "metrics.csv").open() as handle:
            rows = list(csv.DictReader(handle))

        def mean(column: str, rows: list[dict[str, str]] = rows) -> str:
            values = [v for r in rows if (v := _float(r[column])) == v]
            return f"{statistics.fmean(values):.3f}" if values else "–"

        worst = [
            max(v for k in ("hd_lv_mm", "hd_rv_mm", "hd_myo_mm") if (v := _float(r[k])) == v) for r in rows
        ]
        hd = f"{statistics.median(worst):.1f}" if worst else "–"
        print(
            f"| {s.name} | {'yes' if s.clearly_wrong else ''} | {s.n_volumes} | {s.not_applicable} | "
            f"{mean('dice_lv')} | {mean('dice_rv')} | {mean('dice_myo')} | {hd} |"
        )


if __name__ == "__main__":
    main()
