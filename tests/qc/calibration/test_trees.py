"""``FlatTrees`` walks fitted scikit-learn ensembles and gives their own predictions, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from monitor.qc.calibration.model import FLAT_ROWS, _one_thread
from monitor.qc.calibration.targets import Target
from monitor.qc.calibration.trees import FlatTrees


def _data(n: int, seed: int, missing: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Features with missing values (so both ``missing_go_to_left`` branches are trained)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = 2.0 * x[:, 0] - np.abs(x[:, 1]) + np.where(np.isnan(x[:, 2]), 1.0, 0.0) + 0.1 * rng.normal(size=n)
    x[rng.random(x.shape) < missing] = np.nan
    y += np.where(np.isnan(x[:, 2]), 1.5, 0.0)  # missingness itself carries signal
    return x, y


def test_regressors_and_a_classifier_walk_to_their_own_predictions():
    x, y = _data(2000, seed=0)
    squared = HistGradientBoostingRegressor(max_depth=3, max_iter=40, random_state=0).fit(x, y)
    quantile = HistGradientBoostingRegressor(loss="quantile", quantile=0.9, max_depth=4, max_iter=30).fit(
        x, y
    )
    classifier = HistGradientBoostingClassifier(max_depth=3, max_iter=50, random_state=0).fit(x, y > 0.5)
    flat = FlatTrees.of([squared, quantile, classifier])
    assert flat is not None and flat.feature.shape[0] == 3 + 40 + 30 + 50 and flat.depth == 4
    test, _ = _data(500, seed=1)
    test[:7] = np.nan  # rows with nothing known take the default branches all the way down
    raw = flat.raw(test)
    assert raw.shape == (500, 3)
    np.testing.assert_array_equal(raw[:, 0], squared.predict(test))
    np.testing.assert_array_equal(raw[:, 1], quantile.predict(test))
    np.testing.assert_array_equal(raw[:, 2], classifier.decision_function(test))
    assert np.ptp(raw[:, 0]) > 3.0  # the models are not constant: the walk matters


def test_what_it_cannot_walk_is_left_to_scikit_learn():
    x, y = _data(600, seed=2, missing=0.0)
    x[:, 5] = np.round(np.abs(x[:, 5]) * 3) % 4  # a categorical column
    categorical = HistGradientBoostingRegressor(categorical_features=[5], max_iter=10).fit(x, y + x[:, 5])
    assert FlatTrees.of([categorical]) is None
    three_classes = HistGradientBoostingClassifier(max_iter=5).fit(x, np.digitize(y, [-1.0, 1.0]))
    assert FlatTrees.of([three_classes]) is None
    assert FlatTrees.of([HistGradientBoostingRegressor()]) is None  # not fitted
    assert FlatTrees.of([]) is None


@pytest.mark.parametrize("rows", [3, FLAT_ROWS])
def test_shipped_calibration_predicts_as_its_models_do(rows):
    """The shipped calibration, through ``FlatTrees`` (batches up to ``FLAT_ROWS``), gives each
    model's scikit-learn/MAPIE answer: estimates, intervals and P(failure)."""
    from monitor.io.calibration import load_calibration

    calibration = load_calibration()
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, len(calibration.feature_names))) * 15.0
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 0] = np.arange(rows) % 3
    fast = calibration.predict_space(x)
    assert calibration._flat is not None
    for target in Target:
        for got, want in zip(fast[target], calibration.models[target].predict(x), strict=True):
            np.testing.assert_array_equal(got, want)
    with _one_thread():
        want = calibration.failure.classifier.predict_proba(x)[:, 1]
    np.testing.assert_array_equal(calibration.failure.probability(x), want)
