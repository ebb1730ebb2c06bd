"""Tolerances of the evidence stage: where a check stops passing, and what the pGT refinement may add.

Defaults come from the 160 ground-truth volumes of the dev set (``bench/evidence_tolerances.py``
prints each check's pass rate on them); see the table in ``monitor.qc.evidence``'s docstring. Every
field can be set from ``monitor.config.Settings`` (``CMR_MONITOR_EVIDENCE_*``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["EvidenceSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceSettings:
    """What the evidence stage tolerates. Units are in each field's name (mm, slices, px, fraction)."""

    # --- pGT refinement (monitor.qc.evidence.refine)
    #: extend the pGT's LV/MYO into empty slices at a stack end beyond ``spare_slices`` (ACDC-like
    #: protocols cover the heart with at most one spare slice); a property of the acquisition
    stack_margin: bool = True
    spare_slices: int = 1  #: empty slices a stack may hold beyond the heart at each end
    rv_apex_gap_slices: int = 2  #: the RV may stop this many slices short of the LV+MYO apex
    myo_apex_slices: int = 1  #: MYO-only slices allowed beyond the LV's slice range
    # --- stack checks (monitor.qc.evidence.stack)
    max_gap_slices: int = 0  #: empty slices allowed inside a structure's z-extent
    centroid_jump_mm: float = 20.0  #: largest in-plane centroid shift between adjacent slices, mm
    area_jump_ratio: float = 4.0  #: largest area ratio between adjacent slices (larger / smaller)
    area_floor_fraction: float = 0.15  #: areas are floored at this fraction of the largest slice area
    apex_area_fraction: float = 0.9  #: LV area in its apical slice, at most this fraction of its largest
    rv_beyond_apex_slices: int = 0  #: RV slices allowed past the LV+MYO range at the apex
    rv_angle_deg: float = 75.0  #: largest deviation of a slice's RV direction (seen from the LV), degrees
    max_components: int = 1  #: 3D components per structure (each at least ``min_component_voxels``)
    link_mm: float = 5.0  #: pieces closer than this in-plane (or on nearly overlapping slices) are one
    min_component_voxels: int = 5  #: smaller specks are ignored by the component count
    far_component_mm: float = 15.0  #: farthest voxel from the largest component, mm
    # --- topology per slice (monitor.qc.evidence.topology)
    basal_tolerance_slices: int = 1  #: most basal LV slices exempt from the ring checks
    myo_open_fraction: float = 0.05  #: LV cavity area outside the closed MYO ring, fraction
    lv_background_fraction: float = 0.1  #: LV boundary touching background, fraction
    rv_septum_px: int = 2  #: the RV must come within this many pixels of the MYO
    max_rv_off_septum_slices: int = 0  #: slices where it does not, allowed
    hole_mm2: float = 20.0  #: largest enclosed background area in one slice, mm^2
    # --- image evidence (monitor.qc.evidence.image)
    contrast_min: float = 0.05  #: boundary contrast (inside - outside ring) / (p99 - p1), at least
    edge_bias_px: float = -0.9  #: where expert contours sit relative to the steepest step, px
    edge_offset_px: float = 1.5  #: largest |offset - bias| of the LV boundary, px
    class_overlap_max: float = 0.2  #: blood vs myocardium intensity overlap (1 - AUC), at most

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool):
                continue
            signed = item.name == "edge_bias_px"
            if not isinstance(value, int | float) or math.isnan(value) or (value < 0 and not signed):
                raise ValueError(f"evidence setting {item.name} must be a number >= 0, got {value!r}")
        for name in (
            "myo_open_fraction",
            "lv_background_fraction",
            "apex_area_fraction",
            "class_overlap_max",
        ):
            if getattr(self, name) > 1:
                raise ValueError(
                    f"evidence setting {name} is a fraction in [0, 1], got {getattr(self, name)}"
                )
