"""Scoring speed: time per stage, volumes per second and peak memory, on CPU (or GPU when asked).

Usage:
    python bench/score_speed.py [--data DIR] [--n 40] [--batch 1] [--device cpu] [--threads 2]

DIR is any folder of masks (e.g. ../shared/data/acdc-dev/predictions/tiramisu); without it, synthetic
phantoms are written to a temporary folder first. Prints one line per stage (mean and median seconds
per volume) and the end-to-end figures. The first batch is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _files(data: Path | None, n: int) -> list[Path]:
    if data is not None:
        files = sorted([*data.rglob("*.nii.gz"), *data.rglob("*.nii")])
        return files[:n]
    from monitor.synthetic import write_dataset

    out = Path(tempfile.mkdtemp(prefix="cmr-bench-"))
    write_dataset(out, patients=max(1, (n + 1) // 2), seed=0)
    return sorted((out / "gt").rglob("*_gt.nii.gz"))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--batch", type=int, default=1, help="volumes per Scorer.score_batch call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from monitor.nifti import load_mask
    from monitor.scoring import Scorer

    files = _files(args.data, args.n)
    if not files:
        sys.exit("no masks found")
    scorer = Scorer(args.checkpoint, device=args.device, threads=args.threads)
    print(
        f"{len(files)} volumes, batch {args.batch}, device {scorer.device}, torch threads {torch.get_num_threads()}"
    )
    # warm-up
    scorer.score_batch([load_mask(files[0])])

    stages: dict[str, list[float]] = {
        "load": [],
        "preprocess": [],
        "model": [],
        "postprocess": [],
        "metrics": [],
    }
    totals: list[float] = []
    slices = 0
    began = time.perf_counter()
    for start in range(0, len(files), args.batch):
        chunk = files[start : start + args.batch]
        t0 = time.perf_counter()
        volumes = [load_mask(f) for f in chunk]
        t_load = (time.perf_counter() - t0) / len(chunk)
        results = scorer.score_batch(volumes)
        elapsed = (time.perf_counter() - t0) / len(chunk)
        for result in results:
            stages["load"].append(t_load)
            for key in ("preprocess", "model", "postprocess", "metrics"):
                stages[key].append(result.score.timings_s[key])
            slices += result.score.slices_scored
            totals.append(elapsed)
    wall = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'stage':<12} {'mean s/vol':>10} {'median':>10}")
    for key, values in stages.items():
        print(f"{key:<12} {statistics.fmean(values):>10.4f} {statistics.median(values):>10.4f}")
    print(f"{'end-to-end':<12} {statistics.fmean(totals):>10.4f} {statistics.median(totals):>10.4f}")
    print(
        f"volumes/s: {len(files) / wall:.2f}   slices/volume: {slices / len(files):.1f}   peak RSS: {peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
