"""Estimated absolute errors of the clinical indices, with 90 % intervals, from a patient's two volumes.

``patient_features`` turns an ED and an ES ``VolumeIndices`` into one row of ``FEATURES``: for every
index the mask's value, its pseudo error (mask minus pGT) and that error relative to the pGT; the
difference in slice extent between ED and ES (a base missed at one phase only); the stack margins; and
the volumes' pseudo Dice and Hausdorff distance. ``ClinicalCalibration`` holds one ``IntervalModel`` per
index, fitted on labelled data (``bench/fit_clinical.py``, stored by ``monitor.io.clinical``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from monitor.qc.clinical.conformal import IntervalModel, fit_interval_model
from monitor.qc.clinical.indices import INDICES, clinical_values, ed_lv_deficit_ml, lvef_deficit_shift_pct
from monitor.qc.clinical.volumes import VolumeIndices
from monitor.qc.records import Estimate

__all__ = [
    "BASELINE_INDICES",
    "FEATURES",
    "ClinicalCalibration",
    "fit_clinical_calibration",
    "patient_features",
]

_STRUCTURES = ("lv", "rv", "myo")
#: Indices whose error model corrects the pseudo error rather than learning the error from scratch: on
#: dev only the LVEF's pseudo error tracks its real error closely enough (r .98 pooled, 5-fold by
#: patient); for the volumes and the RV EF the features alone did better.
BASELINE_INDICES: tuple[str, ...] = ("lv_ef",)


def _feature_names() -> tuple[str, ...]:
    names: list[str] = []
    for index in INDICES:
        names += [f"{index}_mask", f"{index}_pseudo_error", f"{index}_pseudo_rel"]
    names += ["lv_slices_ed_minus_es", "rv_slices_ed_minus_es", "heart_slices_ed_minus_es"]
    names += [
        "lv_slices_mask_minus_pgt_ed",
        "lv_slices_mask_minus_pgt_es",
        "margin_slices_ed",
        "margin_slices_es",
    ]
    for phase in ("ed", "es"):
        names += [f"pdsc_{s}_{phase}" for s in _STRUCTURES]
        names += [f"phd_mm_{s}_{phase}" for s in _STRUCTURES]
    return tuple(names)


#: The estimator's input columns, in order.
FEATURES: tuple[str, ...] = _feature_names()


def patient_features(ed: VolumeIndices, es: VolumeIndices) -> np.ndarray:
    """One row of ``FEATURES`` (float64, nan where undefined) for a patient's ED and ES volumes."""
    mask = clinical_values(ed, es, source="mask")
    pgt = clinical_values(ed, es, source="pgt")
    row: list[float] = []
    for index in INDICES:
        m, p = mask.get(index), pgt.get(index)
        error = m - p
        row += [m, error, error / abs(p) if abs(p) > 1e-6 else math.nan]
    row += [
        ed.lv_slices - es.lv_slices,
        ed.rv_slices - es.rv_slices,
        ed.heart_slices - es.heart_slices,
        ed.lv_slices - ed.pgt_lv_slices,
        es.lv_slices - es.pgt_lv_slices,
        ed.margin_slices,
        es.margin_slices,
    ]
    for volume in (ed, es):
        row += list(volume.pdsc) + list(volume.phd_mm)
    values = np.asarray(row, dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


@dataclass(frozen=True, slots=True, kw_only=True)
class ClinicalCalibration:
    """Per-index error models, and what they were fitted on."""

    version: str  #: e.g. ``clinical-acdc-dev-2026.12``; stored with every estimate
    features: tuple[str, ...]  #: the feature columns the models expect (``FEATURES`` when fitted)
    models: Mapping[str, IntervalModel]  #: index -> model of its absolute error
    confidence: float = 0.9  #: nominal coverage of the intervals

    def estimate_rows(self, rows: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Index -> (estimate, lo, hi) arrays of the absolute error, for rows of ``FEATURES``.

        Raises: ValueError when the calibration was fitted on other features.
        """
        if tuple(self.features) != FEATURES:
            raise ValueError(
                f"calibration {self.version} expects {len(self.features)} other features; refit it for this version"
            )
        x = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        return {index: model.predict(x) for index, model in self.models.items()}

    def estimate(self, ed: VolumeIndices, es: VolumeIndices) -> dict[str, Estimate]:
        """Index -> estimated absolute error with its interval (ml, percentage points, g).

        A slice the ED mask lost where the ES mask has LV cavity (``ed_lv_deficit_ml``) is an error
        the models may not have seen in their training data: the LV EDV and LVEF estimates are then at
        least the error that loss makes (scaled by the ED/ES ratio), and their lower ends at least its
        lower bound (the ES volume of the lost slices).
        """
        out = self.estimate_rows(patient_features(ed, es)[None, :])
        estimates = {
            index: Estimate(value=float(v[0]), lo=float(lo[0]), hi=float(hi[0]))
            for index, (v, lo, hi) in out.items()
        }
        floors = {
            "lv_edv": (ed_lv_deficit_ml(ed, es), ed_lv_deficit_ml(ed, es, scaled=False)),
            "lv_ef": (lvef_deficit_shift_pct(ed, es), lvef_deficit_shift_pct(ed, es, scaled=False)),
        }
        for index, (value, bound) in floors.items():
            current = estimates.get(index)
            if current is not None and value > 0.0 and math.isfinite(value):
                estimates[index] = Estimate(
                    value=max(current.value, value), lo=max(current.lo, bound), hi=max(current.hi, value)
                )
        return estimates


def fit_clinical_calibration(
    rows: np.ndarray,
    abs_errors: Mapping[str, np.ndarray],
    groups: Sequence[str] | np.ndarray,
    *,
    version: str,
    confidence: float = 0.9,
    seed: int = 0,
    baseline_indices: tuple[str, ...] = BASELINE_INDICES,
) -> ClinicalCalibration:
    """Fit one interval model per index.

    Args:
        rows: float [n, len(FEATURES)], one per patient and segmenter.
        abs_errors: index -> real absolute error per row (nan rows are left out of that index).
        groups: patient of each row (conformalization holds out whole patients).
        version: the calibration's name.
        baseline_indices: indices whose model corrects their pseudo error (``IntervalModel``
            ``baseline_column``); the others learn the error from the features alone.
    """
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURES):
        raise ValueError(f"rows must be [n, {len(FEATURES)}], got {x.shape}")
    models = {
        index: fit_interval_model(
            x,
            abs_errors[index],
            np.asarray(groups),
            confidence=confidence,
            seed=seed,
            baseline_column=FEATURES.index(f"{index}_pseudo_error") if index in baseline_indices else None,
        )
        for index in INDICES
        if index in abs_errors
    }
    return ClinicalCalibration(version=version, features=FEATURES, models=models, confidence=confidence)
