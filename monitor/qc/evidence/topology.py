"""Topology of each slice of a mask: the myocardial ring, what the LV cavity touches, RV and septum, holes.

All slices are handled at once with in-plane structuring elements (nothing connects through z).
Labels are canonical uint8 ``[z, y, x]`` (cut to the heart's in-plane box); the *basal* slices are
the first ``basal_tolerance_slices`` of the LV's range on the side away from the apex, where an open
ring (the outflow tract) is anatomy, not a mistake; the ring checks also leave out the LV's apical
slice and slices whose LV is under ``centroid_area_fraction`` of its largest. Checks:

- ``myo_open`` (MYO): fraction of a slice's LV cavity outside the closed MYO ring (value: worst slice);
- ``lv_background`` (LV): fraction of a slice's LV boundary that touches background (worst slice);
- ``rv_septum`` (RV): slices where the RV is farther than ``rv_septum_px`` from the MYO (value: slices);
- ``holes`` (each): largest background area enclosed by the structure in one slice (value: mm^2).
"""

from __future__ import annotations

import numpy as np

from monitor.qc.evidence.morphology import edge, fill_holes, grow
from monitor.qc.evidence.settings import EvidenceSettings
from monitor.qc.evidence.stack import StackView
from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Check
from monitor.typing import Spacing3

__all__ = ["check_topology"]

_fill = fill_holes


def _worst(per_slice: np.ndarray, slices: np.ndarray, code: ReasonCode, limit: float) -> Check:
    values = per_slice[slices] if slices.size else np.zeros(1)
    bad = slices[per_slice[slices] > limit] if slices.size else slices
    return Check(
        code=code, value=float(values.max()), passed=bool(bad.size == 0), slices=tuple(int(z) for z in bad)
    )


def _ring_slices(view: StackView, settings: EvidenceSettings, slices: np.ndarray) -> np.ndarray:
    """``slices`` where a closed ring is expected: not the most basal ones of the LV's range, not its
    apical slice, and with an LV of at least ``centroid_area_fraction`` of its largest area (a small
    cavity near the apex or in the outflow tract is often open in expert masks too)."""
    lv = view.profile[Structure.LV]
    present = lv.present
    if present.size == 0:
        return slices
    skip = settings.basal_tolerance_slices
    ordered = present if view.direction > 0 else present[::-1]  # base first
    exempt = {int(z) for z in ordered[:skip]} | {int(ordered[-1])}
    big = lv.area >= settings.centroid_area_fraction * lv.area.max()
    return np.asarray([z for z in slices if int(z) not in exempt and big[z]], dtype=np.int64)


def check_topology(
    view: StackView, spacing_mm: Spacing3, settings: EvidenceSettings
) -> dict[Structure, list[Check]]:
    """All per-slice topology checks of one mask, per structure (absent structures get none)."""
    out: dict[Structure, list[Check]] = {s: [] for s in STRUCTURES}
    lv, rv, myo = (view.binary[s] for s in (Structure.LV, Structure.RV, Structure.MYO))
    lv_area = view.profile[Structure.LV].area
    myo_area = view.profile[Structure.MYO].area
    background = view.labels == 0
    pixel_mm2 = float(spacing_mm[1] * spacing_mm[2])

    if lv_area.any() and myo_area.any():
        both = _ring_slices(view, settings, np.flatnonzero((lv_area > 0) & (myo_area > 0)))
        outside = (lv & ~_fill(myo)).sum(axis=(1, 2))
        fraction = outside / np.maximum(lv_area, 1)
        out[Structure.MYO].append(_worst(fraction, both, ReasonCode.MYO_OPEN, settings.myo_open_fraction))
    if lv_area.any():
        rim = edge(lv)
        touching = rim & grow(background, 1)
        fraction = touching.sum(axis=(1, 2)) / np.maximum(rim.sum(axis=(1, 2)), 1)
        slices = _ring_slices(view, settings, np.flatnonzero(lv_area))
        out[Structure.LV].append(
            _worst(fraction, slices, ReasonCode.LV_BACKGROUND, settings.lv_background_fraction)
        )
    rv_area = view.profile[Structure.RV].area
    if rv_area.any() and myo_area.any():
        both = np.flatnonzero((rv_area > 0) & (myo_area > 0))
        near = grow(myo, max(settings.rv_septum_px, 1))
        apart = both[~(rv & near)[both].any(axis=(1, 2))]
        out[Structure.RV].append(
            Check(
                code=ReasonCode.RV_SEPTUM,
                value=float(apart.size),
                passed=bool(apart.size <= settings.max_rv_off_septum_slices),
                slices=tuple(int(z) for z in apart),
            )
        )
    filled_lv = _fill(lv)
    holes = {
        Structure.LV: filled_lv & background,
        Structure.RV: _fill(rv) & background,
        Structure.MYO: _fill(myo | lv) & background & ~filled_lv,
    }
    for structure in STRUCTURES:
        area = view.profile[structure].area
        if area.any():
            hole_mm2 = holes[structure].sum(axis=(1, 2)) * pixel_mm2
            out[structure].append(_worst(hole_mm2, np.flatnonzero(area), ReasonCode.HOLES, settings.hole_mm2))
    return out
