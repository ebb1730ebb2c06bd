"""Fitted gradient-boosted tree ensembles flattened into arrays, for batches of a few volumes.

scikit-learn predicts a ``HistGradientBoosting*`` model tree by tree, a Python-level loop that costs
about 6 us per tree whatever the batch size: the calibration's seven models (420 trees) take about 3 ms
for one volume. ``FlatTrees`` walks every tree of every model at once, one numpy step per tree level,
and gives the same raw predictions, bit for bit, in a small fraction of that.

Only what the calibration fits is supported: numeric splits (no categorical features) and one tree per
iteration (regression, binary classification); ``FlatTrees.of`` returns None for anything else, and
the caller keeps scikit-learn's own ``predict``. The split rule is scikit-learn's: a missing value
(nan) goes where the node's ``missing_go_to_left`` says, any other value left when it is at most the
node's threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

__all__ = ["FlatTrees"]

Boosted = HistGradientBoostingRegressor | HistGradientBoostingClassifier


@dataclass(frozen=True, kw_only=True)
class FlatTrees:
    """The trees of several fitted models, padded to one node count; T trees, N nodes, M models."""

    feature: np.ndarray  #: int64 [T, N], the split feature of each node (T counts a baseline per model)
    threshold: np.ndarray  #: float64 [T, N], left when the value is at most this
    missing_left: np.ndarray  #: bool [T, N], where a missing value goes
    left: np.ndarray  #: int64 [T, N], left child
    right: np.ndarray  #: int64 [T, N], right child
    leaf: np.ndarray  #: bool [T, N]; padding nodes are leaves of value 0
    value: np.ndarray  #: float64 [T, N], a leaf's contribution (learning rate applied)
    bounds: tuple[int, ...]  #: M + 1 tree indices: model m owns trees ``bounds[m]:bounds[m + 1]``
    baseline: np.ndarray  #: float64 [M], each model's starting raw prediction
    depth: int  #: the deepest leaf's depth over all trees

    @classmethod
    def of(cls, models: Sequence[Boosted]) -> FlatTrees | None:
        """Flatten fitted models; None when one of them has a tree this class does not walk."""
        # each model's trees follow a one-leaf tree holding its baseline, so that summing a model's
        # trees in order adds as scikit-learn does: the baseline, then tree after tree
        trees: list[np.ndarray | float] = []
        owners, baselines = [], []
        for m, model in enumerate(models):
            predictors = getattr(model, "_predictors", None)
            baseline = np.asarray(getattr(model, "_baseline_prediction", np.nan), dtype=float).ravel()
            if predictors is None or baseline.size != 1 or not np.isfinite(baseline[0]):
                return None
            trees.append(float(baseline[0]))
            owners.append(m)
            for iteration in predictors:
                if len(iteration) != 1:
                    return None
                nodes = getattr(iteration[0], "nodes", None)
                if nodes is None or nodes["is_categorical"].any():
                    return None
                trees.append(nodes)
                owners.append(m)
            baselines.append(float(baseline[0]))
        if not models:
            return None
        width = max(1 if isinstance(nodes, float) else len(nodes) for nodes in trees)
        shape = (len(trees), width)
        feature, left, right = (np.zeros(shape, dtype=np.int64) for _ in range(3))
        threshold, value = np.zeros(shape), np.zeros(shape)
        missing_left, leaf = np.zeros(shape, dtype=bool), np.ones(shape, dtype=bool)
        for t, nodes in enumerate(trees):
            if isinstance(nodes, float):  # a baseline: a leaf at the root
                value[t, 0] = nodes
                continue
            k = len(nodes)
            feature[t, :k] = nodes["feature_idx"]
            threshold[t, :k] = nodes["num_threshold"]
            missing_left[t, :k] = nodes["missing_go_to_left"].astype(bool)
            left[t, :k] = nodes["left"]
            right[t, :k] = nodes["right"]
            leaf[t, :k] = nodes["is_leaf"].astype(bool)
            value[t, :k] = nodes["value"]
        bounds = (0, *np.cumsum(np.bincount(owners, minlength=len(models))).tolist())
        return cls(
            feature=feature,
            threshold=threshold,
            missing_left=missing_left,
            left=left,
            right=right,
            leaf=leaf,
            value=value,
            bounds=tuple(int(b) for b in bounds),
            baseline=np.array(baselines),
            depth=max(0 if isinstance(nodes, float) else int(nodes["depth"].max()) for nodes in trees),
        )

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw predictions [n, M] for a feature matrix x [n, features] (float, nan = missing).

        For a squared-error or quantile regressor the raw prediction is its prediction; for a binary
        classifier it is the log-odds of the positive class.
        """
        x = np.asarray(x, dtype=float)
        rows = np.arange(len(x))[:, None]
        trees = np.arange(self.feature.shape[0])[None, :]
        node = np.zeros((len(x), self.feature.shape[0]), dtype=np.int64)
        for _ in range(self.depth):
            v = x[rows, self.feature[trees, node]]
            go_left = np.where(np.isnan(v), self.missing_left[trees, node], v <= self.threshold[trees, node])
            step = np.where(go_left, self.left[trees, node], self.right[trees, node])
            node = np.where(self.leaf[trees, node], node, step)
        values = self.value[trees, node]
        out = np.empty((len(x), len(self.baseline)))
        for m, (start, stop) in enumerate(zip(self.bounds[:-1], self.bounds[1:], strict=True)):
            out[:, m] = np.cumsum(values[:, start:stop], axis=1)[:, -1]  # in order: bit for bit
        return out
