"""Plain domain records passed between pipeline stages (never ORM rows)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.typing import Shape3, Spacing3

__all__ = ["ESTIMATE_FIELDS", "Check", "Estimate", "StructureScore", "VolumeScore"]

#: Names of the estimates of a structure where they are columns (database, outputs): eDSC and eHD (mm)
#: with the lower and upper ends of their intervals.
ESTIMATE_FIELDS: tuple[str, ...] = ("edsc", "edsc_lo", "edsc_hi", "ehd_mm", "ehd_mm_lo", "ehd_mm_hi")


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One named piece of evidence about one structure (``monitor.qc.evidence``).

    ``value`` is in the unit the code's documentation states (mm, slices, a ratio, a contrast); a check
    that could not be evaluated (no image, structure absent) is not emitted at all.
    """

    code: ReasonCode  #: the check, and the reason code it raises when it fails
    value: float  #: the measured value
    passed: bool  #: verdict against the check's tolerance
    slices: tuple[int, ...] = ()  #: z indices (of the mask, 0-based) the check implicates


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """A calibrated estimate of a real metric with its interval (``monitor.qc.calibration``)."""

    value: float  #: point estimate
    lo: float  #: lower end of the interval
    hi: float  #: upper end of the interval


@dataclass(frozen=True, slots=True, kw_only=True)
class StructureScore:
    """Pseudo metrics of one structure of one volume (mask vs its pseudo ground truth)."""

    structure: Structure  #: LV, RV or MYO
    pdsc: float  #: pseudo Dice (0-1); 0 when exactly one of mask/pGT is empty, nan when both are
    phd_mm: float  #: pseudo symmetric 3D Hausdorff distance in mm; nan when either is empty
    flag: FlagLevel  #: verdict for this structure
    reasons: tuple[ReasonCode, ...]  #: reason codes behind the flag (empty when ok); text: ``describe``
    mask_voxels: int  #: voxels of this structure in the mask
    pgt_voxels: int  #: voxels of this structure in the pseudo ground truth
    mask_volume_ml: float  #: volume of this structure in the mask, millilitres
    #: 3D-refined pseudo Dice / Hausdorff (mm) against the refined pGT; nan until the evidence stage ran
    pdsc_3d: float = math.nan
    phd_mm_3d: float = math.nan
    pgt_volume_ml: float = math.nan  #: volume of this structure in the refined pGT, millilitres
    evidence: tuple[Check, ...] = ()  #: the checks run on this structure (passed and failed)
    edsc: Estimate | None = None  #: calibrated estimate of the real Dice, 90 % interval
    ehd_mm: Estimate | None = None  #: calibrated estimate of the real Hausdorff distance (mm), 90 % interval
    #: calibrated probability that the real Dice or HD is past the flag thresholds (a real failure);
    #: None without a calibration that has a failure model for those thresholds
    p_failure: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeScore:
    """All scores and the overall verdict of one mask volume."""

    structures: tuple[StructureScore, ...]  #: one entry per structure, in LV, RV, MYO order
    flag: FlagLevel  #: worst structure flag
    shape: Shape3  #: mask shape [z, y, x], voxels
    spacing_mm: Spacing3  #: voxel spacing (dz, dy, dx) in mm
    slices_scored: int  #: slices that went through the autoencoder (slices with any foreground)
    timings_s: dict[str, float] = field(default_factory=dict)  #: seconds per stage, for profiling
    image_used: bool = False  #: whether an MR image was paired and used as evidence
    calibration_version: str | None = None  #: the calibration that produced the estimates, if any

    def structure(self, which: Structure) -> StructureScore:
        """The score of one structure."""
        for item in self.structures:
            if item.structure == which:
                return item
        raise KeyError(which)
