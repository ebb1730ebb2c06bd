"""In-plane families: a displaced slice, RV and LV swapped, a broken myocardial ring, every contour moved
out or in (over- and under-segmentation), holes in the LV cavity. Each edit returns a new uint8 [z, y, x]
array; spacing is (dz, dy, dx) in mm."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from monitor.sim.failures.geometry import (
    LV,
    MYO,
    RV,
    NotApplicable,
    disc,
    heart_slices_base_to_apex,
    inplane_distance_px,
    middle_slice,
    nearest_label,
)
from monitor.sim.phantoms import as_label_volume
from monitor.typing import Spacing3

__all__ = [
    "broken_myocardium",
    "displaced_slice",
    "lv_holes",
    "swapped_slices",
    "uniform_dilation",
    "uniform_erosion",
]


def displaced_slice(
    labels: np.ndarray, spacing_mm: Spacing3, rng: np.random.Generator, shift_mm: float
) -> np.ndarray:
    """Shift every label of one mid-ventricular slice in-plane by ``shift_mm`` (breath-hold motion).

    The direction is drawn by ``rng``; the shift is rounded to whole pixels (nearest neighbour, no
    interpolation) and voxels shifted out of the field of view are lost.

    Raises: NotApplicable when the shift rounds to zero pixels.
    """
    labels = as_label_volume(labels)
    z = middle_slice(heart_slices_base_to_apex(labels), rng)
    angle = rng.uniform(0.0, 2 * math.pi)
    dy_px = round(shift_mm * math.sin(angle) / spacing_mm[1])
    dx_px = round(shift_mm * math.cos(angle) / spacing_mm[2])
    if dy_px == 0 and dx_px == 0:
        raise NotApplicable(f"a shift of {shift_mm} mm is below one pixel")
    out = labels.copy()
    out[z] = ndimage.shift(labels[z], (dy_px, dx_px), order=0, mode="constant", cval=0)
    return out


def swapped_slices(labels: np.ndarray, rng: np.random.Generator, n: int = 1) -> np.ndarray:
    """Exchange RV and LV labels on ``n`` consecutive mid-ventricular slices holding both.

    Raises: NotApplicable when fewer than ``n`` slices hold both RV and LV.
    """
    labels = as_label_volume(labels)
    both = [int(z) for z in heart_slices_base_to_apex(labels) if {RV, LV} <= set(np.unique(labels[z]))]
    if len(both) < n:
        raise NotApplicable(f"{len(both)} slices hold both RV and LV, cannot swap {n}")
    lo, hi = (len(both) - n) // 3, max((len(both) - n) // 3 + 1, (2 * (len(both) - n)) // 3 + 1)
    first = int(rng.integers(lo, hi))
    lut = np.arange(256, dtype=np.uint8)
    lut[RV], lut[LV] = LV, RV
    out = labels.copy()
    for z in both[first : first + n]:
        out[z] = lut[labels[z]]
    return out


def broken_myocardium(labels: np.ndarray, rng: np.random.Generator, gap_px: int) -> np.ndarray:
    """Cut a gap of ``gap_px`` pixels through the myocardial ring of one mid slice (set to background).

    The gap is a band of width ``gap_px`` along a ray from the LV centroid, pointing away from the RV
    (the free lateral wall) with a jitter of up to 45 deg drawn by ``rng``; every MYO voxel in it becomes
    background, so the LV cavity touches the background there.

    Raises: NotApplicable when no slice holds both LV and MYO.
    """
    labels = as_label_volume(labels)
    order = [int(z) for z in heart_slices_base_to_apex(labels) if {MYO, LV} <= set(np.unique(labels[z]))]
    if not order or gap_px < 1:
        raise NotApplicable("no slice holds both LV and MYO" if not order else "gap_px must be >= 1")
    z = middle_slice(np.asarray(order), rng)
    cy, cx = ndimage.center_of_mass(labels[z] == LV)
    rv = labels[z] == RV
    if rv.any():
        ry, rx = ndimage.center_of_mass(rv)
        angle = math.atan2(cy - ry, cx - rx)
    else:
        angle = rng.uniform(0.0, 2 * math.pi)
    angle += rng.uniform(-math.pi / 4, math.pi / 4)
    yy, xx = np.mgrid[0 : labels.shape[1], 0 : labels.shape[2]].astype(float)
    along = (yy - cy) * math.sin(angle) + (xx - cx) * math.cos(angle)
    across = -(yy - cy) * math.cos(angle) + (xx - cx) * math.sin(angle)
    band = (along > 0) & (np.abs(across) < gap_px / 2)
    out = labels.copy()
    out[z][band & (labels[z] == MYO)] = 0
    return out


def uniform_dilation(labels: np.ndarray, px: int) -> np.ndarray:
    """Over-segment: move every contour ``px`` pixels outward, in-plane (Euclidean distance).

    The heart's outer contour (epicardium, RV free wall) grows into the background, each new voxel
    taking the label of the nearest heart voxel, and the LV cavity grows into the myocardium: the LV
    blood pool gains a ring of width ``px`` (about perimeter x px + pi px^2 pixels per slice) and the
    myocardium keeps its thickness. The septal RV/MYO border stays.
    """
    labels = as_label_volume(labels)
    if px <= 0:
        return labels.copy()
    heart = labels > 0
    out = labels.copy()
    grow = (inplane_distance_px(heart) <= px) & ~heart
    out[grow] = nearest_label(labels, heart)[grow]
    lv = labels == LV
    out[(inplane_distance_px(lv) <= px) & (out == MYO)] = LV
    return out


def uniform_erosion(labels: np.ndarray, px: int) -> np.ndarray:
    """Under-segment: move every contour ``px`` pixels inward, in-plane (Euclidean distance).

    The LV cavity loses a rim of width ``px`` to the myocardium and the heart's outer contour
    (epicardium, RV free wall) loses a rim of width ``px`` to the background.
    """
    labels = as_label_volume(labels)
    if px <= 0:
        return labels.copy()
    out = labels.copy()
    lv = labels == LV
    out[lv & (inplane_distance_px(~lv) <= px)] = MYO
    heart = labels > 0
    out[heart & (inplane_distance_px(~heart) <= px)] = 0
    return out


def lv_holes(
    labels: np.ndarray, spacing_mm: Spacing3, rng: np.random.Generator, radius_mm: float, n_holes: int = 3
) -> np.ndarray:
    """Clear ``n_holes`` discs of radius ``radius_mm`` inside the LV cavity, each on its own heart slice.

    Slices and centres are drawn where the disc fits at least one pixel inside the cavity when there
    are such, so the holes are enclosed (a blood pool with papillary-muscle-like holes).

    Raises: NotApplicable when the mask has no LV.
    """
    labels = as_label_volume(labels)
    lv = labels == LV
    slices = np.flatnonzero(lv.any(axis=(1, 2)))
    if slices.size == 0:
        raise NotApplicable("the mask has no LV cavity")
    out = labels.copy()
    r_px = radius_mm / spacing_mm[1]
    depth = {int(z): ndimage.distance_transform_edt(lv[z]) for z in slices}
    roomy = [z for z in depth if depth[z].max() > r_px + 1]  # the hole fits inside the cavity
    pool = np.asarray(roomy or [int(z) for z in slices])
    chosen = rng.choice(pool, size=min(n_holes, pool.size), replace=False)
    for z in chosen:
        inner = np.argwhere(depth[int(z)] > r_px + 1)
        candidates = inner if len(inner) else np.argwhere(lv[z])
        cy, cx = candidates[int(rng.integers(len(candidates)))]
        hole = disc(lv.shape[1:], (cy, cx), r_px)
        out[z][hole & lv[z]] = 0
    return out
