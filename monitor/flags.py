"""Threshold policy: pseudo metrics of a structure -> ``ok`` / ``suspicious`` / ``erroneous`` with reasons.

- ``erroneous``: the structure is missing from the mask, or it vanished from the pseudo ground truth
  (the paper's pDSC = pHD = 0 case: the autoencoder does not recognise the shape at all);
- ``suspicious``: pHD above ``suspicious_hd_mm`` (50 mm) or pDSC below ``suspicious_dice`` (0.5);
- ``ok`` otherwise. A volume takes the worst level of its structures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.labels import Structure
from monitor.records import FlagLevel

__all__ = ["FlagPolicy", "flag_structure", "worst_flag"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlagPolicy:
    """Flag thresholds."""

    suspicious_hd_mm: float = 50.0  #: pHD above this (mm) is suspicious
    suspicious_dice: float = 0.5  #: pDSC below this is suspicious

    def __post_init__(self) -> None:
        if not self.suspicious_hd_mm > 0:
            raise ValueError(f"suspicious_hd_mm must be positive, got {self.suspicious_hd_mm}")
        if not 0.0 <= self.suspicious_dice <= 1.0:
            raise ValueError(f"suspicious_dice must lie in [0, 1], got {self.suspicious_dice}")


def flag_structure(
    structure: Structure,
    *,
    pdsc: float,
    phd_mm: float,
    mask_voxels: int,
    pgt_voxels: int,
    policy: FlagPolicy = FlagPolicy(),
) -> tuple[FlagLevel, tuple[str, ...]]:
    """Verdict for one structure.

    Args:
        structure: which structure (used in the reasons).
        pdsc: pseudo Dice (0-1; nan when mask and pGT are both empty).
        phd_mm: pseudo Hausdorff distance in mm (nan when either is empty).
        mask_voxels, pgt_voxels: voxel counts of the structure in the mask and in the pGT.
        policy: thresholds.
    Returns: (level, reasons); reasons is empty for ``ok``.
    """
    name = structure.value
    if mask_voxels == 0:
        return FlagLevel.ERRONEOUS, (f"{name} missing from the mask",)
    if pgt_voxels == 0:
        return FlagLevel.ERRONEOUS, (f"{name} vanished from the pseudo ground truth (shape not recognised)",)
    reasons: list[str] = []
    if not math.isnan(phd_mm) and phd_mm > policy.suspicious_hd_mm:
        reasons.append(f"{name} pHD {phd_mm:.1f} mm > {policy.suspicious_hd_mm:g} mm")
    if not math.isnan(pdsc) and pdsc < policy.suspicious_dice:
        reasons.append(f"{name} pDSC {pdsc:.2f} < {policy.suspicious_dice:g}")
    return (FlagLevel.SUSPICIOUS, tuple(reasons)) if reasons else (FlagLevel.OK, ())


def worst_flag(levels: Iterable[FlagLevel]) -> FlagLevel:
    """The most severe level (``ok`` for an empty input)."""
    return max(levels, key=lambda level: level.severity, default=FlagLevel.OK)
