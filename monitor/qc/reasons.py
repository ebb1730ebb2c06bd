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
    EDSC_LOW = "edsc_low"  #: the calibrated estimate says the real Dice is probably below the threshold
    EHD_HIGH = "ehd_high"  #: the calibrated estimate says the real HD is probably above the threshold

    @property
    def title(self) -> str:
        """Short label of the kind of flag, e.g. ``"pHD high"`` (dashboard flag types)."""
        return _INFO[self].title

    @property
    def default_severity(self) -> FlagLevel:
        """The level the code raises unless a ``FlagPolicy`` overrides it."""
        return _INFO[self].severity


@dataclass(frozen=True, slots=True)
class _Info:
    title: str  #: short label
    severity: FlagLevel  #: default level
    text: str  #: ``str.format`` template; fields ``structure``, ``pdsc``, ``phd_mm``, ``limit``


_INFO: dict[ReasonCode, _Info] = {
    ReasonCode.MISSING: _Info("missing", FlagLevel.ERRONEOUS, "{structure} missing from the mask"),
    ReasonCode.VANISHED: _Info(
        "vanished from pGT",
        FlagLevel.ERRONEOUS,
        "{structure} vanished from the pseudo ground truth (shape not recognised)",
    ),
    ReasonCode.PHD_HIGH: _Info("pHD high", FlagLevel.SUSPICIOUS, "{structure} pHD {phd_mm:.1f} mm {limit}"),
    ReasonCode.PDSC_LOW: _Info("pDSC low", FlagLevel.SUSPICIOUS, "{structure} pDSC {pdsc:.2f} {limit}"),
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
) -> str:
    """The sentence a person reads for one reason of one structure.

    Args:
        code: the reason code (an unknown one is shown as ``"<structure> <code>"``).
        structure: LV, RV or MYO.
        pdsc, phd_mm: the structure's pseudo Dice and pseudo Hausdorff distance (mm).
        thresholds: quoted in the text when given (``"> 50 mm"``), else ``"above the threshold"``.
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
    return _INFO[known].text.format(structure=structure, pdsc=pdsc, phd_mm=phd_mm, limit=limit)


def describe_all(scores: Iterable[_Scored], thresholds: Thresholds | None = None) -> tuple[str, ...]:
    """The sentences of every reason of ``scores`` (structures in the given order)."""
    return tuple(
        describe(code, s.structure, pdsc=s.pdsc, phd_mm=s.phd_mm, thresholds=thresholds)
        for s in scores
        for code in s.reasons
    )
