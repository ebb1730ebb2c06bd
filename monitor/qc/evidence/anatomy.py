"""A mask's layout, computed once per volume: where the heart is, each structure's voxels and slice moments.

The evidence checks (``stack``, ``topology``, ``image``) and the calibration features
(``monitor.qc.calibration.features``) all start from the same things: the foreground's box, each
structure as a boolean array around the heart, its area and first moments on every slice, its own
box. ``build_anatomy`` computes them once; ``evaluate_evidence`` keeps the result on its ``Evidence``
so the features take it from there instead of recomputing it.

Arrays are ``[z, y, x]``; boxes are tuples of three slices in the mask's own (whole-volume) indices;
moments are exact integers (sums of voxel indices), so any frame's centroids follow without rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from monitor.qc.evidence.profile import slice_moments
from monitor.qc.labels import CANONICAL_CHANNEL, STRUCTURES, Structure
from monitor.qc.metrics import bounding_box

__all__ = ["MARGIN_PX", "Anatomy", "Box", "build_anatomy", "union_box"]

MARGIN_PX = 8  #: in-plane margin of ``Anatomy.cut`` around the foreground (image rings, edge profile)

#: A box of voxels [z, y, x] as one slice per axis.
Box = tuple[slice, slice, slice]

_EMPTY: Box = (slice(0, 0), slice(0, 0), slice(0, 0))


@dataclass(frozen=True, slots=True, kw_only=True)
class Anatomy:
    """One mask's layout, shared by the evidence checks and the calibration features."""

    shape: tuple[int, int, int]  #: the mask's shape [z, y, x], voxels
    box: Box  #: bounding box of the foreground (all empty slices for an empty mask)
    cut: Box  #: every slice, the foreground's in-plane box grown by ``MARGIN_PX`` (clipped)
    labels: np.ndarray  #: uint8 [z, y', x'] the mask on ``cut`` (a view, not a copy)
    binary: Mapping[Structure, np.ndarray]  #: per structure, bool [z, y', x'] on ``cut``
    area: Mapping[Structure, np.ndarray]  #: per structure, int64 [z] voxels on each slice
    #: per structure, int64 [z, 2]: sums of the y and x indices (whole volume) of its voxels per slice
    moments: Mapping[Structure, np.ndarray]
    boxes: Mapping[Structure, Box]  #: per structure, its own bounding box (empty slices if absent)

    @property
    def origin(self) -> np.ndarray:
        """int64 [3], the whole-volume index of ``cut``'s first voxel."""
        return np.array([0, self.cut[1].start, self.cut[2].start], dtype=np.int64)


def union_box(a: Box, b: Box) -> Box:
    """The bounding box of two boxes' union (an empty box counts as none)."""
    if a[0].stop <= a[0].start:
        return b
    if b[0].stop <= b[0].start:
        return a
    return tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b, strict=True))  # type: ignore[return-value]


def _own_box(binary: np.ndarray, area: np.ndarray, origin: np.ndarray) -> Box:
    present = np.flatnonzero(area)
    if present.size == 0:
        return _EMPTY
    part = binary[present[0] : present[-1] + 1]
    ys = np.flatnonzero(part.any(axis=(0, 2))) + origin[1]
    xs = np.flatnonzero(part.any(axis=(0, 1))) + origin[2]
    return (
        slice(int(present[0]), int(present[-1]) + 1),
        slice(int(ys[0]), int(ys[-1]) + 1),
        slice(int(xs[0]), int(xs[-1]) + 1),
    )


def build_anatomy(mask: np.ndarray) -> Anatomy:
    """The layout of a mask (uint8 [z, y, x], canonical labels); an empty mask gives empty boxes."""
    nz, ny, nx = mask.shape
    box = bounding_box(mask > 0)
    if box[1].stop <= box[1].start:
        cut: Box = (slice(0, nz), slice(0, 0), slice(0, 0))
    else:
        cut = (
            slice(0, nz),
            slice(max(box[1].start - MARGIN_PX, 0), min(box[1].stop + MARGIN_PX, ny)),
            slice(max(box[2].start - MARGIN_PX, 0), min(box[2].stop + MARGIN_PX, nx)),
        )
    labels = mask[cut]
    origin = np.array([0, cut[1].start, cut[2].start], dtype=np.int64)
    binary, area, moments, boxes = {}, {}, {}, {}
    for s in STRUCTURES:
        b = labels == CANONICAL_CHANNEL[s]
        binary[s] = b
        area[s], moments[s] = slice_moments(b, (cut[1].start, cut[2].start))
        boxes[s] = _own_box(b, area[s], origin)
    return Anatomy(
        shape=(nz, ny, nx),
        box=box,  # type: ignore[arg-type]
        cut=cut,
        labels=labels,
        binary=binary,
        area=area,
        moments=moments,
        boxes=boxes,
    )
