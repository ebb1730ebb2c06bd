"""Graded segmentation failures: pure edits of a label volume (each returns a new array).

Boundary noise, erosion and dilation, holes, spurious blobs, missing slices, missing structures and
label swaps, the ingredients of the simulated segmenters (``monitor.sim.segmenters``). Arrays are uint8
``[z, y, x]`` with canonical labels; spacing is ``(dz, dy, dx)`` in mm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from monitor.sim.phantoms import StructureLike, as_label_volume, label_value
from monitor.typing import Spacing3

__all__ = [
    "add_spurious_blobs",
    "dilate_structure",
    "drop_slices",
    "erode_structure",
    "perturb_boundaries",
    "punch_holes",
    "remove_structure",
    "swap_labels",
]

_RV, _MYO, _LV = (label_value(s) for s in ("RV", "MYO", "LV"))
# In-plane 4-connected structuring element that never reaches into neighbouring slices.
_CROSS_2D = ndimage.generate_binary_structure(2, 1)[None]


def _heart_box(labels: np.ndarray, margin_px: int) -> tuple[slice, slice, slice]:
    """All slices, and the in-plane bounding box of the foreground grown by ``margin_px``."""
    fg = labels.any(axis=0)
    if not fg.any():
        return (slice(None), slice(0, 0), slice(0, 0))
    ys, xs = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    ny, nx = fg.shape
    return (
        slice(None),
        slice(max(ys[0] - margin_px, 0), min(ys[-1] + margin_px + 1, ny)),
        slice(max(xs[0] - margin_px, 0), min(xs[-1] + margin_px + 1, nx)),
    )


def perturb_boundaries(
    labels: np.ndarray,
    rng: np.random.Generator,
    spacing_mm: Spacing3,
    *,
    amplitude_mm: float = 1.5,
    smoothness_mm: float = 10.0,
) -> np.ndarray:
    """Deform all contours with a smooth random in-plane displacement field (nearest-neighbour warp).

    Each slice gets its own field: Gaussian-filtered white noise with correlation length
    ``smoothness_mm``, scaled to an RMS displacement of ``amplitude_mm`` per axis.

    Args:
        labels: canonical labels uint8 [z, y, x].
        rng: random generator.
        spacing_mm: voxel size (dz, dy, dx) in mm.
        amplitude_mm: RMS displacement per in-plane axis, mm; 0 returns a copy.
        smoothness_mm: correlation length (Gaussian sigma) of the field, mm.
    Returns: uint8 [z, y, x].
    """
    labels = as_label_volume(labels)
    out = labels.copy()
    if amplitude_mm <= 0 or not labels.any():
        return out
    _, dy, dx = spacing_mm
    box = _heart_box(labels, margin_px=math.ceil(4 * amplitude_mm / min(dy, dx)) + 2)
    crop = labels[box]
    nz, ny, nx = crop.shape
    sigma = (0.0, smoothness_mm / dy, smoothness_mm / dx)
    field = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (2, nz, ny, nx)), sigma=(0.0, *sigma), mode="wrap")
    field /= field.std(axis=(2, 3), keepdims=True) + 1e-12
    zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    coords = np.stack([zz, yy + field[0] * amplitude_mm / dy, xx + field[1] * amplitude_mm / dx])
    out[box] = ndimage.map_coordinates(crop, coords, order=0, mode="nearest")
    return out


def _edit_structure(
    labels: np.ndarray,
    structure: StructureLike,
    voxels: int,
    *,
    margin_px: int,
    edit: Callable[[np.ndarray, np.ndarray, np.ndarray, int], None],
) -> np.ndarray:
    """A copy of ``labels`` in which ``edit`` has changed the box around one structure.

    Args:
        labels: canonical labels uint8 [z, y, x].
        structure: LV, RV or MYO.
        voxels: depth of the change; 0 or less returns a copy unchanged.
        margin_px: in-plane margin of the box around the structure, pixels; the change must stay in it.
        edit: ``edit(mask, before, after, value)`` on the box: the structure's mask (bool), the input
            labels and the output labels (uint8, written in place), and the structure's label value.
    Returns: uint8 [z, y, x]; a copy when the structure is absent.
    Raises: ValueError for bad labels or an unknown structure.
    """
    labels = as_label_volume(labels)
    value = label_value(structure)
    out = labels.copy()
    mask = labels == value
    if voxels <= 0 or not mask.any():
        return out
    box = _heart_box(mask, margin_px=margin_px)
    edit(mask[box], labels[box], out[box], value)  # out[box] is a view: edits land in out
    return out


def erode_structure(labels: np.ndarray, structure: StructureLike, voxels: int) -> np.ndarray:
    """Shrink one structure in-plane by ``voxels``; freed voxels take the nearest other label.

    For example eroding the LV by 2 hands its rim to the myocardium (an endocardial contour drawn too
    far inside); eroding the RV hands its rim to the background or the myocardium.

    Args:
        labels: canonical labels uint8 [z, y, x].
        structure: LV, RV or MYO.
        voxels: erosion depth in voxels (4-connected, slice by slice); 0 returns a copy.
    Returns: uint8 [z, y, x].
    """

    def erode(mask: np.ndarray, before: np.ndarray, after: np.ndarray, value: int) -> None:
        kept = ndimage.binary_erosion(mask, structure=_CROSS_2D, iterations=voxels, border_value=1)
        freed = mask & ~kept
        # Nearest non-structure voxel of the same slice: a huge z spacing keeps the search in-plane.
        iz, iy, ix = ndimage.distance_transform_edt(
            mask, sampling=(1e6, 1.0, 1.0), return_distances=False, return_indices=True
        )
        after[freed] = before[iz[freed], iy[freed], ix[freed]]

    return _edit_structure(labels, structure, voxels, margin_px=2, edit=erode)


def dilate_structure(labels: np.ndarray, structure: StructureLike, voxels: int) -> np.ndarray:
    """Grow one structure in-plane by ``voxels`` (dilation depth, 4-connected, slice by slice; 0 returns a
    copy) over whatever lies next to it (any label). Arguments and result as ``erode_structure``."""

    def dilate(mask: np.ndarray, before: np.ndarray, after: np.ndarray, value: int) -> None:
        after[ndimage.binary_dilation(mask, structure=_CROSS_2D, iterations=voxels)] = value

    # a margin of voxels + 1: the grown mask stays inside the box
    return _edit_structure(labels, structure, voxels, margin_px=voxels + 1, edit=dilate)


def punch_holes(
    labels: np.ndarray,
    rng: np.random.Generator,
    spacing_mm: Spacing3,
    *,
    structure: StructureLike,
    n_holes: int = 3,
    radius_mm: float = 4.0,
) -> np.ndarray:
    """Set discs inside one structure to background, each on one slice (centres drawn inside it).

    Args:
        labels: canonical labels uint8 [z, y, x].
        rng: random generator.
        spacing_mm: voxel size (dz, dy, dx) in mm.
        structure: LV, RV or MYO.
        n_holes: number of discs.
        radius_mm: disc radius, mm; only voxels of ``structure`` are cleared.
    Returns: uint8 [z, y, x]; a copy when the structure is absent.
    """
    labels = as_label_volume(labels)
    value = label_value(structure)
    out = labels.copy()
    where = np.argwhere(labels == value)
    if n_holes <= 0 or len(where) == 0:
        return out
    _, dy, dx = spacing_mm
    ny, nx = labels.shape[1:]
    yy, xx = np.ogrid[0:ny, 0:nx]
    for z, y, x in where[rng.integers(0, len(where), size=n_holes)]:
        disc = ((yy - y) * dy) ** 2 + ((xx - x) * dx) ** 2 <= radius_mm**2
        out[z][disc & (out[z] == value)] = 0
    return out


def add_spurious_blobs(
    labels: np.ndarray,
    rng: np.random.Generator,
    spacing_mm: Spacing3,
    *,
    n_blobs: int = 2,
    radius_mm: float = 6.0,
    min_distance_mm: float = 40.0,
    structure: StructureLike | None = None,
) -> np.ndarray:
    """Paint small ellipsoidal blobs far from the heart (false positives elsewhere in the field of view).

    Centres are drawn on background voxels at least ``min_distance_mm`` (in-plane) from every
    foreground voxel of their slice (or anywhere when the field of view has no such voxel); each blob
    spans one to three slices.

    Args:
        labels: canonical labels uint8 [z, y, x].
        rng: random generator.
        spacing_mm: voxel size (dz, dy, dx) in mm.
        n_blobs: number of blobs.
        radius_mm: in-plane blob radius, mm (each blob gets 0.6-1.2 times it).
        min_distance_mm: smallest in-plane distance from the heart, mm.
        structure: label of the blobs; None draws, per blob, one of the structures present in
            ``labels`` (any of LV, RV, MYO when none is), so a removed structure stays missing.
    Returns: uint8 [z, y, x].
    """
    labels = as_label_volume(labels)
    out = labels.copy()
    if n_blobs <= 0:
        return out
    nz, ny, nx = labels.shape
    _, dy, dx = spacing_mm
    fg = labels.any(axis=0)
    if fg.any():
        far = ndimage.distance_transform_edt(~fg, sampling=(dy, dx)) >= min_distance_mm
        candidates = np.argwhere(far)
    else:
        candidates = np.empty((0, 2), dtype=int)
    if len(candidates) == 0:
        candidates = np.argwhere(np.ones((ny, nx), dtype=bool))
    present = [v for v in (_RV, _MYO, _LV) if (labels == v).any()] or [_RV, _MYO, _LV]
    yy, xx = np.ogrid[0:ny, 0:nx]
    for _ in range(n_blobs):
        y, x = candidates[rng.integers(len(candidates))]
        z0 = int(rng.integers(nz))
        depth = int(rng.integers(1, 4))
        value = label_value(structure) if structure is not None else present[int(rng.integers(len(present)))]
        ry, rx = radius_mm * rng.uniform(0.6, 1.2, size=2)
        blob = ((yy - y) * dy / ry) ** 2 + ((xx - x) * dx / rx) ** 2 <= 1.0
        for z in range(z0, min(z0 + depth, nz)):
            out[z][blob & (out[z] == 0)] = value
    return out


def drop_slices(
    labels: np.ndarray, slices: Sequence[int], structure: StructureLike | None = None
) -> np.ndarray:
    """Erase one structure (or every structure) on the given slices.

    Args:
        labels: canonical labels uint8 [z, y, x].
        slices: z indices to erase.
        structure: LV, RV or MYO; None clears the whole slice.
    Returns: uint8 [z, y, x].
    """
    labels = as_label_volume(labels)
    out = labels.copy()
    idx = np.asarray(list(slices), dtype=int)
    if idx.size == 0:
        return out
    if structure is None:
        out[idx] = 0
    else:
        part = out[idx]
        part[part == label_value(structure)] = 0
        out[idx] = part
    return out


def remove_structure(labels: np.ndarray, structure: StructureLike) -> np.ndarray:
    """Erase one structure everywhere (a missing structure); its voxels become background.

    Returns: uint8 [z, y, x] with no voxel of ``structure``.
    """
    labels = as_label_volume(labels)
    out = labels.copy()
    out[labels == label_value(structure)] = 0
    return out


def swap_labels(
    labels: np.ndarray, a: StructureLike, b: StructureLike, slices: Sequence[int] | None = None
) -> np.ndarray:
    """Exchange the labels of two structures (e.g. LV <-> RV), on all slices or the given ones.

    Returns: uint8 [z, y, x].
    """
    labels = as_label_volume(labels)
    va, vb = label_value(a), label_value(b)
    lut = np.arange(256, dtype=np.uint8)
    lut[va], lut[vb] = vb, va
    out = labels.copy()
    idx = slice(None) if slices is None else np.asarray(list(slices), dtype=int)
    out[idx] = lut[labels[idx]]
    return out
