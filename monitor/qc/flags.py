"""Threshold policy: pseudo metrics of a structure -> ``ok`` / ``suspicious`` / ``erroneous`` with reason codes.

- ``missing`` (the structure is missing from the mask) or ``vanished`` (it vanished from the pseudo
  ground truth: the paper's pDSC = pHD = 0 case, the autoencoder does not recognise the shape at all):
  ``erroneous``;
- ``phd_high`` (pHD above ``suspicious_hd_mm``, 50 mm) and ``pdsc_low`` (pDSC below
  ``suspicious_dice``, 0.5): ``suspicious``;
- a failed evidence check (``monitor.qc.evidence``: stack, topology, image) raises its own code at
  that code's severity, depending on ``FlagPolicy.evidence_flags``: ``hard`` (the default) raises
  only the hard anatomical failures of ``HARD_CHECKS`` (swapped labels ``rv_position`` and a
  ``far_component``, erroneous; the base or apex missing from the stack, ``stack_margin``,
  suspicious) and records every other failed check in the structure's evidence without raising
  anything (the calibrated estimates already weigh those checks' values); ``all`` raises every check
  at its code's default severity (a review mode: every anatomical defect is flagged, including the
  many that leave the real Dice and HD acceptable). A check whose severity is ``ok`` is recorded in
  the structure's evidence but raises nothing;
- with a calibration (``monitor.qc.calibration``) and ``basis="estimates"`` (the default), the two
  pseudo-metric codes give way to ``edsc_low`` and ``ehd_high``: the estimate's interval says that the
  real Dice is below ``suspicious_dice`` (the real HD above ``suspicious_hd_mm``) with probability at
  least ``fail_probability``; ``basis="paper"`` keeps the paper's pDSC/pHD thresholds;
- ``ok`` when there is no reason. A structure takes the worst level of its reasons (each code's level
  is its default severity unless ``FlagPolicy.severities`` overrides it); a volume takes the worst level
  of its structures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Check

__all__ = ["EVIDENCE_FLAGS", "FLAG_BASES", "HARD_CHECKS", "FlagPolicy", "flag_structure", "worst_flag"]

#: What ``suspicious`` is decided on: calibrated estimates (when a calibration ran) or the paper's pDSC/pHD.
FLAG_BASES: tuple[str, ...] = ("estimates", "paper")

#: Which failed evidence checks raise the flag: the hard anatomical failures only, or every check.
EVIDENCE_FLAGS: tuple[str, ...] = ("hard", "all")

#: Evidence checks that raise the flag under ``evidence_flags="hard"``: failures no acceptable mask
#: has (labels swapped in a slice, a piece far from the heart, the base or apex missing from the
#: stack). On dev (docs/evaluation.md, out of fold) they and the failure model's flags fire on 0.6 %
#: of the ground-truth volumes and reach a volume precision of 0.90 at a recall of 0.96 against real
#: failures.
HARD_CHECKS: frozenset[ReasonCode] = frozenset(
    {ReasonCode.RV_POSITION, ReasonCode.FAR_COMPONENT, ReasonCode.STACK_MARGIN}
)

#: The codes of the flag's own metrics and estimates (every other code is an evidence check).
_METRIC_CODES = frozenset(
    {
        ReasonCode.MISSING,
        ReasonCode.VANISHED,
        ReasonCode.PHD_HIGH,
        ReasonCode.PDSC_LOW,
        ReasonCode.EDSC_LOW,
        ReasonCode.EHD_HIGH,
    }
)

#: codes that always raise the flag (the metrics' own): only evidence checks may be set to ``ok``
_ALWAYS_RAISE = frozenset({ReasonCode.MISSING, ReasonCode.VANISHED, ReasonCode.PHD_HIGH, ReasonCode.PDSC_LOW})


@dataclass(frozen=True, slots=True, kw_only=True)
class FlagPolicy:
    """Flag thresholds, and the level each reason code raises."""

    suspicious_hd_mm: float = 50.0  #: (estimated real) HD above this (mm) is suspicious
    suspicious_dice: float = 0.5  #: (estimated real) Dice below this is suspicious
    basis: str = "estimates"  #: ``estimates`` (when a calibration ran) or ``paper`` (pDSC/pHD)
    fail_probability: float = 0.5  #: flag when P(real beyond a threshold) is at least this (estimates)
    #: ``hard``: only ``HARD_CHECKS`` raise the flag, other failed checks are recorded; ``all``: every
    #: check raises its code's default severity (review mode)
    evidence_flags: str = "hard"
    #: reason code -> level it raises, where it differs from the code's ``default_severity``; ``ok``
    #: records a failed evidence check (``StructureScore.evidence``) without raising the flag
    severities: Mapping[ReasonCode, FlagLevel] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.suspicious_hd_mm > 0:
            raise ValueError(f"suspicious_hd_mm must be positive, got {self.suspicious_hd_mm}")
        if not 0.0 <= self.suspicious_dice <= 1.0:
            raise ValueError(f"suspicious_dice must lie in [0, 1], got {self.suspicious_dice}")
        if self.basis not in FLAG_BASES:
            raise ValueError(f"basis must be one of {FLAG_BASES}, got {self.basis!r}")
        if self.evidence_flags not in EVIDENCE_FLAGS:
            raise ValueError(f"evidence_flags must be one of {EVIDENCE_FLAGS}, got {self.evidence_flags!r}")
        if not 0.0 < self.fail_probability < 1.0:
            raise ValueError(f"fail_probability must lie in (0, 1), got {self.fail_probability}")
        checked = {ReasonCode(code): FlagLevel(level) for code, level in self.severities.items()}
        quiet = [code for code, level in checked.items() if level == FlagLevel.OK and code in _ALWAYS_RAISE]
        if quiet:
            raise ValueError(f"{quiet} must raise suspicious or erroneous, got {dict(self.severities)}")
        object.__setattr__(self, "severities", checked)

    def severity(self, code: ReasonCode) -> FlagLevel:
        """The level ``code`` raises under this policy: an explicit ``severities`` entry, else ``ok`` for
        an evidence check outside ``HARD_CHECKS`` under ``evidence_flags="hard"``, else the code's
        default severity."""
        if code in self.severities:
            return self.severities[code]
        if self.evidence_flags == "hard" and code not in _METRIC_CODES and code not in HARD_CHECKS:
            return FlagLevel.OK
        return code.default_severity


def flag_structure(
    *,
    pdsc: float,
    phd_mm: float,
    mask_voxels: int,
    pgt_voxels: int,
    policy: FlagPolicy = FlagPolicy(),
    checks: Iterable[Check] = (),
) -> tuple[FlagLevel, tuple[ReasonCode, ...]]:
    """Verdict for one structure.

    Args:
        pdsc: pseudo Dice (0-1; nan when mask and pGT are both empty); the refined pDSC when the
            evidence stage ran.
        phd_mm: pseudo Hausdorff distance in mm (nan when either is empty); the refined one likewise.
        mask_voxels, pgt_voxels: voxel counts of the structure in the mask and in the (plain) pGT.
        policy: thresholds and severities.
        checks: the structure's evidence; each failed check adds its code (once), unless its severity
            is ``ok`` (then the failure is only recorded in the evidence).
    Returns: (level, reason codes); the codes are empty for ``ok``. A structure missing from the mask
        or vanished from the pGT has that one code (its metrics are undefined or 0).
    """
    if mask_voxels == 0:
        reasons: tuple[ReasonCode, ...] = (ReasonCode.MISSING,)
    elif pgt_voxels == 0:
        reasons = (ReasonCode.VANISHED,)
    else:
        found = []
        if not math.isnan(phd_mm) and phd_mm > policy.suspicious_hd_mm:
            found.append(ReasonCode.PHD_HIGH)
        if not math.isnan(pdsc) and pdsc < policy.suspicious_dice:
            found.append(ReasonCode.PDSC_LOW)
        for check in checks:
            quiet = policy.severity(check.code) == FlagLevel.OK
            if not check.passed and check.code not in found and not quiet:
                found.append(check.code)
        reasons = tuple(found)
    return worst_flag(policy.severity(code) for code in reasons), reasons


def worst_flag(levels: Iterable[FlagLevel]) -> FlagLevel:
    """The most severe level (``ok`` for an empty input)."""
    return max(levels, key=lambda level: level.severity, default=FlagLevel.OK)
