"""Fitting and intervals: conformal coverage on a synthetic regression with a known noise level."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.qc.calibration.figures import estimate_figures
from monitor.qc.calibration.fit import cross_predict, fit_correction, group_folds
from monitor.qc.calibration.targets import Target, to_space
from tests.calibration_data import NOISE_SIGMA, synthetic_rows, tiny_calibration

Z90 = 1.6449


@pytest.fixture(scope="module")
def test_rows():
    return synthetic_rows(400, seed=7)


@pytest.mark.parametrize("target", list(Target), ids=str)
def test_intervals_reach_nominal_coverage(test_rows, target):
    calibration = tiny_calibration()
    point, lo, hi = calibration.predict(calibration.matrix(test_rows.rows, test_rows.structures))[target]
    real = test_rows.target(target)
    covered = np.mean((real >= lo) & (real <= hi))
    # 2,400 fresh rows: the binomial standard error at 0.9 is 0.006
    assert 0.86 <= covered <= 0.95
    # the width in the learning space is near the oracle's 2 x 1.645 x sigma (noise is all there is)
    width = np.median(np.abs(to_space(target, hi) - to_space(target, lo)))
    assert 0.8 * 2 * Z90 * NOISE_SIGMA <= width <= 1.5 * 2 * Z90 * NOISE_SIGMA
    # the point estimate is within the noise of the truth
    errors = to_space(target, point) - to_space(target, real)
    assert abs(np.median(errors)) < 0.1 and np.std(errors) < 1.3 * NOISE_SIGMA


def test_site_correction_removes_a_known_bias_with_covering_intervals():
    base = tiny_calibration()
    site = synthetic_rows(30, seed=3, shift=0.6)  # the site's real values sit 0.6 higher in space
    fresh = synthetic_rows(200, seed=4, shift=0.6)
    stacked = fit_correction(base, site, version="test-site-1")
    x = base.matrix(fresh.rows, fresh.structures)
    for target in Target:
        before = base.predict(x)[target]
        after = stacked.predict(x)[target]
        real = fresh.target(target)
        mae_before = estimate_figures(to_space(target, real), to_space(target, before[0])).mae
        mae_after = estimate_figures(to_space(target, real), to_space(target, after[0])).mae
        assert mae_after < 0.5 * mae_before
        covered = np.mean((real >= after[1]) & (real <= after[2]))
        assert 0.84 <= covered <= 0.97


def test_cross_predict_by_patient_tests_every_row_once():
    data = synthetic_rows(20, seed=5)
    seen = []

    def fit(rows):
        seen.append(len(rows))
        return tiny_calibration()

    out = cross_predict(data, fit, group_folds(data.groups, 4))
    assert len(seen) == 4 and all(n == 90 for n in seen)
    assert all(np.isfinite(out[t][0]).all() for t in Target)


def test_fit_refuses_too_few_patients():
    from monitor.qc.calibration.fit import fit_calibration

    with pytest.raises(ValueError, match="at least 4 patients"):
        fit_calibration(synthetic_rows(3, seed=0), version="x")


def test_down_weighted_rows_train_but_do_not_widen_the_intervals(test_rows):
    """Auxiliary rows (weight < 1, e.g. synthetic failures) sit 2.0 off in the learning space: weighted
    in the models, they are left out of the conformalization, so the real rows' intervals keep the
    oracle's width and nominal coverage."""
    from monitor.qc.calibration.fit import LabelledRows, fit_calibration
    from tests.calibration_data import QUICK

    real = synthetic_rows(120, seed=1)
    aux = synthetic_rows(60, seed=2, shift=2.0)  # the same patient names as real rows p000-p059
    data = LabelledRows(
        rows=[*real.rows, *aux.rows],
        structures=[*real.structures, *aux.structures],
        dsc=np.concatenate([real.dsc, aux.dsc]),
        hd_mm=np.concatenate([real.hd_mm, aux.hd_mm]),
        groups=np.concatenate([real.groups, aux.groups]),
        segmenters=np.concatenate([real.segmenters, aux.segmenters]),
        weights=np.concatenate([np.ones(len(real)), np.full(len(aux), 0.1)]),
    )
    calibration = fit_calibration(data, version="test-weighted-1", params=QUICK)
    x = calibration.matrix(test_rows.rows, test_rows.structures)
    for target in Target:
        real_values = test_rows.target(target)
        _, lo, hi = calibration.predict(x)[target]
        assert 0.85 <= np.mean((real_values >= lo) & (real_values <= hi)) <= 0.96
        width = np.median(np.abs(to_space(target, hi) - to_space(target, lo)))
        assert width <= 1.5 * 2 * Z90 * NOISE_SIGMA


def test_the_failure_model_learns_the_failure_rule(test_rows):
    """Failures (real Dice < 0.5 or HD > 50 mm) follow from pDSC/pHD up to the noise: the model's
    probability ranks fresh rows almost perfectly, and is near 0 / 1 far from the boundary."""
    from sklearn.metrics import roc_auc_score

    from monitor.qc.calibration.fit import failed

    calibration = tiny_calibration()
    x = calibration.matrix(test_rows.rows, test_rows.structures)
    p = calibration.failure_probability(x, 0.5, 50.0)
    truth = failed(test_rows, 0.5, 50.0)
    assert 0.2 < truth.mean() < 0.8
    assert roc_auc_score(truth, p) > 0.9
    pdsc = np.array([r["pdsc"] for r in test_rows.rows])
    phd = np.array([r["phd_mm"] for r in test_rows.rows])
    assert np.median(p[(pdsc > 0.9) & (phd < 10)]) < 0.1
    assert np.median(p[phd > 75]) > 0.9
    assert calibration.failure_probability(x, 0.5, 40.0) is None  # fitted for 50 mm only


def test_no_failure_model_without_both_classes():
    from monitor.qc.calibration.fit import fit_calibration

    rows = synthetic_rows(8, seed=5)
    assert fit_calibration(rows, version="t", failure_hd_mm=1e9, failure_dice=0.0).failure is None


@pytest.mark.parametrize("which", ["tiny", "shipped"])
def test_intervals_are_mapies_split_cqr_intervals(test_rows, which):
    """``BoostedModel.predict`` skips MAPIE's per-call work (its median model, input checks) but gives
    MAPIE's conformalized quantile intervals, for a fitted calibration and for the shipped file."""
    from monitor.io.calibration import load_calibration
    from monitor.qc.calibration.features import feature_matrix

    calibration = tiny_calibration() if which == "tiny" else load_calibration()
    x = calibration.matrix(test_rows.rows, test_rows.structures)
    if which == "shipped":  # the synthetic rows lack most of its features: take real-looking ranges
        rng = np.random.default_rng(7)
        x = feature_matrix([{} for _ in range(300)], calibration.feature_names)
        x[:, 1:] = rng.normal(size=(300, x.shape[1] - 1)) * 20.0
        x[:, 0] = np.arange(300) % 3
    for target, model in calibration.models.items():
        point, lo, hi = model.predict(x)
        _, bounds = model.interval.predict_interval(x)
        np.testing.assert_allclose(
            lo, np.minimum(np.minimum(bounds[:, 0, 0], bounds[:, 1, 0]), point), atol=1e-12
        )
        np.testing.assert_allclose(
            hi, np.maximum(np.maximum(bounds[:, 0, 0], bounds[:, 1, 0]), point), atol=1e-12
        )
        assert (hi - lo > 0).mean() > 0.9, target
