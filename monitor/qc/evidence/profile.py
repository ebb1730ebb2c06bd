"""Slice profiles of a label volume: per-slice areas and centroids, slice runs, and which end is the apex.

Arrays are uint8 ``[z, y, x]`` in canonical labels (0 BG, 1 RV, 2 MYO, 3 LV); areas are in voxels of
one slice, centroids in voxel indices (y, x). The *apex end* of a stack is the end of the LV+MYO slice
range whose end slice has the smaller LV+MYO area; the other end is the base.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from monitor.qc.evidence.morphology import grow
from monitor.typing import Spacing3

__all__ = [
    "IN_PLANE_8",
    "SliceProfile",
    "apex_direction",
    "label_components",
    "largest_component",
    "link_px",
    "moments_profile",
    "runs",
    "slice_moments",
    "slice_profile",
]

#: 3D connectivity: 8-connected in-plane, face-connected through slices (slices are far apart).
IN_PLANE_8 = np.zeros((3, 3, 3), dtype=bool)
IN_PLANE_8[1] = True
IN_PLANE_8[0, 1, 1] = IN_PLANE_8[2, 1, 1] = True


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceProfile:
    """Area and centroid of one binary structure on every slice."""

    area: np.ndarray  #: int64 [z], voxels of the structure on each slice
    centroid: np.ndarray  #: float64 [z, 2], (y, x) centroid in voxel indices; nan where the area is 0

    @property
    def present(self) -> np.ndarray:
        """Indices of the slices holding the structure (ascending)."""
        return np.flatnonzero(self.area > 0)


def slice_moments(binary: np.ndarray, origin_yx: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice area and first moments of a boolean [z, y, x] mask, exact integers.

    Args:
        binary: bool [z, y, x].
        origin_yx: the (y, x) index of ``binary``'s first pixel in the frame the moments are wanted in.
    Returns: (area int64 [z], moments int64 [z, 2]: sums of the y and x indices of the voxels).
    """
    area = binary.sum(axis=(1, 2), dtype=np.int64)
    ys = np.arange(origin_yx[0], origin_yx[0] + binary.shape[1], dtype=np.int64)
    xs = np.arange(origin_yx[1], origin_yx[1] + binary.shape[2], dtype=np.int64)
    moments = np.stack(
        (binary.sum(axis=2, dtype=np.int64) @ ys, binary.sum(axis=1, dtype=np.int64) @ xs), axis=1
    )
    return area, moments


def moments_profile(
    area: np.ndarray, moments: np.ndarray, origin_yx: tuple[int, int] = (0, 0)
) -> SliceProfile:
    """The ``SliceProfile`` of ``slice_moments`` output, centroids in the frame whose first pixel has
    index ``origin_yx`` in the moments' frame (exact: integer moments are shifted before dividing)."""
    centroid = np.full((area.size, 2), np.nan)
    if area.any():
        shift = np.asarray(origin_yx, dtype=np.int64) * area[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            centroid[:] = (moments - shift).astype(np.float64) / area[:, None]
    return SliceProfile(area=area, centroid=centroid)


def slice_profile(binary: np.ndarray) -> SliceProfile:
    """Per-slice area (voxels) and centroid (y, x voxel indices) of a boolean [z, y, x] mask."""
    return moments_profile(*slice_moments(binary))


def runs(present: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive slice indices, as ``(first, last)`` inclusive, in order."""
    if present.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(present) > 1)
    starts = np.concatenate(([present[0]], present[breaks + 1]))
    ends = np.concatenate((present[breaks], [present[-1]]))
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def apex_direction(heart_area: np.ndarray) -> int:
    """+1 when the apex is at the high-z end of the heart's slice range, -1 when at the low end.

    Args:
        heart_area: int [z], LV+MYO voxels per slice.
    Returns: +1 or -1; +1 for an empty or one-slice heart (slice 0 as the base, the ACDC order).
    """
    present = np.flatnonzero(heart_area > 0)
    if present.size < 2:
        return 1
    return -1 if heart_area[present[0]] < heart_area[present[-1]] else 1


def link_px(link_mm: float, spacing_mm: Spacing3) -> int:
    """The in-plane link distance ``link_mm`` as a dilation radius in pixels (at least 1)."""
    return max(1, round(link_mm / 2.0 / min(spacing_mm[1], spacing_mm[2])))


def label_components(binary: np.ndarray, link: int = 0, bridge: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """3D components and their sizes.

    Voxels are connected 8-wise in-plane and face-wise through slices, after each slice is grown by
    ``link`` pixels (pieces closer than about 2 x ``link`` pixels in-plane, or on adjacent slices that
    almost overlap, as thin apical slices often do, are one component) and, with ``bridge``, across
    one empty slice.

    Returns: (labels int32 [z, y, x] with 0 off ``binary``, sizes int64 [n + 1] with sizes[0] = 0).
    """
    labels = np.zeros(binary.shape, dtype=np.int32)
    box = _grown_box(binary, link)
    part = binary[box]
    grown = grow(part, link) if link > 0 else part
    bridged = grown
    if bridge:  # a one-slice gap does not split a structure (the stack checks see gaps)
        bridged = grown.copy()
        bridged[1:] |= grown[:-1]
        bridged[:-1] |= grown[1:]
    inner, n = ndimage.label(bridged, structure=IN_PLANE_8)
    np.multiply(inner, part, out=inner)  # labels on the structure's own voxels only
    labels[box] = inner
    sizes = np.bincount(inner.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels, sizes


def _grown_box(binary: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """The bounding box of ``binary`` grown in-plane by ``margin`` (every slice kept)."""
    if not binary.any():
        return (slice(None), slice(0, 0), slice(0, 0))
    ys = np.flatnonzero(binary.any(axis=(0, 2)))
    xs = np.flatnonzero(binary.any(axis=(0, 1)))
    return (
        slice(None),
        slice(max(int(ys[0]) - margin, 0), int(ys[-1]) + 1 + margin),
        slice(max(int(xs[0]) - margin, 0), int(xs[-1]) + 1 + margin),
    )


def largest_component(binary: np.ndarray, link: int = 0, bridge: bool = True) -> np.ndarray:
    """The largest 3D component of a boolean mask (see ``label_components``); the input if it has one."""
    labels, sizes = label_components(binary, link, bridge)
    if sizes.size <= 2:
        return binary
    return labels == int(np.argmax(sizes))
