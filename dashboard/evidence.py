"""The evidence of a case for the case page: each reason a structure was flagged, with its text, the
check's value and the slices it implicates, and every check run (pure; no Streamlit).

A reason's text is ``monitor.qc.reasons.describe`` of the code with the structure's refined pDSC and pHD
(the plain ones where no refined value was stored, as for files scored before the evidence stage) and
the value of the check behind it. Its
slice is the first of the check's ``slices`` (0-based z of the mask), which the page's slice viewer
jumps to; a reason without a check (``missing``, or a file scored before) has none. A reason the
calibration raised (``edsc_low``, ``ehd_high``) carries the estimate behind it with its 90 % interval
(eDSC, eHD) and the failure model's stored P(failure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from dashboard.summaries import interval_text
from monitor.qc.reasons import ReasonCode, Thresholds, describe, reason_title
from monitor.store import CaseRecord, StoredCheck, StoredStructureScore

__all__ = [
    "EVIDENCE_COLUMNS",
    "ReasonItem",
    "calibration_status",
    "edsc_text",
    "ehd_text",
    "evidence_table",
    "image_status",
    "reason_items",
]

#: Reason codes the calibration's estimates (and its failure model, when it has one) raise.
_ESTIMATE_CODES = (ReasonCode.EDSC_LOW, ReasonCode.EHD_HIGH)
#: Columns of ``evidence_table``.
EVIDENCE_COLUMNS = ["structure", "check", "code", "value", "passed", "slices"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasonItem:
    """One reason code of one structure, as the case page lists it."""

    structure: str  #: LV, RV or MYO
    code: str  #: the reason code
    title: str  #: its short label (``"pHD high"``)
    text: str  #: the sentence (``describe``)
    value: float  #: the check's value (unit of the code); nan without a check
    slices: tuple[int, ...]  #: z indices (0-based) the check implicates; () without a check
    #: the failure model's P(real Dice < 0.5 or HD > 50 mm), 0-1, behind an estimate reason (``edsc_low``,
    #: ``ehd_high``); nan for other reasons, or when it is not stored
    p_failure: float = math.nan
    #: the estimate behind an estimate reason with its 90 % interval, ``"eDSC 0.41 (0.22-0.63)"`` for
    #: ``edsc_low``, ``"eHD 47.0 mm (22.0-90.0)"`` for ``ehd_high``; empty for other reasons or when not stored
    estimate: str = ""

    @property
    def first_slice(self) -> int | None:
        """The slice (0-based) the viewer jumps to, or None."""
        return self.slices[0] if self.slices else None


def edsc_text(score: StoredStructureScore) -> str:
    """The structure's eDSC (real Dice, 0-1) with its 90 % interval, ``"0.83 (0.71-0.90)"``; ``"–"``
    without an estimate."""
    return interval_text(score.edsc, score.edsc_lo, score.edsc_hi, digits=2)


def ehd_text(score: StoredStructureScore) -> str:
    """The structure's eHD (real Hausdorff distance) with its 90 % interval, ``"12.4 mm (7.9-21.0)"``;
    ``"–"`` without an estimate."""
    return interval_text(score.ehd_mm, score.ehd_mm_lo, score.ehd_mm_hi, digits=1, unit="mm")


def _estimate_of(score: StoredStructureScore, code: str) -> str:
    """The estimate an estimate reason stands on (``ReasonItem.estimate``); empty for other codes."""
    if code == ReasonCode.EDSC_LOW and not math.isnan(score.edsc):
        return f"eDSC {edsc_text(score)}"
    if code == ReasonCode.EHD_HIGH and not math.isnan(score.ehd_mm):
        return f"eHD {ehd_text(score)}"
    return ""


def _refined(refined: float, plain: float) -> float:
    return refined if math.isfinite(refined) else plain


def _check_of(score: StoredStructureScore, code: str) -> StoredCheck | None:
    """The check behind a reason: the first failed check with its code (else any with it)."""
    failed = [c for c in score.evidence if c.code == code and not c.passed]
    return failed[0] if failed else next((c for c in score.evidence if c.code == code), None)


def reason_items(record: CaseRecord, thresholds: Thresholds | None = None) -> list[ReasonItem]:
    """Every reason code of the case's structures (LV, RV, MYO order, codes as stored)."""
    items = []
    for score in record.structures:
        pdsc = _refined(score.pdsc_3d, score.pdsc)
        phd_mm = _refined(score.phd_mm_3d, score.phd_mm)
        for code in score.reasons:
            check = _check_of(score, code)
            value = check.value if check is not None else math.nan
            items.append(
                ReasonItem(
                    structure=str(score.structure),
                    code=code,
                    title=reason_title(code),
                    text=describe(
                        code, score.structure, pdsc=pdsc, phd_mm=phd_mm, thresholds=thresholds, value=value
                    ),
                    value=value,
                    slices=check.slices if check is not None else (),
                    p_failure=score.p_failure if code in _ESTIMATE_CODES else math.nan,
                    estimate=_estimate_of(score, code),
                )
            )
    return items


def evidence_table(record: CaseRecord) -> pd.DataFrame:
    """Every check run on the case (``EVIDENCE_COLUMNS``): failed first, then by structure; slices
    1-based as the slider shows them."""
    rows = [
        {
            "structure": str(score.structure),
            "check": reason_title(check.code),
            "code": check.code,
            "value": check.value,
            "passed": check.passed,
            "slices": ", ".join(str(z + 1) for z in check.slices),
        }
        for score in record.structures
        for check in score.evidence
    ]
    frame = pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)
    return frame.sort_values("passed", kind="stable", ignore_index=True)


def image_status(record: CaseRecord) -> str:
    """Whether the MR image was used as evidence, as a sentence (why not, when it was not)."""
    if record.image_used is None:
        return "MR image evidence: not recorded (scored before image pairing, or not scored)."
    if record.image_used:
        return "MR image used as evidence."
    detail = f" ({record.image_detail})" if record.image_detail else ""
    return f"MR image not used: {record.image_reason or 'unknown'}{detail}."


def calibration_status(record: CaseRecord) -> str:
    """Which calibration produced the estimates (eDSC, eHD, P(fail)), as a sentence; empty until the
    file is scored."""
    if record.calibration_version is not None:
        return f"Estimates by calibration {record.calibration_version}."
    if record.status == "scored":
        return "Scored without a calibration: no estimates (–)."
    return ""
