"""Time the calibration stage per volume: mask (and image) features, and the batched estimate.

What the ``Scorer`` adds per volume when a calibration is loaded: ``mask_features`` (+ ``image_features``
when an image is paired) on each volume, then one ``calibrate_scores`` call for the batch. Volumes are
real dev masks when ``--data`` is given (``predictions/<segmenter>``), else phantoms; the pGT is the mask
itself (the stage's cost does not depend on it).

Usage: python bench/calibration_speed.py [--data ../shared/data/acdc-dev] [--n 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from monitor.io.calibration import load_calibration
from monitor.io.nifti import load_mask
from monitor.qc.calibration import calibrate_scores, image_features, mask_features
from monitor.qc.flags import FlagPolicy
from monitor.qc.scores import score_volume
from monitor.sim import make_image, make_patient


def _volumes(data: Path | None, n: int) -> list[tuple[np.ndarray, tuple, np.ndarray]]:
    out = []
    if data is not None:
        for path in sorted((data / "predictions" / "tiramisu").glob("*.nii.gz"))[:n]:
            m = load_mask(path)
            out.append((m.labels, m.spacing_mm, np.zeros(m.labels.shape, np.float32) + m.labels * 40.0))
        return out
    rng = np.random.default_rng(0)
    for _ in range(n):
        ed, _ = make_patient(rng)
        out.append((ed.labels, ed.spacing_mm, make_image(ed.labels, rng, ed.spacing_mm)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--calibration", default=None, help="calibration file (default: shipped)")
    args = parser.parse_args()
    calibration = load_calibration(args.calibration)
    policy = FlagPolicy()
    volumes = _volumes(args.data, args.n)
    scores = [
        score_volume(m, m, s, policy=policy, slices_scored=m.shape[0], evidence=None) for m, s, _ in volumes
    ]
    t_mask, t_image = [], []
    extras = []
    for m, s, image in volumes:
        t0 = time.perf_counter()
        f = mask_features(m, m, s)
        t1 = time.perf_counter()
        for k, v in image_features(image, m).items():
            f[k].update(v)
        t2 = time.perf_counter()
        t_mask.append(t1 - t0)
        t_image.append(t2 - t1)
        extras.append(f)
    calibrate_scores(calibration, scores[:2], extras[:2], policy=policy)  # warm-up
    print(f"{len(volumes)} volumes; calibration {calibration.version}")
    print(f"mask features  median {1000 * statistics.median(t_mask):.2f} ms/volume")
    print(f"image features median {1000 * statistics.median(t_image):.2f} ms/volume")
    for batch in (1, 8, 32):
        times = []
        for start in range(0, len(scores) - batch + 1, batch):
            t0 = time.perf_counter()
            calibrate_scores(
                calibration, scores[start : start + batch], extras[start : start + batch], policy=policy
            )
            times.append((time.perf_counter() - t0) / batch)
        print(f"estimates, batch {batch:2d}: median {1000 * statistics.median(times):.2f} ms/volume")


if __name__ == "__main__":
    main()
