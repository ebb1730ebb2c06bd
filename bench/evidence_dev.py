"""The evidence stage on real segmentations: plain vs refined pseudo metrics, flags, ground-truth alarms.

Usage:
    python bench/evidence_dev.py [--data ../shared/data/acdc-dev] [--no-images] [--pgt-cache DIR]

Scores every prediction of every segmenter in an acdc-dev-layout folder (``predictions/<segmenter>/
metrics.csv`` names each file and its ground truth) and every ground truth, with the shipped
checkpoint, each with its MR image (``gt/patientNNN/patientNNN_frameFF.nii.gz``) unless ``--no-images``.
``--pgt-cache`` keeps each pGT as ``.npy`` so that a rerun skips the autoencoder; ``--dump`` writes
every structure row with its check values as JSON (for choosing tolerances).

Prints, per structure (LV, RV, MYO):

- Pearson r between the real HD (mm, prediction vs ground truth) and the plain pHD (the paper's), and
  the refined pHD (``phd_mm_3d``); the same for DSC vs pDSC; pairs with a nan on either side dropped;
- flag quality against real failures (real DSC < 0.5 or HD > 50 mm, as in docs/evaluation.md), per
  structure row over the six segmenters: precision and recall of ``flag != ok``, the paper's flags
  (``evidence=None``) beside the new ones;
- ground-truth volumes with any flag (the false-alarm rate), and the reason codes behind every flag on
  rows that are not real failures (what the false alarms are made of).
"""

from __future__ import annotations

import argparse
import collections
import csv
import math
from pathlib import Path

import numpy as np


def _jobs(data: Path) -> list[tuple[str, str, Path, Path]]:
    """(segmenter, key, mask path, ground-truth path); the ground truths as segmenter ``ground_truth``."""
    jobs, seen = [], set()
    for folder in sorted((data / "predictions").iterdir()):
        with (folder / "metrics.csv").open() as handle:
            for row in csv.DictReader(handle):
                key = f"{row['patient']}_{row['phase']}"
                gt = data / "gt" / row["gt_file"]
                jobs.append((folder.name, key, folder / row["pred_file"], gt))
                if key not in seen:
                    seen.add(key)
                    jobs.append(("ground_truth", key, gt, gt))
    return jobs


def _pearson(x: list[float], y: list[float]) -> tuple[float, int]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return math.nan, int(keep.sum())
    return float(np.corrcoef(a[keep], b[keep])[0, 1]), int(keep.sum())


def _pr(flagged: list[bool], failed: list[bool]) -> str:
    f, r = np.asarray(flagged), np.asarray(failed)
    tp = int((f & r).sum())
    precision = tp / f.sum() if f.sum() else math.nan
    recall = tp / r.sum() if r.sum() else math.nan
    return f"P {precision:.3f} R {recall:.3f} (tp {tp}, flagged {int(f.sum())}, failures {int(r.sum())})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/acdc-dev"))
    parser.add_argument("--no-images", action="store_true")
    parser.add_argument("--pgt-cache", type=Path, default=None)
    parser.add_argument("--dump", type=Path, default=None, help="write every row (with check values) as JSON")
    args = parser.parse_args()

    from monitor.io.nifti import load_image, load_mask
    from monitor.qc.flags import FlagPolicy
    from monitor.qc.scores import compare_structures, score_volume

    jobs = _jobs(args.data)
    scorer = None
    rows: list[dict[str, object]] = []
    for segmenter, key, mask_path, gt_path in jobs:
        mask = load_mask(mask_path)
        cached = args.pgt_cache / segmenter / f"{key}.npy" if args.pgt_cache else None
        if cached is not None and cached.is_file():
            pgt = np.load(cached)
        else:
            if scorer is None:
                from monitor.model import Scorer

                scorer = Scorer(device="cpu")
            pgt = scorer.score(mask).pgt
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, pgt)
        image = None
        if not args.no_images:
            image_path = gt_path.with_name(gt_path.name.replace("_gt.nii.gz", ".nii.gz"))
            image = load_image(image_path)[0] if image_path.is_file() else None
        gt = mask if gt_path == mask_path else load_mask(gt_path)
        real = compare_structures(mask.labels, gt.labels, gt.spacing_mm)
        plain = score_volume(
            mask.labels, pgt, mask.spacing_mm, policy=FlagPolicy(), slices_scored=0, evidence=None
        )
        new = score_volume(
            mask.labels, pgt, mask.spacing_mm, policy=FlagPolicy(), slices_scored=0, image=image
        )
        for r, p, s in zip(real, plain.structures, new.structures, strict=True):
            rows.append(
                {
                    "segmenter": segmenter,
                    "key": key,
                    "structure": r.structure.value,
                    "dice": r.dice,
                    "hd": r.hd_mm,
                    "pdsc": s.pdsc,
                    "phd": s.phd_mm,
                    "pdsc_3d": s.pdsc_3d,
                    "phd_3d": s.phd_mm_3d,
                    "plain_flag": p.flag.value != "ok",
                    "flag": s.flag.value != "ok",
                    "reasons": [c.value for c in s.reasons],
                    "failed": bool(r.dice < 0.5 or r.hd_mm > 50),
                    "evidence_ms": 1e3 * new.timings_s.get("evidence", math.nan),
                    "checks": {c.code.value: c.value for c in s.evidence},
                }
            )
    if args.dump is not None:
        import json

        args.dump.write_text(json.dumps(rows, default=float))

    preds = [r for r in rows if r["segmenter"] != "ground_truth"]
    print(
        f"{len(jobs)} volumes ({len({r['key'] for r in rows})} cases), images {'off' if args.no_images else 'on'}"
    )
    for structure in ("LV", "RV", "MYO", "all"):
        mine = [r for r in preds if structure == "all" or r["structure"] == structure]
        hd = [r["hd"] for r in mine]
        r_plain, n = _pearson(hd, [r["phd"] for r in mine])
        r_3d, n3 = _pearson(hd, [r["phd_3d"] for r in mine])
        d = [r["dice"] for r in mine]
        rd_plain, _ = _pearson(d, [r["pdsc"] for r in mine])
        rd_3d, _ = _pearson(d, [r["pdsc_3d"] for r in mine])
        print(
            f"{structure:<4} r(HD, pHD) {r_plain:.3f} (n {n}) -> refined {r_3d:.3f} (n {n3});  "
            f"r(DSC, pDSC) {rd_plain:.3f} -> {rd_3d:.3f}"
        )
        failed = [bool(r["failed"]) for r in mine]
        print(f"     flags, paper:    {_pr([bool(r['plain_flag']) for r in mine], failed)}")
        print(f"     flags, evidence: {_pr([bool(r['flag']) for r in mine], failed)}")
    gt_rows = [r for r in rows if r["segmenter"] == "ground_truth"]
    flagged_gt = sorted({str(r["key"]) for r in gt_rows if r["flag"]})
    n_gt = len({r["key"] for r in gt_rows})
    print(
        f"ground truth flagged: {len(flagged_gt)} of {n_gt} volumes ({100 * len(flagged_gt) / max(n_gt, 1):.1f} %)"
    )
    for r in gt_rows:
        if r["flag"]:
            print(f"  {r['key']} {r['structure']}: {r['reasons']}")
    false_alarms = collections.Counter(
        c for r in preds if r["flag"] and not r["failed"] for c in r["reasons"]
    )
    missed = collections.Counter(str(r["structure"]) for r in preds if r["failed"] and not r["flag"])
    print(f"reasons on flagged rows that are not real failures: {dict(false_alarms.most_common())}")
    print(f"real failures not flagged, per structure: {dict(missed)}")
    ms = np.asarray([r["evidence_ms"] for r in rows[::3]], dtype=float)
    print(
        f"evidence stage: median {np.nanmedian(ms):.1f} ms, p95 {np.nanpercentile(ms, 95):.1f} ms per volume"
    )


if __name__ == "__main__":
    main()
