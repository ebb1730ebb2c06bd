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

from monitor.qc.evidence.anatomy import Anatomy, Box, build_anatomy, union_box
from monitor.qc.evidence.morphology import grow_cross, shrink_cross
from monitor.qc.labels import CANONICAL_CHANNEL, STRUCTURES, Structure
from monitor.qc.metrics import boundary, bounding_box, voxels_ml
from monitor.qc.records import StructureScore, VolumeScore
from monitor.typing import Spacing3

__all__ = ["Features", "feature_matrix", "feature_rows", "image_features", "mask_features"]

#: Per structure: feature name -> value (nan when not computable).
Features = dict[Structure, dict[str, float]]

_NAN = math.nan
_FULL = ndimage.generate_binary_structure(3, 3)
_RING_PX = 2  #: the image rings' width, px
_IMAGE_MARGIN_PX = 10  #: the image's percentile box: the heart's box grown by this in-plane, px


def _slice_runs(present: np.ndarray) -> tuple[int, int]:
    """(slices holding the structure, empty slices inside its range) of a bool [z] profile."""
    idx = np.flatnonzero(present)
    if idx.size == 0:
        return 0, 0
    return int(idx.size), int(idx[-1] - idx[0] + 1 - idx.size)


def _off_component(part: np.ndarray, offset: np.ndarray, spacing_mm: Spacing3) -> tuple[float, float, float]:
    """(components, share of voxels off the largest 3D component, farthest of them from it in mm).

    ``part`` is the structure on its own box, whose first voxel is ``offset`` (int [3]) in the frame
    the distances are measured in. The nearest voxel of the largest component to a voxel off it is
    on that component's boundary, so only its boundary goes into the k-d tree.
    """
    labels, n = ndimage.label(part, structure=_FULL)
    if n <= 1:
        return float(n), 0.0, 0.0
    sizes = np.bincount(labels.ravel())[1:]
    main = labels == (int(np.argmax(sizes)) + 1)
    off = part & ~main
    scale = np.asarray(spacing_mm, dtype=float)
    tree = cKDTree((np.argwhere(boundary(main)) + offset) * scale, balanced_tree=False, compact_nodes=False)
    dist, _ = tree.query((np.argwhere(off) + offset) * scale, k=1)
    return float(n), float(off.sum() / part.sum()), float(dist.max())


def _jumps(
    area: np.ndarray, moments: np.ndarray, origin_yx: np.ndarray, spacing_mm: Spacing3
) -> tuple[float, float]:
    """Largest centroid jump (mm, in-plane) and largest |log area ratio| between consecutive slices.

    Args:
        area: int [z], voxels per slice; moments: int [z, 2], sums of their (y, x) indices.
        origin_yx: the frame's first (y, x) index in the moments' frame (centroids are measured there).
    """
    areas = area.astype(float)
    idx = np.flatnonzero(areas)
    if idx.size < 2:
        return 0.0, 0.0
    local = moments[idx] - origin_yx * area[idx, None]  # exact integers, then one division per value
    cy = local[:, 0] / areas[idx] * spacing_mm[1]
    cx = local[:, 1] / areas[idx] * spacing_mm[2]
    centroid = float(np.max(np.hypot(np.diff(cy), np.diff(cx))))
    jump = float(np.max(np.abs(np.diff(np.log(areas[idx])))))
    return centroid, jump


def _slice_dice(inter: np.ndarray, mask_area: np.ndarray, pgt_area: np.ndarray) -> tuple[float, float]:
    """(min, mean) of the 2D Dice of mask and pGT over slices where either holds the structure.

    Args: per slice, int [z] voxels of the intersection, of the mask and of the pGT.
    """
    total = mask_area.astype(float) + pgt_area
    keep = total > 0
    if not keep.any():
        return _NAN, _NAN
    d = 2 * inter.astype(float)[keep] / total[keep]
    return float(d.min()), float(d.mean())


def _pgt_slices(
    pgt: np.ndarray, box: Box, anatomy: Anatomy
) -> dict[Structure, tuple[np.ndarray, np.ndarray]]:
    """Per structure, int [z] voxels of the pGT and of its overlap with the mask on each slice."""
    nz = pgt.shape[0]
    ref = pgt[box]
    cut = pgt[anatomy.cut]
    out = {}
    for s in STRUCTURES:
        channel = CANONICAL_CHANNEL[s]
        counts = np.zeros(nz, dtype=np.int64)
        counts[box[0]] = (ref == channel).sum(axis=(1, 2))
        overlap = (anatomy.binary[s] & (cut == channel)).sum(axis=(1, 2), dtype=np.int64)
        out[s] = (counts, overlap)
    return out


def mask_features(
    mask: np.ndarray, pgt: np.ndarray | None, spacing_mm: Spacing3, *, anatomy: Anatomy | None = None
) -> Features:
    """Simple mask features per structure (about 1-2 ms per volume; work is confined to the heart's box).

    Args:
        mask: uint8 [z, y, x] canonical labels.
        pgt: its pseudo ground truth, same shape; None leaves the slice-wise Dice nan.
        spacing_mm: (dz, dy, dx) in mm.
        anatomy: the mask's layout when the evidence stage already built it (``Evidence.anatomy``);
            None builds it here (same values).
    Returns: per structure, feature name -> value; an absent structure has nan for its shape features.
    Raises: ValueError if ``pgt`` has another shape.
    """
    if pgt is not None and pgt.shape != mask.shape:
        raise ValueError(f"mask and pgt must have the same shape, got {mask.shape} and {pgt.shape}")
    anatomy = anatomy if anatomy is not None else build_anatomy(mask)
    zs = anatomy.box[0]
    margins = (float(zs.start), float(mask.shape[0] - zs.stop)) if zs.stop > zs.start else (_NAN, _NAN)
    common = {
        "dz_mm": float(spacing_mm[0]),
        "margin_min": float(min(margins)),
        "margin_max": float(max(margins)),
    }
    # the features' frame: the box of mask and pGT together (its first voxel is where centroids and
    # component distances are measured from, as they always were)
    box = union_box(anatomy.box, bounding_box(pgt > 0)) if pgt is not None else anatomy.box
    frame = np.array([b.start for b in box], dtype=np.int64)
    pgt_slices = _pgt_slices(pgt, box, anatomy) if pgt is not None else None
    slices = {s: anatomy.area[s] > 0 for s in STRUCTURES}
    out: Features = {}
    for s in STRUCTURES:
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
            own = anatomy.boxes[s]
            part = anatomy.binary[s][_local(own, anatomy.cut)]
            offset = np.array([b.start for b in own], dtype=np.int64) - frame
            row["components"], row["off_share"], row["off_mm"] = _off_component(part, offset, spacing_mm)
            row["centroid_jump_mm"], row["area_jump"] = _jumps(
                anatomy.area[s], anatomy.moments[s], frame[1:], spacing_mm
            )
        else:
            row.update(components=0.0, off_share=_NAN, off_mm=_NAN, centroid_jump_mm=_NAN, area_jump=_NAN)
        if pgt_slices is not None:
            counts, overlap = pgt_slices[s]
            row["slice_dsc_min"], row["slice_dsc_mean"] = _slice_dice(overlap, anatomy.area[s], counts)
        else:
            row["slice_dsc_min"] = row["slice_dsc_mean"] = _NAN
        out[s] = row
    open_share = _lv_open(anatomy, box)
    for s in STRUCTURES:
        out[s]["lv_open"] = open_share if s is not Structure.RV else _NAN
    return out


def _lv_open(anatomy: Anatomy, box: Box) -> float:
    """Share of the LV cavity's in-plane outline that touches background rather than MYO or RV.

    The outline is the LV's in-plane 4-neighbour ring, within ``box`` (the features' frame).
    """
    own = anatomy.boxes[Structure.LV]
    if own[0].stop <= own[0].start:
        return _NAN
    region = _grown(own, 1, box)
    local = _local(region, anatomy.cut)
    lv = anatomy.binary[Structure.LV][local]
    ring = grow_cross(lv, 1) & ~lv
    return float((ring & (anatomy.labels[local] == 0)).sum() / max(1, ring.sum()))


def _grown(own: Box, margin: int, within: Box) -> Box:
    """``own`` grown in-plane by ``margin`` and clipped to ``within`` (z kept)."""
    return (
        own[0],
        slice(max(own[1].start - margin, within[1].start), min(own[1].stop + margin, within[1].stop)),
        slice(max(own[2].start - margin, within[2].start), min(own[2].stop + margin, within[2].stop)),
    )


def _local(region: Box, cut: Box) -> Box:
    """``region`` (whole-volume indices) in the indices of the array cut at ``cut``."""
    return (
        region[0],
        slice(region[1].start - cut[1].start, region[1].stop - cut[1].start),
        slice(region[2].start - cut[2].start, region[2].stop - cut[2].start),
    )


def image_features(image: np.ndarray, mask: np.ndarray, *, anatomy: Anatomy | None = None) -> Features:
    """Intensity features per structure from the paired MR image.

    ``img_mean`` and ``img_std``: intensity inside the structure; ``img_edge``: median of a 2-voxel
    in-plane ring inside its boundary minus that of a ring outside it. All are scaled by the 1-99
    percentile range of the image in the heart's box (widened by 10 voxels in-plane), so they do not
    depend on the scanner's intensity scale. Each structure is worked on in its own box (grown by
    the ring), which gives the same values as the heart's box.

    Args:
        image: float [z, y, x], same shape as ``mask``.
        mask: uint8 [z, y, x] canonical labels.
        anatomy: the mask's layout when the evidence stage already built it; None builds it here.
    Returns: per structure ``img_mean``, ``img_std``, ``img_edge``; nan for an absent structure.
    Raises: ValueError if the shapes differ.
    """
    if image.shape != mask.shape:
        raise ValueError(f"image and mask must have the same shape, got {image.shape} and {mask.shape}")
    empty = {"img_mean": _NAN, "img_std": _NAN, "img_edge": _NAN}
    anatomy = anatomy if anatomy is not None else build_anatomy(mask)
    zs, ys, xs = anatomy.box
    if zs.stop <= zs.start:
        return {s: dict(empty) for s in STRUCTURES}
    box: Box = (
        zs,
        slice(max(0, ys.start - _IMAGE_MARGIN_PX), ys.stop + _IMAGE_MARGIN_PX),
        slice(max(0, xs.start - _IMAGE_MARGIN_PX), xs.stop + _IMAGE_MARGIN_PX),
    )
    lo, hi = np.percentile(np.asarray(image[box], dtype=np.float32), [1.0, 99.0])
    scale = float(hi - lo) if hi > lo else 1.0
    clipped = (
        zs,
        slice(box[1].start, min(box[1].stop, mask.shape[1])),
        slice(box[2].start, min(box[2].stop, mask.shape[2])),
    )
    out: Features = {}
    for s in STRUCTURES:
        own = anatomy.boxes[s]
        if own[0].stop <= own[0].start:
            out[s] = dict(empty)
            continue
        region = _grown(own, _RING_PX, clipped)
        m = mask[region] == CANONICAL_CHANNEL[s]
        img = (np.asarray(image[region], dtype=np.float32) - lo) / scale
        inner = m & ~shrink_cross(m, _RING_PX)
        outer = grow_cross(m, _RING_PX) & ~m
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
