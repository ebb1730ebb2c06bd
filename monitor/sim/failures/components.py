"""Component families: a stray component beside the heart or on a slice without heart, a component far
from the heart, extra area attached to the heart. Each edit returns a new uint8 [z, y, x] array; spacing
is (dz, dy, dx) in mm."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from monitor.sim.failures.geometry import (
    LV,
    MYO,
    RV,
    NotApplicable,
    disc,
    heart_slices_base_to_apex,
    middle_slice,
)
from monitor.sim.phantoms import as_label_volume
from monitor.typing import Spacing3

__all__ = ["attached_leak", "far_component", "stray_in_empty_slice", "stray_in_heart_slice"]


def _blob_centre(free: np.ndarray, rng: np.random.Generator, what: str) -> tuple[int, int]:
    candidates = np.argwhere(free)
    if len(candidates) == 0:
        raise NotApplicable(f"no room in the field of view for {what}")
    y, x = candidates[int(rng.integers(len(candidates)))]
    return int(y), int(x)


def _paint_blob(out: np.ndarray, z: int, centre: tuple[int, int], radius_px: float, value: int) -> None:
    blob = disc(out.shape[1:], centre, radius_px)
    out[z][blob & (out[z] == 0)] = value


def stray_in_heart_slice(
    labels: np.ndarray, spacing_mm: Spacing3, rng: np.random.Generator, radius_mm: float
) -> np.ndarray:
    """Paint an LV-labelled disc of radius ``radius_mm`` 15-35 mm from the heart, on a mid heart slice.

    Raises: NotApplicable when no background pixel of that slice lies in that distance band.
    """
    labels = as_label_volume(labels)
    z = middle_slice(heart_slices_base_to_apex(labels), rng)
    gap_mm = ndimage.distance_transform_edt(labels[z] == 0, sampling=spacing_mm[1:])
    free = (gap_mm >= 15.0 + radius_mm) & (gap_mm <= 35.0 + radius_mm)
    out = labels.copy()
    _paint_blob(out, z, _blob_centre(free, rng, "a stray component"), radius_mm / spacing_mm[1], LV)
    return out


def stray_in_empty_slice(
    labels: np.ndarray, spacing_mm: Spacing3, rng: np.random.Generator, radius_mm: float
) -> np.ndarray:
    """Paint an LV-labelled disc of radius ``radius_mm`` on a slice with no heart, near the heart's axis.

    The disc's centre is within 30 mm (in-plane) of the heart's footprint, on an empty slice drawn by
    ``rng`` (e.g. a blob in the liver or the atrium on a slice past the heart).

    Raises: NotApplicable when every slice holds heart labels.
    """
    labels = as_label_volume(labels)
    empty = np.flatnonzero(~labels.any(axis=(1, 2)))
    if empty.size == 0:
        raise NotApplicable("every slice holds heart labels")
    z = int(empty[int(rng.integers(empty.size))])
    footprint = labels.any(axis=0)
    gap_mm = ndimage.distance_transform_edt(~footprint, sampling=spacing_mm[1:])
    out = labels.copy()
    centre = _blob_centre(gap_mm <= 30.0, rng, "a stray component")
    _paint_blob(out, z, centre, radius_mm / spacing_mm[1], LV)
    return out


def far_component(
    labels: np.ndarray, spacing_mm: Spacing3, rng: np.random.Generator, radius_mm: float
) -> np.ndarray:
    """Paint a disc of radius ``radius_mm`` at least 60 mm from the heart's footprint, on a heart slice.

    Its label is drawn from the structures present; it spans one slice.

    Raises: NotApplicable when the field of view has no pixel that far from the heart.
    """
    labels = as_label_volume(labels)
    z = middle_slice(heart_slices_base_to_apex(labels), rng)
    footprint = labels.any(axis=0)
    gap_mm = ndimage.distance_transform_edt(~footprint, sampling=spacing_mm[1:])
    r_px = radius_mm / spacing_mm[1]
    ny, nx = footprint.shape
    yy, xx = np.ogrid[0:ny, 0:nx]
    inside = (yy >= r_px) & (yy < ny - r_px) & (xx >= r_px) & (xx < nx - r_px)
    present = [v for v in (RV, MYO, LV) if (labels == v).any()] or [LV]
    value = present[int(rng.integers(len(present)))]
    out = labels.copy()
    centre = _blob_centre((gap_mm >= 60.0 + radius_mm) & inside, rng, "a far component")
    _paint_blob(out, z, centre, r_px, value)
    return out


def attached_leak(
    labels: np.ndarray, spacing_mm: Spacing3, rng: np.random.Generator, radius_mm: float
) -> np.ndarray:
    """Grow a bulge of radius ``radius_mm`` out of the heart's outer contour, on 3 mid slices.

    The bulge is a disc centred on the heart's edge (a point drawn by ``rng`` on the middle slice) that
    fills only background, labelled as the structure it grows from (RV free wall or epicardium): extra
    area attached to the heart, as a segmenter leaking into a neighbouring vessel or fat.
    """
    labels = as_label_volume(labels)
    order = heart_slices_base_to_apex(labels)
    z = middle_slice(order, rng)
    heart = labels[z] > 0
    edge = heart & ~ndimage.binary_erosion(heart)
    y, x = _blob_centre(edge, rng, "a leak")
    value = int(labels[z, y, x])
    out = labels.copy()
    for zz in (z - 1, z, z + 1):
        if 0 <= zz < labels.shape[0] and labels[zz].any():
            _paint_blob(out, zz, (y, x), radius_mm / spacing_mm[1], value)
    return out
