"""Cache the pseudo ground truth of every dev volume, for fitting the shipped calibration.

The autoencoder is the slow part of the features; everything after it is pure numpy and is
recomputed from the cached pGT by ``bench/fit_calibration.py``. For each segmenter's prediction and
each ground truth (scored as the pseudo-segmenter ``ground_truth``) this writes
``<cache>/pgt/<segmenter>/<case>.npz`` (uint8 [z, y, x] pGT) and one ``<cache>/index.csv`` row with
the paths of the mask, its ground truth and its MR image.

Usage: python bench/calibration_cache.py --data ../shared/data/acdc-dev --cache /work/cache14
Dev data only: nothing written here is committed.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from monitor.evaluation.pairing import GROUND_TRUTH, pair_cases
from monitor.io.layouts import image_names
from monitor.io.nifti import load_mask
from monitor.model.scorer import Scorer


def _image_path(gt_path: Path) -> Path | None:
    for name in image_names(gt_path.name):
        candidate = gt_path.parent / name
        if candidate.is_file():
            return candidate
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="acdc-dev folder (gt/, predictions/)")
    parser.add_argument("--cache", type=Path, required=True, help="output folder (outside the repo)")
    parser.add_argument("--batch", type=int, default=8, help="volumes per score_batch call")
    args = parser.parse_args()
    preds = {p.name: p for p in sorted((args.data / "predictions").iterdir()) if p.is_dir()}
    pairing = pair_cases(args.data / "gt", preds)
    pairs = list(pairing.pairs)
    seen = {}
    for pair in pairs:
        seen.setdefault(pair.gt_path, pair)
    from monitor.evaluation.pairing import CasePair

    pairs += [
        CasePair(
            segmenter=GROUND_TRUTH,
            case=p.case,
            patient=p.patient,
            phase=p.phase,
            pred_path=p.gt_path,
            gt_path=p.gt_path,
        )
        for p in seen.values()
    ]
    scorer = Scorer(device="cpu")
    rows = []
    t0 = time.perf_counter()
    for start in range(0, len(pairs), args.batch):
        chunk = pairs[start : start + args.batch]
        volumes = [load_mask(p.pred_path) for p in chunk]
        for pair, result in zip(chunk, scorer.score_batch(volumes), strict=True):
            out = args.cache / "pgt" / pair.segmenter / f"{pair.case}.npz"
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(out, pgt=result.pgt)
            image = _image_path(pair.gt_path)
            rows.append(
                {
                    "segmenter": pair.segmenter,
                    "patient": pair.patient,
                    "phase": pair.phase,
                    "case": pair.case,
                    "pred": str(pair.pred_path),
                    "gt": str(pair.gt_path),
                    "image": str(image) if image else "",
                    "pgt": str(out),
                }
            )
        print(f"{start + len(chunk)}/{len(pairs)} volumes, {time.perf_counter() - t0:.0f} s", flush=True)
    with (args.cache / "index.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
