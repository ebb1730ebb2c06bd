"""What the failure edits share: ``NotApplicable``, the stack's base-to-apex order, in-plane helpers.

Arrays are uint8 ``[z, y, x]`` with canonical labels (0 BG, 1 RV, 2 MYO, 3 LV).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from monitor.sim.phantoms import as_label_volume

__all__ = [
    "LV",
    "MYO",
    "RV",
    "NotApplicable",
    "disc",
    "heart_slices_base_to_apex",
    "inplane_distance_px",
    "middle_slice",
    "nearest_label",
]

RV, MYO, LV = 1, 2, 3
_INPLANE = (1e6, 1.0, 1.0)  # EDT sampling that keeps every distance inside its own slice (pixels)


class NotApplicable(ValueError):
    """The edit cannot be made on this mask (e.g. no slice left to add past the base)."""


def heart_slices_base_to_apex(labels: np.ndarray) -> np.ndarray:
    """The z indices holding any label, ordered from the base to the apex.

    The basal end is the end whose outer third of heart slices holds the larger LV + MYO area; when the
    two are within 10 % of each other the whole heart's area (the RV is larger at the base) decides, and
    an exact tie keeps the array order (slice 0 basal, as in ACDC).

    Args:
        labels: uint8 [z, y, x] canonical labels.
    Returns: int array of z indices (empty when the mask is empty).
    """
    labels = as_label_volume(labels)
    occupied = np.flatnonzero(labels.any(axis=(1, 2)))
    if occupied.size < 2:
        return occupied
    k = max(1, occupied.size // 3)
    area = np.count_nonzero((labels == LV) | (labels == MYO), axis=(1, 2))[occupied]
    first, last = int(area[:k].sum()), int(area[-k:].sum())
    if abs(first - last) <= 0.1 * max(first, last):  # a near tie: the RV, larger at the base, decides
        area = np.count_nonzero(labels, axis=(1, 2))[occupied]
        first, last = int(area[:k].sum()), int(area[-k:].sum())
    return occupied[::-1] if last > first else occupied


def middle_slice(order: np.ndarray, rng: np.random.Generator) -> int:
    """A slice of the middle third of ``order`` (base to apex), drawn by ``rng``."""
    if order.size == 0:
        raise NotApplicable("the mask is empty")
    lo, hi = order.size // 3, max(order.size // 3 + 1, (2 * order.size) // 3)
    return int(order[int(rng.integers(lo, hi))])


def inplane_distance_px(mask: np.ndarray) -> np.ndarray:
    """In-plane Euclidean distance (pixels) of every voxel to the nearest voxel of ``mask`` in its slice."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    out = np.full(mask.shape, np.inf)
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        out[z] = ndimage.distance_transform_edt(~mask[z])
    return out


def nearest_label(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Each voxel's label taken from the nearest voxel of ``keep`` in its own slice."""
    iz, iy, ix = ndimage.distance_transform_edt(
        ~keep, sampling=_INPLANE, return_distances=False, return_indices=True
    )
    return labels[iz, iy, ix]


def disc(shape_yx: tuple[int, int], centre: tuple[float, float], radius_px: float) -> np.ndarray:
    yy, xx = np.ogrid[0 : shape_yx[0], 0 : shape_yx[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius_px**2
