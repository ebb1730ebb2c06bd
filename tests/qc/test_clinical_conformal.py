"""monitor.qc.clinical.conformal: coverage on a synthetic error with known noise; the baseline column."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.qc.clinical.conformal import fit_interval_model


def _data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|error| = exp(0.8 x0 + noise) - 1 with noise N(0, 0.3): log1p(error) is linear plus known noise."""
    x = rng.normal(size=(n, 3))
    log_err = np.clip(1.0 + 0.8 * x[:, 0] + rng.normal(0, 0.3, size=n), 0.0, None)
    return x, np.expm1(log_err), np.arange(n) // 2  # two rows per group (patient)


def test_interval_covers_about_90_percent_of_new_errors() -> None:
    rng = np.random.default_rng(1)
    x, y, groups = _data(2000, rng)
    model = fit_interval_model(x, y, groups, confidence=0.9)
    x_new, y_new, _ = _data(2000, rng)
    value, lo, hi = model.predict(x_new)
    coverage = float(np.mean((y_new >= lo) & (y_new <= hi)))
    assert 0.86 <= coverage <= 0.95
    assert np.all(lo <= value) and np.all(value <= hi) and np.all(lo >= 0)
    # the point estimate follows the signal: r of log errors well above what noise allows by chance
    assert np.corrcoef(np.log1p(value), np.log1p(y_new))[0, 1] > 0.8


def test_baseline_column_lets_the_estimate_follow_errors_beyond_the_training_range() -> None:
    rng = np.random.default_rng(2)
    pseudo = rng.uniform(0, 10, size=600)  # the pseudo error tracks the real one closely
    real = pseudo * np.exp(rng.normal(0, 0.1, size=600))
    x = np.column_stack([pseudo, rng.normal(size=600)])
    groups = np.arange(600) // 3
    with_base = fit_interval_model(x, real, groups, baseline_column=0)
    without = fit_interval_model(x, real, groups)
    far = np.array([[40.0, 0.0]])  # four times the largest pseudo error seen
    assert with_base.predict(far)[0][0] == pytest.approx(40.0, rel=0.3)
    assert without.predict(far)[0][0] < 15.0  # trees cannot extrapolate


def test_bad_inputs_are_refused() -> None:
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="differ in length"):
        fit_interval_model(x, np.zeros(9), np.arange(10))
    with pytest.raises(ValueError, match="at least 4 groups"):
        fit_interval_model(x, np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match=">= 0"):
        fit_interval_model(x, -np.ones(10), np.arange(10))
