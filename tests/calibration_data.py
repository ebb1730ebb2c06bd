"""Synthetic labelled rows with a known noise level, and a small calibration fitted on them.

The real values are exact functions of two features plus Gaussian noise of a known standard deviation
in each target's learning space (``monitor.qc.calibration.targets``), so the best possible 90 % interval
has a known width: 2 x 1.645 x sigma.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from monitor.qc.calibration.fit import BoostingParams, LabelledRows, fit_calibration
from monitor.qc.calibration.model import Calibration
from monitor.qc.calibration.targets import Target, from_space
from monitor.qc.labels import STRUCTURES

__all__ = ["NOISE_SIGMA", "QUICK", "synthetic_rows", "tiny_calibration"]

#: Standard deviation of the noise in the learning space of both targets.
NOISE_SIGMA = 0.25
#: Boosting settings small enough for tests.
QUICK = BoostingParams(max_iter=40, min_samples_leaf=10)


def synthetic_rows(n_patients: int, seed: int, *, per_patient: int = 6, shift: float = 0.0) -> LabelledRows:
    """Rows of ``n_patients`` x ``per_patient`` structures: ``pdsc`` and ``phd_mm`` features, real values
    from known maps plus noise (``NOISE_SIGMA``); ``shift`` adds a known bias in the learning space."""
    rng = np.random.default_rng(seed)
    n = n_patients * per_patient
    pdsc = rng.uniform(0.3, 0.98, n)
    phd = rng.uniform(3.0, 80.0, n)
    # learning-space truth: Dice space log(1.01 - dsc) falls with pdsc, HD space log1p(hd) rises with phd
    t_dsc = np.log(1.01 - pdsc) + 0.3 + shift + rng.normal(0, NOISE_SIGMA, n)
    t_hd = np.log1p(phd) - 0.2 + shift + rng.normal(0, NOISE_SIGMA, n)
    structures = [STRUCTURES[i % 3] for i in range(n)]
    return LabelledRows(
        rows=[{"pdsc": float(a), "phd_mm": float(b)} for a, b in zip(pdsc, phd, strict=True)],
        structures=structures,
        dsc=from_space(Target.DSC, t_dsc),
        hd_mm=from_space(Target.HD, t_hd),
        groups=np.array([f"p{i // per_patient:03d}" for i in range(n)]),
        segmenters=np.array(["synthetic"] * n),
    )


@cache
def tiny_calibration() -> Calibration:
    """A calibration fitted on 120 synthetic patients (cached per test session)."""
    return fit_calibration(synthetic_rows(120, seed=1), version="test-tiny-1", params=QUICK)
