"""The clinical flag of a patient: ``suspicious`` when the LVEF is probably off by more than a limit, or
an index is physiologically impossible; ``ok`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from monitor.qc.clinical.indices import ClinicalValues
from monitor.qc.levels import FlagLevel
from monitor.qc.records import Estimate

__all__ = ["ClinicalPolicy", "ClinicalReason", "flag_patient"]


class ClinicalReason(StrEnum):
    """Why a patient's indices are flagged (stored codes)."""

    LVEF_ERROR_HIGH = "lvef_error_high"  #: the estimated |LVEF error| interval lies above the limit
    EF_IMPOSSIBLE = "ef_impossible"  #: an EF outside 0-100 %, or undefined (EDV of 0)
    ESV_ABOVE_EDV = "esv_above_edv"  #: a ventricle larger at end-systole than at end-diastole


@dataclass(frozen=True, slots=True, kw_only=True)
class ClinicalPolicy:
    """Thresholds of the clinical flag."""

    #: flag when the estimated |LVEF error| (percentage points) is above this ...
    lvef_error_limit_pct: float = 5.0
    #: ... judged by ``lo`` (the whole 90 % interval lies above the limit) or ``estimate`` (the point)
    rule: str = "lo"

    def __post_init__(self) -> None:
        if not (self.lvef_error_limit_pct >= 0):
            raise ValueError(f"lvef_error_limit_pct must be >= 0, got {self.lvef_error_limit_pct}")
        if self.rule not in ("lo", "estimate"):
            raise ValueError(f"rule must be 'lo' or 'estimate', got {self.rule!r}")


def flag_patient(
    values: ClinicalValues, estimates: Mapping[str, Estimate] | None, policy: ClinicalPolicy
) -> tuple[FlagLevel, tuple[ClinicalReason, ...]]:
    """Flag one patient's indices (from its masks).

    Args:
        values: the indices of the masks.
        estimates: index -> estimated absolute error; None when no calibration is loaded (then only the
            physiological checks apply).
        policy: the limit and the rule.
    Returns: ``suspicious`` with its reasons, or ``ok`` with none.
    """
    reasons: list[ClinicalReason] = []
    lvef = estimates.get("lv_ef") if estimates else None
    if lvef is not None:
        judged = lvef.lo if policy.rule == "lo" else lvef.value
        if judged > policy.lvef_error_limit_pct:
            reasons.append(ClinicalReason.LVEF_ERROR_HIGH)
    efs = (values.lv_ef_pct, values.rv_ef_pct)
    if any(not math.isfinite(ef) or not 0.0 <= ef <= 100.0 for ef in efs):
        reasons.append(ClinicalReason.EF_IMPOSSIBLE)
    if values.lv_esv_ml > values.lv_edv_ml or values.rv_esv_ml > values.rv_edv_ml:
        reasons.append(ClinicalReason.ESV_ABOVE_EDV)
    return (FlagLevel.SUSPICIOUS if reasons else FlagLevel.OK), tuple(reasons)
