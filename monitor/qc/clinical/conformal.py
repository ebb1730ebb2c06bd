"""An absolute error estimated with a conformal interval: conformalized quantile regression (MAPIE) over
three small gradient-boosting quantile models, fitted in a transformed space; the median model gives
the point estimate.

The target is an absolute error ``e >= 0`` (ml, percentage points, g); models work on ``log1p(e)``, which
makes the spread of small and large errors comparable, and answers go back through ``expm1`` (clipped at
0). The interval is MAPIE's ``ConformalizedQuantileRegressor`` over three prefitted HGB quantile models
(``(1 - c) / 2``, ``(1 + c) / 2`` and 0.5), conformalized on patients held out of their fit.

This is the one place the clinical stage touches scikit-learn and MAPIE; the calibration stage
(``monitor.qc.calibration``) can take its place once it offers the same ``fit`` / ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["HGB_PARAMS", "IntervalModel", "fit_interval_model"]

#: Small trees, few iterations: ~500 patients per index on dev.
HGB_PARAMS: dict[str, Any] = {"max_depth": 3, "max_iter": 60, "learning_rate": 0.1, "min_samples_leaf": 20}


@dataclass(frozen=True, slots=True, kw_only=True)
class IntervalModel:
    """Point estimate and conformal interval of one absolute error."""

    #: conformalized MAPIE ConformalizedQuantileRegressor on log1p(error) (minus the baseline); its
    #: median model (an HGB quantile regressor at 0.5) is the point estimate
    interval: Any
    confidence: float  #: nominal coverage of the interval, e.g. 0.9
    #: feature column of the pseudo error the models correct (they fit log1p|real| - log1p|pseudo|), or
    #: None to fit log1p|real| itself
    baseline_column: int | None = None

    def baseline(self, features: np.ndarray) -> np.ndarray:
        """log1p of the absolute pseudo error per row (0 where undefined, or without a baseline)."""
        if self.baseline_column is None:
            return np.zeros(features.shape[0])
        return _log_abs(features[:, self.baseline_column])

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point estimate, lower and upper end of the interval, in the error's own unit (>= 0).

        Args:
            features: float [n, n_features]; nan allowed (the trees route missing values).
        """
        from threadpoolctl import threadpool_limits

        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be 2D [n, n_features], got {x.ndim}D")
        with threadpool_limits(1):  # OpenMP start-up costs more than a few rows take
            point, bounds = self.interval.predict_interval(x)
        base = self.baseline(x)
        lo, hi = bounds[:, 0, 0] + base, bounds[:, 1, 0] + base
        point = np.clip(point + base, lo, hi)

        def back(values: np.ndarray) -> np.ndarray:
            return np.clip(np.expm1(values), 0.0, None)

        return back(point), back(lo), back(hi)


def _log_abs(values: np.ndarray) -> np.ndarray:
    out = np.log1p(np.abs(np.asarray(values, dtype=np.float64)))
    return np.where(np.isfinite(out), out, 0.0)


def _split_by_group(groups: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the rows whose group falls in the conformalization part (about ``fraction``)."""
    unique = np.unique(groups)
    chosen = rng.choice(unique, size=max(1, round(fraction * unique.size)), replace=False)
    return np.isin(groups, chosen)


def fit_interval_model(
    features: np.ndarray,
    abs_error: np.ndarray,
    groups: np.ndarray,
    *,
    confidence: float = 0.9,
    conformal_fraction: float = 0.25,
    seed: int = 0,
    baseline_column: int | None = None,
) -> IntervalModel:
    """Fit the quantile models on part of the groups (patients) and conformalize on the rest.

    Args:
        features: float [n, n_features].
        abs_error: float [n], the real absolute error (>= 0); rows where it is nan are left out.
        groups: [n] group of each row (the patient): the conformalization rows share no patient with the
            rows the quantile models are fitted on.
        confidence: nominal coverage of the interval.
        conformal_fraction: share of the groups held out for conformalization.
        seed: the random split.
        baseline_column: the feature column holding this index's pseudo error: the models then learn the
            correction of its log1p magnitude (which keeps the estimate in step with large pseudo errors,
            beyond what the trees saw); None learns the error from scratch.
    Raises: ValueError for mismatched lengths, negative errors or too few groups.
    """
    from mapie.regression import ConformalizedQuantileRegressor
    from threadpoolctl import threadpool_limits

    from monitor.qc.calibration.fit import BoostingParams  # the calibration stage's boosted models

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(abs_error, dtype=np.float64)
    g = np.asarray(groups)
    if not (x.shape[0] == y.shape[0] == g.shape[0]):
        raise ValueError(
            f"features, abs_error and groups differ in length: {x.shape[0]}, {y.shape[0]}, {g.shape[0]}"
        )
    keep = np.isfinite(y)
    x, y, g = x[keep], y[keep], g[keep]
    if np.any(y < 0):
        raise ValueError("abs_error must be >= 0")
    if np.unique(g).size < 4:
        raise ValueError(f"need at least 4 groups to fit and conformalize, got {np.unique(g).size}")
    target = np.log1p(y) - (_log_abs(x[:, baseline_column]) if baseline_column is not None else 0.0)
    held = _split_by_group(g, conformal_fraction, np.random.default_rng(seed))
    alpha = 1.0 - confidence
    with threadpool_limits(1):
        params = BoostingParams(**HGB_PARAMS, seed=seed)
        quantiles = [
            params.model(loss="quantile", quantile=q).fit(x[~held], target[~held])
            for q in (alpha / 2, 1 - alpha / 2, 0.5)
        ]
        interval = ConformalizedQuantileRegressor(quantiles, confidence_level=confidence, prefit=True)
        interval.conformalize(x[held], target[held])
    return IntervalModel(interval=interval, confidence=confidence, baseline_column=baseline_column)
