"""Stack checks on a mask: is each structure a plausible stack of short-axis slices?

Each function takes the mask's labels (canonical uint8 ``[z, y, x]``, already cut to the heart's
in-plane box; slice indices are the mask's own), the spacing ``(dz, dy, dx)`` in mm and the
tolerances, and returns ``Check`` records per structure (a check that cannot be evaluated, e.g. on an
absent structure, is not returned):

- ``stack_gap``: empty slices inside a structure's z-extent (value: slices);
- ``stack_margin``: empty slices beyond the heart (LV+MYO) at a stack end, more than the protocol's
  spare slices (value: slices; a missing base or apex);
- ``centroid_jump``: in-plane shift of a slice's centroid from the midpoint of its neighbours' (value:
  mm; a displaced slice; with an image, LV+MYO slices beyond ``displaced_min_mm`` are judged by the
  image in ``monitor.qc.evidence.run``);
- ``area_jump``: a slice's area dip or spike against both neighbours, areas floored at a fraction of the
  largest (value: ratio);
- ``apex_taper``: LV area in its apical slice over its largest (value: fraction; the LV must taper);
- ``rv_beyond_apex``: RV slices past the LV+MYO apex (value: slices);
- ``rv_position``: largest deviation of a slice's LV->RV direction from the stack's mean (value: deg;
  catches swapped labels);
- ``components``: 3D components of at least ``min_component_voxels`` (value: count);
- ``far_component``: distance of the farthest voxel from the largest component (value: mm).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.spatial import cKDTree

from monitor.qc.evidence.anatomy import Anatomy
from monitor.qc.evidence.profile import (
    SliceProfile,
    apex_direction,
    label_components,
    link_px,
    moments_profile,
)
from monitor.qc.evidence.settings import EvidenceSettings
from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.metrics import boundary
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Check
from monitor.typing import Spacing3

__all__ = ["StackView", "centroid_deviation_mm", "check_stack", "stack_view"]

_HEART = (Structure.LV, Structure.MYO)


class StackView:
    """Profiles of a mask shared by the checks: per-structure slices, the heart's and the apex side.

    Built from the volume's ``Anatomy`` (its ``cut``: every slice, the heart's in-plane box); centroids
    are in the cut's indices.
    """

    def __init__(self, anatomy: Anatomy, dz_mm: float) -> None:
        self.labels = anatomy.labels
        self.dz_mm = dz_mm  #: slice spacing, mm
        self.binary = anatomy.binary
        origin = (anatomy.cut[1].start, anatomy.cut[2].start)
        self.profile: dict[Structure, SliceProfile] = {
            s: moments_profile(anatomy.area[s], anatomy.moments[s], origin) for s in STRUCTURES
        }
        heart = (Structure.LV, Structure.MYO)  # disjoint: their areas and moments add up
        self.heart = moments_profile(
            sum(anatomy.area[s] for s in heart), sum(anatomy.moments[s] for s in heart), origin
        )
        #: +1 when the apex is towards higher z, -1 when towards lower z
        self.direction = apex_direction(self.heart.area)


def stack_view(anatomy: Anatomy, dz_mm: float) -> StackView:
    """The shared profiles of a mask's ``anatomy`` at slice spacing ``dz_mm``."""
    return StackView(anatomy, dz_mm)


def _check(code: ReasonCode, value: float, limit: float, slices: object = ()) -> Check:
    picked = tuple(sorted({int(z) for z in slices}))  # type: ignore[attr-defined]
    return Check(code=code, value=float(value), passed=bool(value <= limit), slices=picked)


def check_stack(
    view: StackView, spacing_mm: Spacing3, settings: EvidenceSettings
) -> dict[Structure, list[Check]]:
    """All stack checks of one mask, per structure (absent structures get none)."""
    out: dict[Structure, list[Check]] = {s: [] for s in STRUCTURES}
    for structure in STRUCTURES:
        profile = view.profile[structure]
        if not profile.area.any():
            continue
        checks = out[structure]
        checks.append(_gaps(profile, settings))
        if structure in _HEART:
            checks.append(_centroid_jump(view.heart, spacing_mm, settings.centroid_jump_mm, settings))
        else:
            checks.append(_centroid_jump(profile, spacing_mm, settings.rv_centroid_jump_mm, settings))
        checks.append(_area_jump(profile, settings))
        checks.extend(_components(view.binary[structure], spacing_mm, settings))
    if view.heart.area.any():
        margin = _stack_margin(view, settings)
        for structure in _HEART:
            if view.profile[structure].area.any():
                out[structure].append(margin)
    taper = _apex_taper(view, settings)
    if taper is not None:
        out[Structure.LV].append(taper)
    if view.profile[Structure.RV].area.any() and view.heart.area.any():
        out[Structure.RV].append(_rv_beyond_apex(view, settings))
        position = _rv_position(view, spacing_mm, settings)
        if position is not None:
            out[Structure.RV].append(position)
    return out


def _gaps(profile: SliceProfile, settings: EvidenceSettings) -> Check:
    present = profile.present
    gaps = np.setdiff1d(np.arange(present[0], present[-1] + 1), present)
    return _check(ReasonCode.STACK_GAP, gaps.size, settings.max_gap_slices, gaps)


def _stack_margin(view: StackView, settings: EvidenceSettings) -> Check:
    present = view.heart.present
    n = view.labels.shape[0]
    before, after = int(present[0]), int(n - 1 - present[-1])
    spare = settings.spare_slices(view.dz_mm)
    slices = [*range(0, before - spare), *range(present[-1] + 1 + spare, n)]
    return _check(ReasonCode.STACK_MARGIN, max(before, after), spare, slices)


def _adjacent_pairs(profile: SliceProfile) -> list[tuple[int, int]]:
    present = profile.present
    return [(int(a), int(b)) for a, b in itertools.pairwise(present) if b == a + 1]


def centroid_deviation_mm(
    profile: SliceProfile, spacing_mm: Spacing3, settings: EvidenceSettings
) -> np.ndarray:
    """Per slice, how far its centroid lies from the midpoint of its two neighbours' (mm).

    A displaced slice moves by its full shift, a steady drift or a shift between two halves of the
    stack by half of it. Returns: float64 [z]; nan where the slice or a neighbour is missing or under
    ``centroid_area_fraction`` of the largest area (too small for a stable centroid), and at both ends.
    """
    out = np.full(profile.area.size, np.nan)
    if profile.area.size < 3:
        return out
    floor = settings.centroid_area_fraction * profile.area.max()
    usable = (profile.area >= floor) & (profile.area > 0)
    inner = usable[:-2] & usable[1:-1] & usable[2:]
    c = profile.centroid
    scale = np.asarray(spacing_mm[1:], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        offset = (c[1:-1] - (c[:-2] + c[2:]) / 2) * scale
    out[1:-1] = np.where(inner, np.hypot(offset[:, 0], offset[:, 1]), np.nan)
    return out


def _centroid_jump(
    profile: SliceProfile, spacing_mm: Spacing3, limit_mm: float, settings: EvidenceSettings
) -> Check:
    """The largest centroid deviation (``centroid_deviation_mm``); slices beyond ``limit_mm`` fail."""
    deviation = centroid_deviation_mm(profile, spacing_mm, settings)
    known = ~np.isnan(deviation)
    worst = float(deviation[known].max()) if known.any() else 0.0
    slices = np.flatnonzero(known & (np.nan_to_num(deviation) > limit_mm))
    return _check(ReasonCode.CENTROID_JUMP, worst, limit_mm, slices)


def _area_jump(profile: SliceProfile, settings: EvidenceSettings) -> Check:
    """The largest dip or spike of a slice's area against both its neighbours (a ratio >= 1).

    A dip: both neighbours larger (min neighbour / slice); a spike: both smaller (slice / max
    neighbour). The natural taper to the apex is neither. Areas are floored at
    ``area_floor_fraction`` of the largest.
    """
    area = np.maximum(profile.area, settings.area_floor_fraction * profile.area.max()).astype(np.float64)
    present = profile.area > 0
    worst, slices = 1.0, []
    for z in range(1, area.size - 1):
        if not (present[z - 1] and present[z] and present[z + 1]):
            continue
        low, high = min(area[z - 1], area[z + 1]), max(area[z - 1], area[z + 1])
        ratio = max(low / area[z], area[z] / high, 1.0)
        worst = max(worst, ratio)
        if ratio > settings.area_jump_ratio:
            slices.append(z)
    return _check(ReasonCode.AREA_JUMP, worst, settings.area_jump_ratio, slices)


def _apex_taper(view: StackView, settings: EvidenceSettings) -> Check | None:
    lv = view.profile[Structure.LV]
    present = lv.present
    if present.size < 3:
        return None
    apical = int(present[-1] if view.direction > 0 else present[0])
    fraction = lv.area[apical] / lv.area.max()
    return _check(ReasonCode.APEX_TAPER, fraction, settings.apex_area_fraction, [apical])


def _rv_beyond_apex(view: StackView, settings: EvidenceSettings) -> Check:
    rv = view.profile[Structure.RV].present
    heart = view.heart.present
    beyond = rv[rv > heart[-1]] if view.direction > 0 else rv[rv < heart[0]]
    return _check(ReasonCode.RV_BEYOND_APEX, beyond.size, settings.rv_beyond_apex_slices, beyond)


def _rv_position(view: StackView, spacing_mm: Spacing3, settings: EvidenceSettings) -> Check | None:
    rv, heart = view.profile[Structure.RV], view.heart
    floor = settings.centroid_area_fraction * rv.area.max()
    both = np.flatnonzero((rv.area >= max(floor, 1)) & (heart.area > 0))
    if both.size < 2:
        return None
    scale = np.asarray(spacing_mm[1:], dtype=np.float64)
    d = (rv.centroid[both] - heart.centroid[both]) * scale
    angle = np.arctan2(d[:, 0], d[:, 1])
    weight = rv.area[both].astype(np.float64)
    mean = math.atan2(float(weight @ np.sin(angle)), float(weight @ np.cos(angle)))
    deviation = np.degrees(np.abs((angle - mean + np.pi) % (2 * np.pi) - np.pi))
    bad = both[deviation > settings.rv_angle_deg]
    return _check(ReasonCode.RV_POSITION, float(deviation.max()), settings.rv_angle_deg, bad)


def _components(binary: np.ndarray, spacing_mm: Spacing3, settings: EvidenceSettings) -> list[Check]:
    labels, sizes = label_components(binary, link_px(settings.link_mm, spacing_mm))
    counted = int(np.count_nonzero(sizes >= settings.min_component_voxels))
    if sizes.size <= 2:
        return [
            _check(ReasonCode.COMPONENTS, counted, settings.max_components),
            _check(ReasonCode.FAR_COMPONENT, 0.0, settings.far_component_mm),
        ]
    main = int(np.argmax(sizes))
    others = (labels > 0) & (labels != main)
    stray_slices = np.flatnonzero(others.any(axis=(1, 2)))
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    tree = cKDTree(np.argwhere(boundary(labels == main)) * spacing)
    points = np.argwhere(others)
    distance, _ = tree.query(points * spacing)
    far_slices = points[distance > settings.far_component_mm, 0]
    return [
        _check(ReasonCode.COMPONENTS, counted, settings.max_components, stray_slices),
        _check(ReasonCode.FAR_COMPONENT, float(distance.max()), settings.far_component_mm, far_slices),
    ]
