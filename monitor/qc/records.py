"""Plain domain records passed between pipeline stages (never ORM rows)."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.typing import Shape3, Spacing3

__all__ = ["StructureScore", "VolumeScore"]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeScore:
    """All scores and the overall verdict of one mask volume."""

    structures: tuple[StructureScore, ...]  #: one entry per structure, in LV, RV, MYO order
    flag: FlagLevel  #: worst structure flag
    shape: Shape3  #: mask shape [z, y, x], voxels
    spacing_mm: Spacing3  #: voxel spacing (dz, dy, dx) in mm
    slices_scored: int  #: slices that went through the autoencoder (slices with any foreground)
    timings_s: dict[str, float] = field(default_factory=dict)  #: seconds per stage, for profiling

    def structure(self, which: Structure) -> StructureScore:
        """The score of one structure."""
        for item in self.structures:
            if item.structure == which:
                return item
        raise KeyError(which)
