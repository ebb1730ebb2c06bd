"""Clinical indices per patient and their estimated errors, without ground truth.

A cardiologist reads volumes, ejection fractions and LV mass, not Dice. This stage computes them from the
masks and from their pseudo ground truths (the difference is the *pseudo error*), turns the pseudo
errors into an estimated absolute error with a 90 % conformal interval per index, and flags a patient
whose LVEF is probably off by more than a limit or whose indices are impossible.

- ``volumes``: per volume, LV/RV/MYO volumes (ml) and LV mass (g) of the mask and the pGT;
- ``pairing``: ED and ES of a case paired by case key and phase, never by arrival order;
- ``indices``: LV and RV EDV, ESV, EF and LV mass, pseudo errors;
- ``conformal``, ``estimator``: the per-index error models (HGB + MAPIE conformalized quantile
  regression on log1p of the error) and their features;
- ``flags``: ``ClinicalPolicy`` and ``flag_patient``;
- ``assess``: all of it for one pair -> ``PatientAssessment``.

Volumes in ml, EF in percent (errors in percentage points), mass in g; arrays uint8 ``[z, y, x]`` in
canonical labels (0 BG, 1 RV, 2 MYO, 3 LV), spacing ``(dz, dy, dx)`` in mm. No torch, no files.
"""

from __future__ import annotations

from monitor.qc.clinical.assess import PatientAssessment, assess_patient, patient_row
from monitor.qc.clinical.estimator import (
    FEATURES,
    ClinicalCalibration,
    fit_clinical_calibration,
    patient_features,
)
from monitor.qc.clinical.flags import ClinicalPolicy, ClinicalReason, flag_patient
from monitor.qc.clinical.indices import (
    INDEX_COLUMNS,
    INDEX_UNITS,
    INDICES,
    ClinicalValues,
    clinical_values,
    ejection_fraction_pct,
    pseudo_errors,
)
from monitor.qc.clinical.pairing import PHASES, PhasePair, pair_phases
from monitor.qc.clinical.volumes import (
    MYOCARDIAL_DENSITY_G_PER_ML,
    VolumeIndices,
    indices_from_score,
    lv_mass_g,
    volume_indices,
)

__all__ = [
    "FEATURES",
    "INDEX_COLUMNS",
    "INDEX_UNITS",
    "INDICES",
    "MYOCARDIAL_DENSITY_G_PER_ML",
    "PHASES",
    "ClinicalCalibration",
    "ClinicalPolicy",
    "ClinicalReason",
    "ClinicalValues",
    "PatientAssessment",
    "PhasePair",
    "VolumeIndices",
    "assess_patient",
    "clinical_values",
    "ejection_fraction_pct",
    "fit_clinical_calibration",
    "flag_patient",
    "indices_from_score",
    "lv_mass_g",
    "pair_phases",
    "patient_features",
    "patient_row",
    "pseudo_errors",
    "volume_indices",
]
