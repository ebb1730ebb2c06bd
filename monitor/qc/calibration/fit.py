"""Fitting a ``Calibration`` from labelled feature rows, and cross-validating it by group.

``fit_calibration`` fits the shipped kind (gradient boosting + conformalized quantile regression,
conformalized on a quarter of the training patients); ``fit_correction`` stacks a site's correction
on an existing calibration (for a few dozen labelled volumes); ``cross_predict`` gives out-of-fold
estimates for any split (by patient, or leave one segmenter out), from which ``monitor.qc.calibration
.figures`` computes r, MAE, coverage and flag quality.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from mapie.regression import ConformalizedQuantileRegressor, CrossConformalRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import HuberRegressor
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from threadpoolctl import threadpool_limits

from monitor.qc.calibration.model import (
    STRUCTURE_FEATURE,
    BoostedModel,
    Calibration,
    FailureModel,
    SiteCorrection,
    structure_codes,
)
from monitor.qc.calibration.targets import Target, to_space
from monitor.qc.labels import Structure

__all__ = [
    "BoostingParams",
    "LabelledRows",
    "cross_predict",
    "failed",
    "feature_names_of",
    "fit_calibration",
    "fit_correction",
    "group_folds",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BoostingParams:
    """Settings of the gradient-boosted models (point and quantiles)."""

    max_depth: int = 3
    max_iter: int = 60
    learning_rate: float = 0.2
    min_samples_leaf: int = 20
    conformalize_share: float = 0.25  #: share of training groups held out to conformalize the quantiles
    seed: int = 0
    #: the failure classifier's trees: as many as the regressors' (out of fold on dev, 200 trees at a
    #: learning rate of 0.05 gave the same average precision, 0.928 against 0.929, at 3 x the cost)
    failure_max_iter: int = 60
    failure_learning_rate: float = 0.2

    def model(self, **kwargs: object) -> HistGradientBoostingRegressor:
        """A fresh regressor with these settings.

        The structure (column 0) is an ordinal code 0-2 rather than a categorical feature: trees split it
        as well either way, and scikit-learn's categorical path adds an encoder to every predict call
        (about 80 % of its time for a batch of a few volumes).
        """
        return HistGradientBoostingRegressor(
            max_depth=self.max_depth,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.seed,
            **kwargs,
        )


@dataclass(frozen=True, kw_only=True)
class LabelledRows:
    """Feature rows of labelled structures with their real metrics (one row per volume and structure)."""

    rows: Sequence[Mapping[str, float]]  #: feature rows (``features.feature_rows`` and extras)
    structures: Sequence[Structure]  #: structure of each row
    dsc: np.ndarray  #: real Dice (0-1); nan where undefined
    hd_mm: np.ndarray  #: real Hausdorff distance (mm); nan where undefined
    groups: np.ndarray  #: patient of each row (cross-validation keeps a patient's rows together)
    segmenters: np.ndarray  #: segmenter of each row
    weights: np.ndarray | None = None  #: sample weights (None: all 1)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  #: other per-row columns (phase, ...)

    def __post_init__(self) -> None:
        n = len(self.rows)
        for name in ("structures", "dsc", "hd_mm", "groups", "segmenters"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} rows")

    def __len__(self) -> int:
        return len(self.rows)

    def target(self, target: Target) -> np.ndarray:
        """Real values of one target."""
        return np.asarray(self.dsc if target is Target.DSC else self.hd_mm, dtype=float)

    def take(self, index: np.ndarray) -> LabelledRows:
        """The rows at ``index``."""
        return LabelledRows(
            rows=[self.rows[i] for i in index],
            structures=[self.structures[i] for i in index],
            dsc=self.dsc[index],
            hd_mm=self.hd_mm[index],
            groups=self.groups[index],
            segmenters=self.segmenters[index],
            weights=None if self.weights is None else self.weights[index],
            extra={k: v[index] for k, v in self.extra.items()},
        )


def feature_names_of(rows: Sequence[Mapping[str, float]], exclude: Sequence[str] = ()) -> tuple[str, ...]:
    """``structure`` and every feature name that occurs in ``rows``, sorted (minus ``exclude``)."""
    names = sorted({k for row in rows for k in row} - set(exclude) - {STRUCTURE_FEATURE})
    return (STRUCTURE_FEATURE, *names)


def _matrix(data: LabelledRows, names: Sequence[str]) -> np.ndarray:
    from monitor.qc.calibration.features import feature_matrix

    x = feature_matrix(data.rows, names)
    x[:, 0] = structure_codes(data.structures)
    return x


def fit_calibration(
    data: LabelledRows,
    *,
    version: str,
    feature_names: Sequence[str] | None = None,
    params: BoostingParams = BoostingParams(),
    confidence: float = 0.9,
    description: str = "",
    failure_dice: float = 0.5,
    failure_hd_mm: float = 50.0,
) -> Calibration:
    """Fit point and interval models of both targets, and the failure model (P(real Dice below
    ``failure_dice`` or real HD above ``failure_hd_mm``), the flag thresholds' defaults).

    The point model uses every row with a defined target; the quantile models (``(1 - confidence) / 2``,
    ``(1 + confidence) / 2``, 0.5) are fitted on ``1 - conformalize_share`` of the groups and
    conformalized on the rest, so the intervals are calibrated on patients the quantiles never saw.
    With ``data.weights``, rows of weight below 1 (auxiliary rows such as synthetic failures) are
    weighted in every model but left out of the conformalization, so the intervals' coverage is that
    of the full-weight rows (the real cases).

    Raises: ValueError when there are fewer than 4 groups (patients).
    """
    groups = np.asarray(data.groups)
    if len(set(groups.tolist())) < 4:
        raise ValueError(f"need labelled cases of at least 4 patients, got {len(set(groups.tolist()))}")
    names = tuple(feature_names) if feature_names is not None else feature_names_of(data.rows)
    x = _matrix(data, names)
    with threadpool_limits(1):  # OpenMP start-up costs more than it saves on a few thousand rows
        models = _fit_models(data, x, groups, params, confidence)
        failure = _fit_failure(data, x, params, failure_dice, failure_hd_mm)
    return Calibration(
        version=version,
        feature_names=names,
        models=models,
        failure=failure,
        confidence=confidence,
        description=description,
    )


def failed(data: LabelledRows, dice: float, hd_mm: float) -> np.ndarray:
    """Whether each row is a real failure: Dice below ``dice`` or HD above ``hd_mm`` (mm)."""
    return (np.nan_to_num(data.dsc, nan=1.0) < dice) | (np.nan_to_num(data.hd_mm, nan=0.0) > hd_mm)


def _fit_failure(
    data: LabelledRows, x: np.ndarray, params: BoostingParams, dice: float, hd_mm: float
) -> FailureModel | None:
    """The failure classifier (None when the rows hold only one class). Columns without a single
    value in these rows are filled with 0 for the fit (the binning needs a value; at predict time
    their missing values take the trees' default branch)."""
    y = failed(data, dice, hd_mm)
    if y.all() or not y.any():
        return None
    x = x.copy()
    x[:, ~np.isfinite(x).any(axis=0)] = 0.0
    classifier = HistGradientBoostingClassifier(
        max_depth=params.max_depth,
        max_iter=params.failure_max_iter,
        learning_rate=params.failure_learning_rate,
        min_samples_leaf=params.min_samples_leaf,
        early_stopping=False,
        random_state=params.seed,
    ).fit(x, y, sample_weight=data.weights)
    return FailureModel(classifier=classifier, dice=dice, hd_mm=hd_mm)


def _fit_models(
    data: LabelledRows, x: np.ndarray, groups: np.ndarray, params: BoostingParams, confidence: float
) -> dict[Target, BoostedModel]:
    weights = data.weights
    models = {}
    for target in Target:
        y = data.target(target)
        keep = np.flatnonzero(~np.isnan(y))
        t = to_space(target, y[keep])
        w = None if weights is None else weights[keep]
        point = params.model().fit(x[keep], y[keep], sample_weight=w)  # real units (BoostedModel)
        split = GroupShuffleSplit(n_splits=1, test_size=params.conformalize_share, random_state=params.seed)
        fit_idx, cal_idx = next(split.split(keep, groups=groups[keep]))
        cqr = ConformalizedQuantileRegressor(params.model(loss="quantile"), confidence_level=confidence)
        cqr.fit(x[keep][fit_idx], t[fit_idx], fit_params={"sample_weight": None if w is None else w[fit_idx]})
        if w is not None and (w[cal_idx] >= 1.0).any():
            cal_idx = cal_idx[w[cal_idx] >= 1.0]
        cqr.conformalize(x[keep][cal_idx], t[cal_idx])
        models[target] = BoostedModel(point=point, interval=cqr, real_units=target)
    return models


def fit_correction(
    base: Calibration, data: LabelledRows, *, version: str, description: str = "", folds: int = 5
) -> Calibration:
    """Stack a site's correction on ``base``: Huber regression of the real value (learning space) on
    the base estimate and the structure, with CV+ intervals (MAPIE ``CrossConformalRegressor``).

    Raises: ValueError when the rows span fewer than 3 groups (patients).
    """
    n_groups = len(set(np.asarray(data.groups).tolist()))
    if n_groups < 3:
        raise ValueError(f"need labelled cases of at least 3 patients, got {n_groups}")
    x = base.matrix(data.rows, data.structures)
    base_space = {target: base.models[target].predict(x)[0] for target in Target}
    corrections = {}
    for target in Target:
        y = data.target(target)
        keep = np.flatnonzero(~np.isnan(y))
        design = SiteCorrection.design(base_space[target][keep], x[keep, 0])
        regressor = CrossConformalRegressor(
            HuberRegressor(max_iter=500),
            confidence_level=base.confidence,
            method="plus",
            cv=GroupKFold(n_splits=min(folds, n_groups)),
        )
        regressor.fit_conformalize(design, to_space(target, y[keep]), groups=np.asarray(data.groups)[keep])
        corrections[target] = SiteCorrection(regressor=regressor)
    return Calibration(
        version=version,
        feature_names=base.feature_names,
        models=base.models,
        corrections=corrections,
        failure=base.failure,
        confidence=base.confidence,
        description=description,
    )


def group_folds(groups: np.ndarray, n_splits: int = 5) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of a K-fold split that keeps each group's rows together."""
    groups = np.asarray(groups)
    n_splits = min(n_splits, len(set(groups.tolist())))
    yield from GroupKFold(n_splits=n_splits).split(np.zeros(len(groups)), groups=groups)


def cross_predict(
    data: LabelledRows,
    fit: Callable[[LabelledRows], Calibration],
    folds: Iterator[tuple[np.ndarray, np.ndarray]],
    failure: np.ndarray | None = None,
) -> dict[Target, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Out-of-fold (point, lower, upper) per target in real units; nan for rows no fold tested.

    ``failure`` (float [n], if given) receives the out-of-fold P(real failure) of the failure model at
    its fitted thresholds (nan where untested or without one).
    """
    n = len(data)
    out = {t: (np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)) for t in Target}
    for train, test in folds:
        if len(test) == 0:
            continue
        model = fit(data.take(train))
        x = model.matrix([data.rows[i] for i in test], [data.structures[i] for i in test])
        predicted = model.predict(x)
        if failure is not None and model.failure is not None:
            failure[test] = model.failure.probability(x)
        for target, values in predicted.items():
            for slot, value in zip(out[target], values, strict=True):
                slot[test] = value
    return out
