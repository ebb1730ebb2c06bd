"""``Calibration``: pseudo metrics and evidence -> estimates of the real Dice and HD (mm) with intervals.

Per target (``Target.DSC``, ``Target.HD``) one gradient-boosted point model and a conformalized
quantile regression (MAPIE) give the estimate and its interval in the target's learning space
(``monitor.qc.calibration.targets``); the structure is a feature (0 LV, 1 RV, 2 MYO), so one call predicts
every structure of a batch of volumes. A site re-calibration (``cmr-monitor calibrate``) may stack a
``SiteCorrection`` on top: a robust linear map of the base estimate with cross-conformal intervals.
A ``FailureModel`` (a gradient-boosted classifier on the same features) gives the probability that the
real Dice or HD is past the flag thresholds it was fitted for; the flags use it when the policy's
thresholds are those (out of fold on dev it separates real failures better than the intervals: volume
precision 0.95 at recall 0.95 against 0.93 / 0.93, docs/evaluation.md).

Prediction runs on one thread (``threadpoolctl``): OpenMP start-up costs more than the trees at these
batch sizes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from mapie.regression import ConformalizedQuantileRegressor, CrossConformalRegressor
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import ThreadpoolController

from monitor.qc.calibration.features import feature_matrix
from monitor.qc.calibration.targets import Target, from_space, to_space
from monitor.qc.calibration.trees import FlatTrees
from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.records import Estimate


class _QuietQuantileCrossing(logging.Filter):
    """Drops MAPIE's "The predictions are ill-sorted." (logged on the root logger at INFO for every
    batch where a quantile model crosses another; the intervals are ordered below anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "The predictions are ill-sorted."


logging.getLogger().addFilter(_QuietQuantileCrossing())

__all__ = [
    "STRUCTURE_FEATURE",
    "BoostedModel",
    "Calibration",
    "FailureModel",
    "SiteCorrection",
    "structure_codes",
]

#: Name of the feature that says which structure a row is (0 LV, 1 RV, 2 MYO).
STRUCTURE_FEATURE = "structure"

#: Batches of up to this many rows (structures) are predicted by ``FlatTrees``, larger ones by
#: scikit-learn (its tree-by-tree loop costs the same for 3 rows as for 300; ``FlatTrees`` grows with
#: the rows; ``bench/calibration_speed.py``).
FLAT_ROWS = 96


@functools.cache
def _controller() -> ThreadpoolController:
    """The process's thread pools, found once (``threadpool_limits`` scans the loaded libraries on
    every call, which cost more than the prediction)."""
    return ThreadpoolController()


def _one_thread() -> object:
    """A context in which OpenMP/BLAS pools run one thread."""
    return _controller().limit(limits=1)


def structure_codes(structures: Sequence[Structure]) -> np.ndarray:
    """The ``structure`` feature of each row: its index in ``STRUCTURES`` (0 LV, 1 RV, 2 MYO)."""
    index = {s: i for i, s in enumerate(STRUCTURES)}
    return np.array([index[Structure(s)] for s in structures], dtype=float)


def _ordered(point: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Intervals that hold their point estimate (a quantile model may cross the mean model)."""
    return point, np.minimum(np.minimum(lo, hi), point), np.maximum(np.maximum(lo, hi), point)


@dataclass(frozen=True, kw_only=True)
class BoostedModel:
    """Point model and conformalized quantile models of one target, in its learning space.

    The point model of a calibration fitted since format 2 (``real_units`` set) is fitted on the real
    values (Dice 0-1, HD in mm) by squared error: their conditional mean, which follows the large
    errors that the learning space compresses (out of fold on dev, r with the real HD rises from
    0.85-0.92 to 0.91-0.94 per structure, with the real Dice from 0.83-0.90 to 0.91-0.95). Older files
    hold a point model fitted in the learning space (``real_units`` None).
    """

    point: HistGradientBoostingRegressor  #: squared-error point model
    interval: ConformalizedQuantileRegressor  #: quantile models conformalized on held-out patients
    real_units: Target | None = None  #: the target whose real values the point model predicts

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, lower, upper) in the learning space for a feature matrix [n, features]."""
        lower, upper, _ = self._quantile_models
        return self.from_predictions(self.point.predict(x), lower.predict(x), upper.predict(x))

    @property
    def trees(self) -> tuple[HistGradientBoostingRegressor, ...]:
        """The point model and the lower and upper quantile models, in ``from_predictions``' order."""
        lower, upper, _ = self._quantile_models
        return self.point, lower, upper

    def from_predictions(
        self, point: np.ndarray, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, lower, upper) in the learning space from the raw predictions of ``trees``."""
        if self.real_units is not None:
            point = to_space(self.real_units, point)
        _, _, (below, above) = self._quantile_models
        return _ordered(point, lower - below, upper + above)

    @functools.cached_property
    def _quantile_models(self) -> tuple[HistGradientBoostingRegressor, HistGradientBoostingRegressor, tuple]:
        """The lower and upper quantile models and their conformal corrections (``below``, ``above``).

        Split CQR's interval is ``[lower(x) - below, upper(x) + above]`` with constants from the
        calibration scores; they are read back from MAPIE's own interval on one probe row, so
        ``predict`` gives MAPIE's intervals (to rounding) without its median model and input checks,
        half the cost of ``predict_interval`` for a single volume.
        """
        regressor = self.interval._mapie_quantile_regressor
        lower, upper, _ = regressor.estimators_
        probe = np.zeros((1, lower.n_features_in_))
        _, bounds = self.interval.predict_interval(probe)
        below = float(lower.predict(probe)[0] - bounds[0, 0, 0])
        above = float(bounds[0, 1, 0] - upper.predict(probe)[0])
        return lower, upper, (below, above)


@dataclass(frozen=True, kw_only=True)
class SiteCorrection:
    """A site's robust linear correction of the base estimate, with cross-conformal (CV+) intervals.

    Its features are the base point estimate in the learning space and the structure (one-hot RV,
    MYO), so each structure gets its own offset and all share one slope.
    """

    regressor: CrossConformalRegressor  #: fitted and conformalized on the site's labelled cases

    @staticmethod
    def design(base_point: np.ndarray, structure: np.ndarray) -> np.ndarray:
        """The correction's features [n, 3] from the base estimate and the structure codes."""
        return np.column_stack([base_point, structure == 1, structure == 2]).astype(float)

    def predict(self, base_point: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, ...]:
        """(point, lower, upper) in the learning space."""
        point, bounds = self.regressor.predict_interval(self.design(base_point, structure))
        return _ordered(point, bounds[:, 0, 0], bounds[:, 1, 0])


@dataclass(frozen=True, kw_only=True)
class FailureModel:
    """P(real failure) of a structure: its real Dice below ``dice`` or its real HD above ``hd_mm``."""

    classifier: HistGradientBoostingClassifier  #: fitted on the calibration's feature matrix
    dice: float  #: the Dice threshold the labels were made with
    hd_mm: float  #: the HD threshold (mm) the labels were made with

    def fits(self, dice: float, hd_mm: float) -> bool:
        """Whether the model answers for flag thresholds ``dice`` and ``hd_mm``."""
        return abs(dice - self.dice) < 1e-9 and abs(hd_mm - self.hd_mm) < 1e-9

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(failure) per row of a feature matrix [n, features] (0-1)."""
        if len(x) <= FLAT_ROWS and self._flat is not None:
            return expit(self._flat.raw(x)[:, 0])
        with _one_thread():
            return self.classifier.predict_proba(x)[:, 1]

    @functools.cached_property
    def _flat(self) -> FlatTrees | None:
        return FlatTrees.of([self.classifier])


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """A versioned calibration: feature rows of structures -> ``Estimate`` of real Dice and HD (mm).

    Example:
        >>> estimates = calibration.estimate([row_lv, row_rv], [Structure.LV, Structure.RV])
        >>> estimates[0][Target.DSC].value
    """

    version: str  #: recorded with every score it produced
    feature_names: tuple[str, ...]  #: matrix columns, ``structure`` first
    models: Mapping[Target, BoostedModel]  #: one per target
    corrections: Mapping[Target, SiteCorrection] = field(default_factory=dict)  #: a site's stack
    failure: FailureModel | None = None  #: P(real failure), for the flags (None: intervals only)
    confidence: float = 0.9  #: nominal coverage of the intervals
    description: str = ""  #: what it was fitted on (one line)

    def __post_init__(self) -> None:
        if not self.version or len(self.version) > 64:
            raise ValueError(f"version must have 1-64 characters, got {self.version!r}")
        if set(self.models) != set(Target):
            raise ValueError(f"models needed for {sorted(Target)}, got {sorted(self.models)}")
        if not self.feature_names or self.feature_names[0] != STRUCTURE_FEATURE:
            raise ValueError(f"the first feature must be {STRUCTURE_FEATURE!r}, got {self.feature_names[:1]}")

    def matrix(self, rows: Sequence[Mapping[str, float]], structures: Sequence[Structure]) -> np.ndarray:
        """The feature matrix [n, features] of ``rows``, with their structure codes."""
        x = feature_matrix(rows, self.feature_names)
        x[:, 0] = structure_codes(structures)
        return x

    def predict_space(self, x: np.ndarray) -> dict[Target, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per target (point, lower, upper) in the learning space, site corrections applied."""
        out = {}
        flat = self._flat if len(x) <= FLAT_ROWS else None
        raw = flat.raw(x) if flat is not None else None
        with _one_thread():
            for k, target in enumerate(Target):
                model = self.models[target]
                if raw is None:
                    point, lo, hi = model.predict(x)
                else:
                    point, lo, hi = model.from_predictions(*raw[:, 3 * k : 3 * k + 3].T)
                correction = self.corrections.get(target)
                if correction is not None:
                    point, lo, hi = correction.predict(point, x[:, 0])
                out[target] = (point, lo, hi)
        return out

    @functools.cached_property
    def _flat(self) -> FlatTrees | None:
        """Every target's point and quantile models flattened, three columns per target."""
        return FlatTrees.of([tree for target in Target for tree in self.models[target].trees])

    def predict(self, x: np.ndarray) -> dict[Target, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per target (point, lower, upper) in real units (Dice 0-1, HD mm); lower <= upper."""
        out = {}
        for target, (point, lo, hi) in self.predict_space(x).items():
            a, b = from_space(target, lo), from_space(target, hi)
            out[target] = (from_space(target, point), np.minimum(a, b), np.maximum(a, b))
        return out

    def failure_probability(self, x: np.ndarray, dice: float, hd_mm: float) -> np.ndarray | None:
        """P(real failure) per row of ``x`` at thresholds ``dice`` / ``hd_mm``; None when the calibration
        has no failure model for them."""
        if self.failure is None or not self.failure.fits(dice, hd_mm) or len(x) == 0:
            return None
        return self.failure.probability(x)

    def estimate(
        self, rows: Sequence[Mapping[str, float]], structures: Sequence[Structure]
    ) -> list[dict[Target, Estimate]]:
        """An ``Estimate`` per target for each row (rows of several volumes go in one call)."""
        if len(rows) != len(structures):
            raise ValueError(f"got {len(rows)} rows and {len(structures)} structures")
        if not rows:
            return []
        return self.estimate_matrix(self.matrix(rows, structures))

    def estimate_matrix(self, x: np.ndarray) -> list[dict[Target, Estimate]]:
        """``estimate`` for a feature matrix already built by ``matrix`` (one row per structure)."""
        if len(x) == 0:
            return []
        predicted = self.predict(x)
        return [
            {
                target: Estimate(value=float(v[i]), lo=float(lo[i]), hi=float(hi[i]))
                for target, (v, lo, hi) in predicted.items()
            }
            for i in range(len(x))
        ]
