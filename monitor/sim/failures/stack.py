"""Slice families: basal or apical slices missing, the RV stopping early or missing, slices past the
base (the LV leaking into the atrium) or past the apex. Each edit returns a new uint8 [z, y, x] array."""

from __future__ import annotations

import numpy as np

from monitor.sim.failures.geometry import (
    LV,
    RV,
    NotApplicable,
    heart_slices_base_to_apex,
)
from monitor.sim.phantoms import as_label_volume

__all__ = [
    "extra_apical_slices",
    "extra_basal_slices",
    "missing_apical_slices",
    "missing_basal_slices",
    "missing_rv",
    "rv_short",
]


def missing_basal_slices(labels: np.ndarray, n: int) -> np.ndarray:
    """Erase every label on the ``n`` most basal heart slices (the base is the hardest part to segment).

    Raises: NotApplicable when the heart has no more than ``n`` slices.
    """
    return _erase_heart_slices(labels, n, apical=False)


def missing_apical_slices(labels: np.ndarray, n: int) -> np.ndarray:
    """Erase every label on the ``n`` most apical heart slices (the mask stops short of the apex).

    Raises: NotApplicable when the heart has no more than ``n`` slices.
    """
    return _erase_heart_slices(labels, n, apical=True)


def _erase_heart_slices(labels: np.ndarray, n: int, *, apical: bool) -> np.ndarray:
    labels = as_label_volume(labels)
    order = heart_slices_base_to_apex(labels)
    if order.size <= n:
        raise NotApplicable(f"{order.size} heart slices, cannot remove {n} and keep a heart")
    out = labels.copy()
    out[order[-n:] if apical else order[:n]] = 0
    return out


def rv_short(labels: np.ndarray, n: int) -> np.ndarray:
    """Erase the RV on its ``n`` most apical slices (the commonest real error: the RV stops early).

    Raises: NotApplicable when the RV spans no more than ``n`` slices.
    """
    labels = as_label_volume(labels)
    order = heart_slices_base_to_apex(labels)
    rv_slices = [int(z) for z in order if (labels[z] == RV).any()]
    if len(rv_slices) <= n:
        raise NotApplicable(f"the RV spans {len(rv_slices)} slices, cannot remove {n}")
    out = labels.copy()
    for z in rv_slices[-n:]:
        out[z][out[z] == RV] = 0
    return out


def missing_rv(labels: np.ndarray) -> np.ndarray:
    """Erase the RV everywhere (a network without an RV class, or one that lost it)."""
    labels = as_label_volume(labels)
    if not (labels == RV).any():
        raise NotApplicable("the mask has no RV")
    out = labels.copy()
    out[out == RV] = 0
    return out


def _room(labels: np.ndarray, n: int, basal: bool) -> tuple[int, int, list[int]]:
    """(end slice, step away from the heart, the ``n`` empty slices past that end)."""
    order = heart_slices_base_to_apex(labels)
    if order.size < 2:
        raise NotApplicable(f"{order.size} heart slices: no base and apex to tell apart")
    end = int(order[0] if basal else order[-1])
    other = int(order[-1] if basal else order[0])
    step = 1 if end > other else -1
    targets = [end + step * k for k in range(1, n + 1)]
    if any(z < 0 or z >= labels.shape[0] for z in targets):
        where = "base" if basal else "apex"
        raise NotApplicable(f"no room for {n} slices past the {where} (stack of {labels.shape[0]})")
    return end, step, targets


def extra_basal_slices(labels: np.ndarray, n: int) -> np.ndarray:
    """Label ``n`` empty slices past the base as LV: the LV cavity leaking into the atrium.

    Each added slice holds the LV cavity of the most basal slice that has one (the atrium is a blood
    pool of about that size).

    Raises: NotApplicable when the stack has fewer than ``n`` slices past the base, or no LV.
    """
    labels = as_label_volume(labels)
    _, _, targets = _room(labels, n, basal=True)
    order = heart_slices_base_to_apex(labels)
    source = next((int(z) for z in order if (labels[z] == LV).any()), None)
    if source is None:
        raise NotApplicable("the mask has no LV cavity")
    out = labels.copy()
    for z in targets:
        out[z][labels[source] == LV] = LV
    return out


def extra_apical_slices(labels: np.ndarray, n: int) -> np.ndarray:
    """Repeat the apical slice's labels on ``n`` empty slices past the apex (the LV runs on too far).

    Raises: NotApplicable when the stack has fewer than ``n`` slices past the apex.
    """
    labels = as_label_volume(labels)
    end, _, targets = _room(labels, n, basal=False)
    out = labels.copy()
    for z in targets:
        out[z] = labels[end]
    return out
