"""A patient's clinical assessment: indices of the masks and pGTs, pseudo errors, estimated errors with
intervals, and the flag; or, while a frame is missing, an incomplete record that says which.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.qc.clinical.estimator import ClinicalCalibration
from monitor.qc.clinical.flags import ClinicalPolicy, ClinicalReason, flag_patient
from monitor.qc.clinical.indices import INDEX_COLUMNS, INDICES, ClinicalValues, clinical_values, pseudo_errors
from monitor.qc.clinical.pairing import PhasePair
from monitor.qc.clinical.volumes import VolumeIndices
from monitor.qc.levels import FlagLevel
from monitor.qc.records import Estimate

__all__ = ["PatientAssessment", "assess_patient", "patient_row"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientAssessment:
    """Clinical indices of one case (one segmenter) and how wrong they probably are."""

    case_key: str  #: normalised case key
    missing: tuple[str, ...] = ()  #: phases not yet scored (``ED``, ``ES``); empty when complete
    mask: ClinicalValues | None = None  #: indices of the masks (None while incomplete)
    pgt: ClinicalValues | None = None  #: indices of the pseudo ground truths
    pseudo_error: ClinicalValues | None = None  #: mask minus pGT
    #: index -> estimated absolute error with its interval; empty without a calibration
    estimates: Mapping[str, Estimate] = field(default_factory=dict)
    flag: FlagLevel | None = None  #: None while incomplete
    reasons: tuple[ClinicalReason, ...] = ()
    calibration_version: str | None = None  #: the calibration behind ``estimates``

    @property
    def complete(self) -> bool:
        """Both ED and ES were scored."""
        return not self.missing


def assess_patient(
    pair: PhasePair[VolumeIndices],
    *,
    calibration: ClinicalCalibration | None,
    policy: ClinicalPolicy,
) -> PatientAssessment:
    """Indices, pseudo errors, estimated errors and flag of one case; incomplete when a frame is missing.

    The result depends only on the pair's content, not on which frame came first.
    """
    if pair.ed is None or pair.es is None:
        return PatientAssessment(case_key=pair.case_key, missing=pair.missing)
    mask = clinical_values(pair.ed, pair.es, source="mask")
    pgt = clinical_values(pair.ed, pair.es, source="pgt")
    estimates = calibration.estimate(pair.ed, pair.es) if calibration is not None else {}
    flag, reasons = flag_patient(mask, estimates or None, policy)
    return PatientAssessment(
        case_key=pair.case_key,
        mask=mask,
        pgt=pgt,
        pseudo_error=pseudo_errors(mask, pgt),
        estimates=estimates,
        flag=flag,
        reasons=reasons,
        calibration_version=calibration.version if calibration is not None else None,
    )


def patient_row(assessment: PatientAssessment) -> dict[str, object]:
    """A flat row of one assessment: case, completeness, flag, then per index (``INDEX_COLUMNS`` name
    ``c``) ``c``, ``pgt_c``, ``pseudo_error_c``, ``est_error_c``, ``est_error_c_lo``, ``est_error_c_hi``
    (nan where not computed). The same columns as the store's export of ``patient_indices``.
    """
    row: dict[str, object] = {
        "case_key": assessment.case_key,
        "complete": assessment.complete,
        "missing": ";".join(assessment.missing),
        "flag": str(assessment.flag) if assessment.flag is not None else None,
        "reasons": ";".join(str(r) for r in assessment.reasons),
        "calibration_version": assessment.calibration_version,
    }
    for index in INDICES:
        column = INDEX_COLUMNS[index]
        for prefix, values in (
            ("", assessment.mask),
            ("pgt_", assessment.pgt),
            ("pseudo_error_", assessment.pseudo_error),
        ):
            row[f"{prefix}{column}"] = values.get(index) if values is not None else math.nan
        estimate = assessment.estimates.get(index)
        row[f"est_error_{column}"] = estimate.value if estimate else math.nan
        row[f"est_error_{column}_lo"] = estimate.lo if estimate else math.nan
        row[f"est_error_{column}_hi"] = estimate.hi if estimate else math.nan
    return row
