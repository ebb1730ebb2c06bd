"""Cache the pseudo ground truth of every dev volume, for fitting the shipped calibration.

The autoencoder is the slow part of the features; everything after it is pure numpy and is
recomputed from the cached pGT by ``bench/fit_calibration.py``. For each segmenter's prediction and
each ground truth (scored as the pseudo-segmenter ``ground_truth``) this writes
``<cache>/pgt/<segmenter>/<case>.npz`` (uint8 [z, y, x] pGT) and one ``<cache>/index.csv`` row with
the paths of the mask, its ground truth and its MR image.

With ``--families`` (the ``families.json`` of ``bench/failure_set.py``, built from the dev ground truth)
every failure-family volume is cached too, as segmenter ``<family>-<strength>`` with its ``family``
column set (empty for the real segmenters and the ground truth); ``bench/fit_calibration.py`` trains on
those rows (``--families-weight``) and never tests on them. A pGT already in the cache is reused
(``--reuse``), so the families can be added to a finished cache.

Usage: python bench/calibration_cache.py --data ../shared/data/acdc-dev --cache /work/cache14
    [--families /work/failure-set/families.json] [--reuse]
Dev data only: nothing written here is committed.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from monitor.evaluation.families import read_manifest
from monitor.evaluation.pairing import GROUND_TRUTH, CasePair, pair_cases
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
    parser.add_argument("--families", type=Path, default=None, help="families.json of bench/failure_set.py")
    parser.add_argument("--reuse", action="store_true", help="keep pGT files already in the cache")
    args = parser.parse_args()
    preds = {p.name: p for p in sorted((args.data / "predictions").iterdir()) if p.is_dir()}
    pairing = pair_cases(args.data / "gt", preds)
    pairs = list(pairing.pairs)
    seen = {}
    for pair in pairs:
        seen.setdefault(pair.gt_path, pair)
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
    family_of = {}
    if args.families is not None:
        sets = read_manifest(args.families)
        family_of = {s.name: s.family for s in sets}
        pairs += list(pair_cases(args.data / "gt", {s.name: s.folder for s in sets}).pairs)
    scorer = Scorer(device="cpu")
    rows = []
    t0 = time.perf_counter()
    for start in range(0, len(pairs), args.batch):
        chunk = pairs[start : start + args.batch]
        outs = [args.cache / "pgt" / p.segmenter / f"{p.case}.npz" for p in chunk]
        todo = [i for i, out in enumerate(outs) if not (args.reuse and out.is_file())]
        results = scorer.score_batch([load_mask(chunk[i].pred_path) for i in todo]) if todo else []
        for i, result in zip(todo, results, strict=True):
            outs[i].parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(outs[i], pgt=result.pgt)
        for pair, out in zip(chunk, outs, strict=True):
            image = _image_path(pair.gt_path)
            rows.append(
                {
                    "segmenter": pair.segmenter,
                    "family": family_of.get(pair.segmenter, ""),
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
