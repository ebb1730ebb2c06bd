"""Time the calibration stage per volume: mask (and image) features, and the batched estimate.

What the ``Scorer`` adds per volume when a calibration is loaded: ``mask_features`` + ``image_features``
(when an image is paired) on each volume, taking the mask's ``Anatomy`` from the evidence stage that
already ran, then one ``calibrate_scores`` call for the batch. The features are also timed on their own
(``anatomy=None``: they build it, as ``bench/fit_calibration.py`` does). Volumes are real dev masks with
their MR images when ``--data`` is given (``predictions/<segmenter>`` and ``gt``), else phantoms with
synthetic images; the pGT is the mask itself (the stage's cost hardly depends on it).

Times are CPU time (``time.process_time``, one thread), best of ``--repeat`` per volume, medians over
the volumes. Run against an older checkout (``PYTHONPATH=<checkout>``) it times that code's features
the only way it has (no ``score_with_evidence``: no shared anatomy), for before/after figures.

Usage: python bench/calibration_speed.py [--data ../shared/data/acdc-dev] [--n 48] [--repeat 5]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from monitor.io.calibration import load_calibration
from monitor.io.nifti import load_image, load_mask
from monitor.qc.calibration import calibrate_scores, image_features, mask_features
from monitor.qc.flags import FlagPolicy
from monitor.qc.scores import score_volume
from monitor.sim import make_image, make_patient

try:  # absent before issue 23: the features then build everything themselves
    from monitor.qc.scores import score_with_evidence
except ImportError:  # pragma: no cover - older checkouts only
    score_with_evidence = None  # type: ignore[assignment]


def _volumes(data: Path | None, segmenter: str, n: int) -> list[tuple[np.ndarray, tuple, np.ndarray]]:
    out = []
    if data is not None:
        folder = data / "predictions" / segmenter
        with (folder / "metrics.csv").open() as handle:
            for row in list(csv.DictReader(handle))[:n]:
                m = load_mask(folder / row["pred_file"])
                gt = data / "gt" / row["gt_file"]
                image = load_image(gt.with_name(gt.name.replace("_gt.nii.gz", ".nii.gz")))[0]
                out.append((m.labels, m.spacing_mm, image))
        return out
    rng = np.random.default_rng(0)
    for _ in range(n):
        ed, _ = make_patient(rng)
        out.append((ed.labels, ed.spacing_mm, make_image(ed.labels, rng, ed.spacing_mm)))
    return out


def _best_ms(repeat: int, fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    """CPU ms of ``fn(*args, **kwargs)``, best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn(*args, **kwargs)
        best = min(best, time.process_time() - start)
    return 1000 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--segmenter", default="tiramisu")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--calibration", default=None, help="calibration file (default: shipped)")
    args = parser.parse_args()
    calibration = load_calibration(args.calibration)
    policy = FlagPolicy()
    volumes = _volumes(args.data, args.segmenter, args.n)
    times: dict[str, list[float]] = {}
    scores, extras = [], []
    with threadpool_limits(1):
        for m, s, image in volumes:
            anatomy = None
            if score_with_evidence is not None:
                score, found = score_with_evidence(
                    m, m, s, policy=policy, slices_scored=m.shape[0], image=image
                )
                anatomy = found.anatomy if found is not None else None
                times.setdefault("mask features (evidence's anatomy)", []).append(
                    _best_ms(args.repeat, mask_features, m, m, s, anatomy=anatomy)
                )
                times.setdefault("image features (evidence's anatomy)", []).append(
                    _best_ms(args.repeat, image_features, image, m, anatomy=anatomy)
                )
            else:
                score = score_volume(m, m, s, policy=policy, slices_scored=m.shape[0], image=image)
            times.setdefault("mask features (alone)", []).append(
                _best_ms(args.repeat, mask_features, m, m, s)
            )
            times.setdefault("image features (alone)", []).append(
                _best_ms(args.repeat, image_features, image, m)
            )
            f = mask_features(m, m, s)
            for k, v in image_features(image, m).items():
                f[k].update(v)
            scores.append(score)
            extras.append(f)
        calibrate_scores(calibration, scores[:2], extras[:2], policy=policy)  # warm-up
        print(
            f"{len(volumes)} volumes; calibration {calibration.version}; CPU ms per volume, best of {args.repeat}"
        )
        for name, values in times.items():
            print(f"  {name:<38} median {statistics.median(values):6.2f}")
        for batch in (b for b in (1, 8, 32) if b <= len(scores)):
            per_volume = []
            for start in range(0, len(scores) - batch + 1, batch):
                chunk = slice(start, start + batch)
                spent = _best_ms(
                    3, calibrate_scores, calibration, scores[chunk], extras[chunk], policy=policy
                )
                per_volume.append(spent / batch)
            print(f"  {f'estimates, batch {batch}':<38} median {statistics.median(per_volume):6.2f}")


if __name__ == "__main__":
    main()
