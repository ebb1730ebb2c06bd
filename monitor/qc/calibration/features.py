"""Feature rows for the calibration: what a ``VolumeScore`` carries plus simple mask (and image) features.

One row per volume and structure, a ``dict`` of named floats; a value that could not be computed is
nan (gradient boosting takes nan as "missing"), so a score without the evidence stage, or a volume
without an MR image, still gets a row. Names:

- from the ``StructureScore``: ``pdsc``, ``phd_mm``, ``pdsc_3d``, ``phd_mm_3d`` (nan until the evidence
  stage ran), ``mask_ml``, ``pgt_ml``, ``ml_ratio`` (mask / pGT volume), ``chk_<code>`` per evidence
  ``Check`` value, and the other structures' ``pdsc_<S>`` / ``phd_mm_<S>`` (volume context);
- from the mask (``mask_features``), per structure: components, the share and distance (mm) of voxels
  off the largest 3D component, slice count and gaps, centroid and area jumps between slices, slice-wise
  Dice against the pGT, slices where the heart's other structures are and this one is not; per volume:
  slice spacing and the empty slices at each end of the stack;
- from the MR image (``image_features``, optional): intensity inside the structure and the contrast
  across its boundary, scaled by the 1-99 percentile range around the heart.

Arrays are uint8 ``[z, y, x]`` canonical labels (0 BG, 1 RV, 2 MYO, 3 LV); spacing ``(dz, dy, dx)`` mm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from monitor.qc.evidence.morphology import grow_cross, shrink_cross
from monitor.qc.labels import CANONICAL_CHANNEL, STRUCTURES, Structure
from monitor.qc.metrics import bounding_box, voxels_ml
from monitor.qc.records import StructureScore, VolumeScore
from monitor.typing import Spacing3

__all__ = ["Features", "feature_matrix", "feature_rows", "image_features", "mask_features"]

#: Per structure: feature name -> value (nan when not computable).
Features = dict[Structure, dict[str, float]]

_NAN = math.nan
_FULL = ndimage.generate_binary_structure(3, 3)


def _slice_runs(present: np.ndarray) -> tuple[int, int]:
    """(slices holding the structure, empty slices inside its range) of a bool [z] profile."""
    idx = np.flatnonzero(present)
    if idx.size == 0:
        return 0, 0
    return int(idx.size), int(idx[-1] - idx[0] + 1 - idx.size)


def _own_box(m: np.ndarray) -> tuple[slice, slice, slice]:
    """The bounding box of a non-empty bool [z, y, x] mask."""
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    part = m[zs[0] : zs[-1] + 1]
    ys = np.flatnonzero(part.any(axis=(0, 2)))
    xs = np.flatnonzero(part.any(axis=(0, 1)))
    return slice(zs[0], zs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1)


def _surface(m: np.ndarray) -> np.ndarray:
    """Voxels of ``m`` with a face neighbour outside it (outside the array counts as outside)."""
    inner = m.copy()
    inner[1:] &= m[:-1]
    inner[:-1] &= m[1:]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    inner[:, :, 1:] &= m[:, :, :-1]
    inner[:, :, :-1] &= m[:, :, 1:]
    inner[(0, -1), :, :] = False
    inner[:, (0, -1), :] = False
    inner[:, :, (0, -1)] = False
    return m & ~inner


def _off_component(m: np.ndarray, spacing_mm: Spacing3) -> tuple[float, float, float]:
    """(components, share of voxels off the largest 3D component, farthest of them from it in mm).

    Work is on ``m``'s own box (same labels, offset); the nearest voxel of the largest component to
    a voxel off it is on that component's surface, so only its surface goes into the k-d tree.
    """
    box = _own_box(m)
    part = m[box]
    labels, n = ndimage.label(part, structure=_FULL)
    if n <= 1:
        return float(n), 0.0, 0.0
    sizes = np.bincount(labels.ravel())[1:]
    main = labels == (int(np.argmax(sizes)) + 1)
    off = part & ~main
    offset = np.array([b.start for b in box])
    scale = np.asarray(spacing_mm, dtype=float)
    tree = cKDTree((np.argwhere(_surface(main)) + offset) * scale, balanced_tree=False, compact_nodes=False)
    dist, _ = tree.query((np.argwhere(off) + offset) * scale, k=1)
    return float(n), float(off.sum() / m.sum()), float(dist.max())


def _jumps(m: np.ndarray, spacing_mm: Spacing3) -> tuple[float, float]:
    """Largest centroid jump (mm, in-plane) and largest |log area ratio| between consecutive slices."""
    areas = m.sum(axis=(1, 2)).astype(float)
    idx = np.flatnonzero(areas)
    if idx.size < 2:
        return 0.0, 0.0
    part = m[idx]  # exact integer first moments per slice, then the same divisions as one slice at a time
    sum_y = part.sum(axis=2, dtype=np.int64) @ np.arange(m.shape[1], dtype=np.int64)
    sum_x = part.sum(axis=1, dtype=np.int64) @ np.arange(m.shape[2], dtype=np.int64)
    cy = sum_y / areas[idx] * spacing_mm[1]
    cx = sum_x / areas[idx] * spacing_mm[2]
    centroid = float(np.max(np.hypot(np.diff(cy), np.diff(cx))))
    area = float(np.max(np.abs(np.diff(np.log(areas[idx])))))
    return centroid, area


def _slice_dice(m: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(min, mean) of the 2D Dice of mask and pGT over slices where either holds the structure."""
    inter = (m & p).sum(axis=(1, 2)).astype(float)
    total = m.sum(axis=(1, 2)).astype(float) + p.sum(axis=(1, 2))
    keep = total > 0
    if not keep.any():
        return _NAN, _NAN
    d = 2 * inter[keep] / total[keep]
    return float(d.min()), float(d.mean())


def mask_features(mask: np.ndarray, pgt: np.ndarray | None, spacing_mm: Spacing3) -> Features:
    """Simple mask features per structure (a few ms per volume; work is confined to the heart's box).

    Args:
        mask: uint8 [z, y, x] canonical labels.
        pgt: its pseudo ground truth, same shape; None leaves the slice-wise Dice nan.
        spacing_mm: (dz, dy, dx) in mm.
    Returns: per structure, feature name -> value; an absent structure has nan for its shape features.
    Raises: ValueError if ``pgt`` has another shape.
    """
    if pgt is not None and pgt.shape != mask.shape:
        raise ValueError(f"mask and pgt must have the same shape, got {mask.shape} and {pgt.shape}")
    fg = mask > 0
    occupied = np.flatnonzero(fg.any(axis=(1, 2)))
    margins = (float(occupied[0]), float(mask.shape[0] - 1 - occupied[-1])) if occupied.size else (_NAN, _NAN)
    common = {
        "dz_mm": float(spacing_mm[0]),
        "margin_min": float(min(margins)),
        "margin_max": float(max(margins)),
    }
    box = bounding_box(fg | (pgt > 0)) if pgt is not None else bounding_box(fg)
    crop = mask[box]
    ref = pgt[box] if pgt is not None else None
    present = {s: crop == CANONICAL_CHANNEL[s] for s in STRUCTURES}
    slices = {s: present[s].any(axis=(1, 2)) for s in STRUCTURES}
    out: Features = {}
    for s in STRUCTURES:
        m = present[s]
        others = np.zeros_like(slices[s])
        for o in STRUCTURES:
            if o is not s:
                others |= slices[o]
        n_slices, gaps = _slice_runs(slices[s])
        row = dict(common)
        row["n_slices"] = float(n_slices)
        row["slice_gaps"] = float(gaps)
        row["slices_without"] = float(np.count_nonzero(others & ~slices[s]))
        if n_slices:
            row["components"], row["off_share"], row["off_mm"] = _off_component(m, spacing_mm)
            row["centroid_jump_mm"], row["area_jump"] = _jumps(m, spacing_mm)
        else:
            row.update(components=0.0, off_share=_NAN, off_mm=_NAN, centroid_jump_mm=_NAN, area_jump=_NAN)
        if ref is not None:
            row["slice_dsc_min"], row["slice_dsc_mean"] = _slice_dice(m, ref == CANONICAL_CHANNEL[s])
        else:
            row["slice_dsc_min"] = row["slice_dsc_mean"] = _NAN
        out[s] = row
    open_share = _lv_open(present[Structure.LV], crop)
    for s in STRUCTURES:
        out[s]["lv_open"] = open_share if s is not Structure.RV else _NAN
    return out


def _lv_open(lv: np.ndarray, crop: np.ndarray) -> float:
    """Share of the LV cavity's in-plane outline that touches background rather than MYO or RV."""
    if not lv.any():
        return _NAN
    ring = grow_cross(lv, 1) & ~lv
    return float((ring & (crop == 0)).sum() / max(1, ring.sum()))


def image_features(image: np.ndarray, mask: np.ndarray) -> Features:
    """Intensity features per structure from the paired MR image.

    ``img_mean`` and ``img_std``: intensity inside the structure; ``img_edge``: median of a 2-voxel
    in-plane ring inside its boundary minus that of a ring outside it. All are scaled by the 1-99
    percentile range of the image in the heart's box (widened by 10 voxels in-plane), so they do not
    depend on the scanner's intensity scale.

    Args:
        image: float [z, y, x], same shape as ``mask``.
        mask: uint8 [z, y, x] canonical labels.
    Returns: per structure ``img_mean``, ``img_std``, ``img_edge``; nan for an absent structure.
    Raises: ValueError if the shapes differ.
    """
    if image.shape != mask.shape:
        raise ValueError(f"image and mask must have the same shape, got {image.shape} and {mask.shape}")
    empty = {"img_mean": _NAN, "img_std": _NAN, "img_edge": _NAN}
    fg = mask > 0
    if not fg.any():
        return {s: dict(empty) for s in STRUCTURES}
    zs, ys, xs = bounding_box(fg)
    box = (
        zs,
        slice(max(0, ys.start - 10), ys.stop + 10),
        slice(max(0, xs.start - 10), xs.stop + 10),
    )
    img = np.asarray(image[box], dtype=np.float32)
    crop = mask[box]
    lo, hi = np.percentile(img, [1.0, 99.0])
    scale = float(hi - lo) if hi > lo else 1.0
    img = (img - lo) / scale
    out: Features = {}
    for s in STRUCTURES:
        m = crop == CANONICAL_CHANNEL[s]
        if not m.any():
            out[s] = dict(empty)
            continue
        inner = m & ~shrink_cross(m, 2)
        outer = grow_cross(m, 2) & ~m
        edge = float(np.median(img[inner]) - np.median(img[outer])) if outer.any() else _NAN
        out[s] = {"img_mean": float(img[m].mean()), "img_std": float(img[m].std()), "img_edge": edge}
    return out


def feature_rows(score: VolumeScore, extra: Features | None = None) -> Features:
    """The feature row of each structure of ``score``, merged with ``extra`` (mask and image features).

    Args:
        score: a volume's scores (pseudo metrics, refined metrics and evidence when present).
        extra: per structure, further named values (``mask_features``, ``image_features``).
    Returns: per structure, feature name -> value.
    """
    context: dict[str, float] = {}
    for item in score.structures:
        context[f"pdsc_{item.structure.value}"] = float(item.pdsc)
        context[f"phd_mm_{item.structure.value}"] = float(item.phd_mm)
    ml = voxels_ml(1, score.spacing_mm)
    out: Features = {}
    for item in score.structures:
        row = dict(context)
        row.update(_own(item, ml))
        if extra is not None and item.structure in extra:
            row.update(extra[item.structure])
        out[item.structure] = row
    return out


def _own(item: StructureScore, voxel_ml: float) -> dict[str, float]:
    pgt_ml = item.pgt_volume_ml if not math.isnan(item.pgt_volume_ml) else item.pgt_voxels * voxel_ml
    row = {
        "pdsc": float(item.pdsc),
        "phd_mm": float(item.phd_mm),
        "pdsc_3d": float(item.pdsc_3d),
        "phd_mm_3d": float(item.phd_mm_3d),
        "mask_ml": float(item.mask_volume_ml),
        "pgt_ml": float(pgt_ml),
        "ml_ratio": float(item.mask_volume_ml / pgt_ml) if pgt_ml > 0 else _NAN,
    }
    for check in item.evidence:
        key = f"chk_{check.code.value}"
        row[key] = max(row.get(key, -math.inf), float(check.value))
    return row


def feature_matrix(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    """Rows as a float64 [n, len(names)] matrix in the order of ``names``; absent names are nan."""
    out = np.full((len(rows), len(names)), np.nan)
    for i, row in enumerate(rows):
        for j, name in enumerate(names):
            value = row.get(name)
            if value is not None:
                out[i, j] = value
    return out
