"""CPU cost of the evidence stage per volume, with and without the image, and where it goes.

Usage:
    python bench/evidence_speed.py --pgt-cache DIR [--data ../shared/data/acdc-dev]
                                   [--segmenter tiramisu_noise] [--n 30] [--repeat 3] [--profile]

Takes the first ``--n`` masks of ``predictions/<segmenter>`` with their cached pGTs
(``DIR/<segmenter>/<patient>_<phase>.npz`` with an array ``pgt``, or ``.npy``; written by
``bench/evidence_dev.py --pgt-cache``) and their MR images, and times ``score_volume`` (the post-model
step) in CPU time (``time.process_time``, best of ``--repeat`` per volume, one thread): before
(``evidence=None``, the paper's metrics), after without the image, after with it. Prints the medians
per volume and the evidence stage's cost (after minus before). ``--profile`` adds a cProfile of the
stage with the image over the same volumes (top 20 by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import pstats
import statistics
import time
from pathlib import Path

import numpy as np


def _pgt(cache: Path, segmenter: str, key: str) -> np.ndarray | None:
    for path in (cache / segmenter / f"{key}.npz", cache / segmenter / f"{key}.npy"):
        if path.is_file():
            loaded = np.load(path)
            return loaded["pgt"] if path.suffix == ".npz" else loaded
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/acdc-dev"))
    parser.add_argument("--pgt-cache", type=Path, required=True)
    parser.add_argument("--segmenter", default="tiramisu_noise")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from monitor.io.nifti import load_image, load_mask
    from monitor.qc.flags import FlagPolicy
    from monitor.qc.scores import score_volume

    folder = args.data / "predictions" / args.segmenter
    cases = []
    with (folder / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            pgt = _pgt(args.pgt_cache, args.segmenter, f"{row['patient']}_{row['phase']}")
            if pgt is None:
                continue
            mask = load_mask(folder / row["pred_file"])
            gt = args.data / "gt" / row["gt_file"]
            image = load_image(gt.with_name(gt.name.replace("_gt.nii.gz", ".nii.gz")))[0]
            cases.append((mask.labels, pgt, mask.spacing_mm, image))
            if len(cases) >= args.n:
                break
    if not cases:
        raise SystemExit(f"no cached pGT under {args.pgt_cache / args.segmenter}")
    policy = FlagPolicy()
    variants = {
        "before (evidence=None)": {"evidence": None},
        "after, no image": {},
        "after, with image": {"image": True},
    }
    ms: dict[str, list[float]] = {name: [] for name in variants}
    with threadpool_limits(1):
        for mask, pgt, spacing, image in cases:
            for name, kwargs in variants.items():
                call = dict(kwargs)
                if call.get("image"):
                    call["image"] = image
                best = float("inf")
                for _ in range(args.repeat):
                    start = time.process_time()
                    score_volume(mask, pgt, spacing, policy=policy, slices_scored=0, **call)
                    best = min(best, time.process_time() - start)
                ms[name].append(1000 * best)
        print(
            f"{len(cases)} volumes of {args.segmenter}, CPU ms per volume (median of best-of-{args.repeat}):"
        )
        base = statistics.median(ms["before (evidence=None)"])
        for name, values in ms.items():
            median = statistics.median(values)
            print(f"  {name:<24} {median:7.1f}   stage {median - base:+7.1f}")
        if args.profile:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for mask, pgt, spacing, image in cases:
                score_volume(mask, pgt, spacing, policy=policy, slices_scored=0, image=image)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(40)
            print(out.getvalue())


if __name__ == "__main__":
    main()
