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
    #: extend the pGT's LV/MYO into empty slices at a stack end beyond ``spare_mm`` (ACDC-like
    #: protocols cover the heart with at most one spare 10 mm slice); a property of the acquisition
    stack_margin: bool = True
    #: empty stack a stack end may hold beyond the heart, mm (slices: spare_mm // dz, at least 1)
    spare_mm: float = 10.0
    rv_apex_gap_slices: int = 1  #: the RV may stop this many slices short of the LV+MYO apex
    myo_apex_slices: int = 1  #: MYO-only slices allowed beyond the LV's slice range
    # --- stack checks (monitor.qc.evidence.stack)
    max_gap_slices: int = 0  #: empty slices allowed inside a structure's z-extent
    #: largest in-plane shift of a slice's centroid from the midpoint of its neighbours' (LV+MYO), mm
    centroid_jump_mm: float = 20.0
    rv_centroid_jump_mm: float = 25.0  #: the same for the RV, mm
    area_jump_ratio: float = 2.0  #: largest dip or spike of a slice's area against both neighbours
    area_floor_fraction: float = 0.05  #: areas are floored at this fraction of the largest slice area
    #: slices smaller than this fraction of the largest are too small for a stable centroid
    centroid_area_fraction: float = 0.15
    apex_area_fraction: float = 0.9  #: LV area in its apical slice, at most this fraction of its largest
    rv_beyond_apex_slices: int = 1  #: RV slices allowed past the LV+MYO range at the apex
    rv_angle_deg: float = 75.0  #: largest deviation of a slice's RV direction (seen from the LV), degrees
    max_components: int = 1  #: 3D components per structure (each at least ``min_component_voxels``)
    link_mm: float = 10.0  #: pieces closer than this in-plane (or on nearly overlapping slices) are one
    min_component_voxels: int = 5  #: smaller specks are ignored by the component count
    far_component_mm: float = 40.0  #: farthest voxel from the largest component, mm
    # --- topology per slice (monitor.qc.evidence.topology)
    basal_tolerance_slices: int = 1  #: most basal LV slices exempt from the ring checks
    myo_open_fraction: float = 0.05  #: LV cavity area outside the closed MYO ring, fraction
    lv_background_fraction: float = 0.1  #: LV boundary touching background, fraction
    rv_septum_px: int = 2  #: the RV must come within this many pixels of the MYO
    max_rv_off_septum_slices: int = 0  #: slices where it does not, allowed
    hole_mm2: float = 20.0  #: largest enclosed background area in one slice, mm^2
    # --- image evidence (monitor.qc.evidence.image)
    contrast_min: float = 0.03  #: boundary contrast (inside - outside ring) / (p99 - p1), at least
    #: where expert contours sit relative to the steepest step, px (dev GT median: just inside it)
    edge_bias_px: float = -0.36
    edge_inward_px: float = 1.2  #: offset - bias below minus this fails (a mask too large), px
    edge_outward_px: float = 0.6  #: offset - bias above this fails (a mask too small), px
    #: a slice a stack check implicates is cleared when its own boundary contrast is at least this
    #: fraction of the other slices' median (the image moved with the mask: breath-hold motion)
    image_confirms_fraction: float = 0.6
    #: with an image, a slice whose LV+MYO centroid lies more than this from its neighbours' midpoint
    #: is tested against the image for displacement (below ``centroid_jump_mm``), mm
    displaced_min_mm: float = 6.0
    #: ... and is displaced when its LV boundary contrast is under this fraction of the other slices'
    #: median, or when moving its LV onto the neighbours' midpoint raises that contrast by more than
    #: ``displaced_gain`` of the median (the image's heart is where the neighbours put it, not the mask's)
    displaced_contrast_fraction: float = 0.4
    displaced_gain: float = 0.1
    class_overlap_max: float = 0.45  #: blood vs myocardium intensity overlap (1 - AUC), at most

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
            "area_floor_fraction",
            "centroid_area_fraction",
            "class_overlap_max",
            "displaced_contrast_fraction",
        ):
            if getattr(self, name) > 1:
                raise ValueError(
                    f"evidence setting {name} is a fraction in [0, 1], got {getattr(self, name)}"
                )

    def spare_slices(self, dz_mm: float) -> int:
        """Empty slices a stack end may hold beyond the heart at slice spacing ``dz_mm`` (at least 1)."""
        return max(1, int(self.spare_mm / dz_mm + 1e-6))
