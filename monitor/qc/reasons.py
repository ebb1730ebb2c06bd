"""Reason codes: why a structure was flagged, as a stable code, and the human text rendered from it.

A flag carries codes, never prose. The store keeps the codes (a JSON list per structure row), the
Prometheus counter ``cmr_monitor_flag_reasons_total`` counts them under the bounded label ``reason``,
and the dashboard groups by them; the text a person reads is rendered from the code and the row's own
numbers (pDSC, pHD in mm) by ``describe``. Adding a check means adding a member here (with its title
and default severity): the storage format and the label set stay as they are.

Example:
    >>> describe(ReasonCode.PHD_HIGH, "LV", phd_mm=61.25)
    'LV pHD 61.2 mm above the threshold'
    >>> describe("phd_high", "LV", phd_mm=61.25, thresholds=FlagPolicy())  # doctest: +SKIP
    'LV pHD 61.2 mm > 50 mm'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel

__all__ = ["ReasonCode", "Thresholds", "describe", "describe_all", "reason_title"]


class ReasonCode(StrEnum):
    """Why a structure was flagged; the value is what is stored and exported (at most 64 characters)."""

    MISSING = "missing"  #: the structure is missing from the mask
    VANISHED = "vanished"  #: it vanished from the pseudo ground truth (shape not recognised)
    PHD_HIGH = "phd_high"  #: pseudo Hausdorff distance above the threshold
    PDSC_LOW = "pdsc_low"  #: pseudo Dice below the threshold
    # --- evidence checks (monitor.qc.evidence); a check's value is in the unit given here
    STACK_GAP = "stack_gap"  #: empty slices inside the structure's z-extent (slices)
    STACK_MARGIN = "stack_margin"  #: empty slices beyond the heart at a stack end (slices)
    CENTROID_JUMP = "centroid_jump"  #: a slice's centroid off its neighbours' midpoint (mm)
    AREA_JUMP = "area_jump"  #: a slice's area dip or spike against both neighbours (ratio)
    APEX_TAPER = "apex_taper"  #: LV area in its apical slice over its largest (fraction)
    RV_BEYOND_APEX = "rv_beyond_apex"  #: RV slices past the LV+MYO apex (slices)
    RV_POSITION = "rv_position"  #: a slice's LV->RV direction off the stack's mean (degrees)
    COMPONENTS = "components"  #: 3D components of the structure (count)
    FAR_COMPONENT = "far_component"  #: farthest voxel from the largest component (mm)
    MYO_OPEN = "myo_open"  #: LV cavity outside the closed myocardial ring (fraction of the slice's LV)
    LV_BACKGROUND = "lv_background"  #: LV boundary touching background (fraction of the boundary)
    RV_SEPTUM = "rv_septum"  #: slices where the RV does not reach the septum (slices)
    HOLES = "holes"  #: background enclosed by the structure in one slice (mm^2)
    IMAGE_CONTRAST = "image_contrast"  #: inside - outside ring intensity over the 1-99 % range
    EDGE_OFFSET = "edge_offset"  #: image edge minus mask boundary, outward (px)
    CLASS_OVERLAP = "class_overlap"  #: blood vs myocardium intensity overlap (1 - AUC)
    # --- calibrated estimates (monitor.qc.calibration)
    EDSC_LOW = "edsc_low"  #: the calibrated estimate says the real Dice is probably below the threshold
    EHD_HIGH = "ehd_high"  #: the calibrated estimate says the real HD is probably above the threshold

    @property
    def title(self) -> str:
        """Short label of the kind of flag, e.g. ``"pHD high"`` (dashboard flag types)."""
        return _INFO[self].title

    @property
    def default_severity(self) -> FlagLevel:
        """The level the code raises when it raises: a ``FlagPolicy`` may override it, and under its
        default ``evidence_flags="hard"`` only the hard anatomical checks (``flags.HARD_CHECKS``)
        among the evidence codes raise at all; ``ok`` for a check that is recorded in the evidence
        without raising the flag even in review mode (minor defects that real segmenters' acceptable
        masks often have: holes, area jumps, the LV cavity touching background, the RV off the septum;
        see docs/evidence.md)."""
        return _INFO[self].severity


@dataclass(frozen=True, slots=True)
class _Info:
    title: str  #: short label
    severity: FlagLevel  #: default level
    text: str  #: ``str.format`` template; fields ``structure``, ``pdsc``, ``phd_mm``, ``limit``, ``value``


_INFO: dict[ReasonCode, _Info] = {
    ReasonCode.MISSING: _Info("missing", FlagLevel.ERRONEOUS, "{structure} missing from the mask"),
    ReasonCode.VANISHED: _Info(
        "vanished from pGT",
        FlagLevel.ERRONEOUS,
        "{structure} vanished from the pseudo ground truth (shape not recognised)",
    ),
    ReasonCode.PHD_HIGH: _Info("pHD high", FlagLevel.SUSPICIOUS, "{structure} pHD {phd_mm:.1f} mm {limit}"),
    ReasonCode.PDSC_LOW: _Info("pDSC low", FlagLevel.SUSPICIOUS, "{structure} pDSC {pdsc:.2f} {limit}"),
    ReasonCode.STACK_GAP: _Info(
        "stack gap", FlagLevel.SUSPICIOUS, "{structure} missing on {value:.0f} slice(s) inside its extent"
    ),
    ReasonCode.STACK_MARGIN: _Info(
        "base or apex missing",
        FlagLevel.SUSPICIOUS,
        "{structure}: the heart ends {value:.0f} slice(s) before the end of the stack (base or apex missing)",
    ),
    ReasonCode.CENTROID_JUMP: _Info(
        "displaced slice", FlagLevel.SUSPICIOUS, "{structure} centre jumps {value:.1f} mm between slices"
    ),
    ReasonCode.AREA_JUMP: _Info(
        "area jump",
        FlagLevel.OK,
        "{structure} area dips or spikes {value:.1f}-fold against both neighbouring slices",
    ),
    ReasonCode.APEX_TAPER: _Info(
        "no apical taper",
        FlagLevel.SUSPICIOUS,
        "{structure} does not taper to the apex (apical slice {value:.0%} of the largest)",
    ),
    ReasonCode.RV_BEYOND_APEX: _Info(
        "RV past the apex", FlagLevel.SUSPICIOUS, "{structure} reaches {value:.0f} slice(s) past the LV apex"
    ),
    ReasonCode.RV_POSITION: _Info(
        "swapped labels",
        FlagLevel.ERRONEOUS,
        "{structure} on the wrong side of the LV on a slice ({value:.0f} deg off), labels swapped?",
    ),
    ReasonCode.COMPONENTS: _Info(
        "stray component", FlagLevel.SUSPICIOUS, "{structure} has {value:.0f} separate 3D components"
    ),
    ReasonCode.FAR_COMPONENT: _Info(
        "far component", FlagLevel.ERRONEOUS, "{structure} has a piece {value:.0f} mm from its main body"
    ),
    ReasonCode.MYO_OPEN: _Info(
        "broken myocardium",
        FlagLevel.SUSPICIOUS,
        "{structure} ring open: {value:.0%} of a slice's LV cavity lies outside it",
    ),
    ReasonCode.LV_BACKGROUND: _Info(
        "LV touches background",
        FlagLevel.OK,
        "{structure} cavity touches background on {value:.0%} of a slice's boundary",
    ),
    ReasonCode.RV_SEPTUM: _Info(
        "RV off the septum",
        FlagLevel.OK,
        "{structure} does not reach the septum on {value:.0f} slice(s)",
    ),
    ReasonCode.HOLES: _Info("holes", FlagLevel.OK, "{structure} has a hole of {value:.0f} mm^2"),
    ReasonCode.IMAGE_CONTRAST: _Info(
        "low image contrast",
        FlagLevel.SUSPICIOUS,
        "{structure} boundary has low image contrast ({value:.3f}): contour off the blood pool",
    ),
    ReasonCode.EDGE_OFFSET: _Info(
        "contour off the image edge",
        FlagLevel.SUSPICIOUS,
        "{structure} contour {value:+.1f} px from the image's edge (+: mask too small, -: too large)",
    ),
    ReasonCode.CLASS_OVERLAP: _Info(
        "classes overlap in the image",
        FlagLevel.SUSPICIOUS,
        "{structure} blood and myocardium intensities overlap ({value:.2f})",
    ),
    ReasonCode.EDSC_LOW: _Info(
        "Dice probably low", FlagLevel.SUSPICIOUS, "{structure} real Dice probably {limit}"
    ),
    ReasonCode.EHD_HIGH: _Info(
        "HD probably high", FlagLevel.SUSPICIOUS, "{structure} real HD probably {limit}"
    ),
}


class Thresholds(Protocol):
    """The thresholds a text may quote (``monitor.qc.flags.FlagPolicy`` has them)."""

    @property
    def suspicious_hd_mm(self) -> float: ...

    @property
    def suspicious_dice(self) -> float: ...


class _Scored(Protocol):
    """A structure's scores with their reason codes (``StructureScore``, ``StoredStructureScore``)."""

    @property
    def structure(self) -> Structure: ...

    @property
    def pdsc(self) -> float: ...

    @property
    def phd_mm(self) -> float: ...

    @property
    def reasons(self) -> tuple[str, ...]: ...


def _code(code: ReasonCode | str) -> ReasonCode | None:
    try:
        return ReasonCode(code)
    except ValueError:
        return None


def reason_title(code: ReasonCode | str) -> str:
    """Short label of a code (``"pHD high"``); an unknown code (from a newer version) is its own title."""
    known = _code(code)
    return known.title if known is not None else str(code)


def describe(
    code: ReasonCode | str,
    structure: Structure | str,
    *,
    pdsc: float = math.nan,
    phd_mm: float = math.nan,
    thresholds: Thresholds | None = None,
    value: float = math.nan,
) -> str:
    """The sentence a person reads for one reason of one structure.

    Args:
        code: the reason code (an unknown one is shown as ``"<structure> <code>"``).
        structure: LV, RV or MYO.
        pdsc, phd_mm: the structure's pseudo Dice and pseudo Hausdorff distance (mm).
        thresholds: quoted in the text when given (``"> 50 mm"``), else ``"above the threshold"``.
        value: the check's measured value, for an evidence code (unit as the code states).
    Returns: e.g. ``"RV pHD 61.2 mm > 50 mm"``.
    """
    known = _code(code)
    if known is None:
        return f"{structure} {code}"
    limit = ""
    if known in (ReasonCode.PHD_HIGH, ReasonCode.EHD_HIGH):
        limit = f"> {thresholds.suspicious_hd_mm:g} mm" if thresholds else "above the threshold"
    elif known in (ReasonCode.PDSC_LOW, ReasonCode.EDSC_LOW):
        limit = f"< {thresholds.suspicious_dice:g}" if thresholds else "below the threshold"
    return _INFO[known].text.format(structure=structure, pdsc=pdsc, phd_mm=phd_mm, limit=limit, value=value)


def describe_all(scores: Iterable[_Scored], thresholds: Thresholds | None = None) -> tuple[str, ...]:
    """The sentences of every reason of ``scores`` (structures in the given order)."""
    return tuple(
        describe(
            code,
            s.structure,
            pdsc=getattr(s, "pdsc_3d", math.nan) if _refined(s) else s.pdsc,
            phd_mm=getattr(s, "phd_mm_3d", math.nan) if _refined(s) else s.phd_mm,
            thresholds=thresholds,
            value=_check_value(s, code),
        )
        for s in scores
        for code in s.reasons
    )


def _refined(score: object) -> bool:
    """Whether the score carries refined metrics (the flags then quote them)."""
    value = getattr(score, "phd_mm_3d", math.nan)
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _check_value(score: object, code: ReasonCode | str) -> float:
    """The value of the failed check behind ``code`` in ``score.evidence`` (nan when not there)."""
    for check in getattr(score, "evidence", ()):
        if check.code == code and not check.passed:
            return float(check.value)
    return math.nan
