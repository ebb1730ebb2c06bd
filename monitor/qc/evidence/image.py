"""Image evidence: does the MR image agree with the mask's boundaries and classes?

Cine bSSFP shows bright blood pools against dark myocardium. Intensities are scaled by the image's
1-99 percentile range (``intensity_range``), so every value is invariant to the scanner's intensity
scale. The image is float ``[z, y, x]`` in the mask's geometry; all work is in-plane (no link through
z) and confined to the heart's box. Checks:

- ``image_contrast`` (LV, RV): median of a 2-px ring inside the boundary minus that of a 2-px ring
  outside, over the range (value; a dilated cavity takes in dark myocardium and loses contrast);
- ``edge_offset`` (LV): where the steepest bright-to-dark step of the mean intensity profile across the
  LV boundary lies (refined to sub-pixel by a parabola), in px along the outward normal, minus where expert contours put it
  (``edge_bias_px``: just inside it). Positive: the image's edge is outside the mask (an eroded
  mask); negative: inside (a dilated one). Value: px; the tolerance is asymmetric
  (``edge_inward_px``, ``edge_outward_px``), as is expert contours' spread;
- ``class_overlap`` (LV vs MYO; MYO vs both pools): 1 - AUC of the blood voxels being
  brighter than the myocardial ones (value: 0 perfectly separated, 0.5 no separation).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from monitor.qc.evidence.morphology import grow, shrink
from monitor.qc.evidence.profile import largest_component
from monitor.qc.evidence.settings import EvidenceSettings
from monitor.qc.labels import CANONICAL_CHANNEL, STRUCTURES, Structure
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Check

__all__ = [
    "check_image",
    "confirmed_by_image",
    "edge_offset_px",
    "intensity_range",
    "realigned_contrast",
    "slice_contrast",
]

_RING_PX = 2
_PROFILE_PX = 5.0  #: the edge profile spans this many px on each side of the boundary
_BIN_PX = 0.5
_MAX_SAMPLES = 1024  #: voxels per class for the overlap AUC (strided; +- 0.01)


def intensity_range(image: np.ndarray) -> tuple[float, float]:
    """The image's 1st and 99th intensity percentiles (from every 4th voxel in-plane, for speed)."""
    sample = np.asarray(image[:, ::4, ::4], dtype=np.float32).ravel()
    lo, hi = np.percentile(sample, (1.0, 99.0))
    return float(lo), float(hi)


def _rings(binary: np.ndarray) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray]:
    """The ``_RING_PX`` rings inside and outside a structure's boundary, in-plane, on its own box grown
    by the ring (every slice; the same rings as on any larger box): (box, inner, outer)."""
    ys = np.flatnonzero(binary.any(axis=(0, 2)))
    xs = np.flatnonzero(binary.any(axis=(0, 1)))
    if ys.size == 0:
        box = (slice(None), slice(0, 0), slice(0, 0))
        return box, binary[box], binary[box]
    ny, nx = binary.shape[1:]
    box = (
        slice(None),
        slice(max(int(ys[0]) - _RING_PX, 0), min(int(ys[-1]) + 1 + _RING_PX, ny)),
        slice(max(int(xs[0]) - _RING_PX, 0), min(int(xs[-1]) + 1 + _RING_PX, nx)),
    )
    b = binary[box]
    return box, b & ~shrink(b, _RING_PX), grow(b, _RING_PX) & ~b


def _contrast(image: np.ndarray, binary: np.ndarray, scale: float) -> float:
    box, inner, outer = _rings(binary)
    if not inner.any() or not outer.any():
        return float("nan")
    part = image[box]
    return float((np.median(part[inner]) - np.median(part[outer])) / scale)


def edge_offset_px(image: np.ndarray, binary: np.ndarray) -> float:
    """Signed position (px) of the steepest bright-to-dark step of the mean profile across a boundary.

    Args:
        image: float [z, y, x].
        binary: bool [z, y, x], the (bright) structure; only its largest 3D component is used.
    Returns: px along the outward normal from the mask's boundary (positive: outside); nan if absent.
    """
    if not binary.any():
        return float("nan")
    binary = largest_component(binary)  # specks would only blur the profile (and widen the box)
    pad = int(_PROFILE_PX) + 2
    offsets, values = [], []
    for z in np.flatnonzero(binary.any(axis=(1, 2))):
        # each slice in its own box (fewer pixels than the stack's box on the smaller apical slices);
        # the pad keeps every pixel within the profile's reach, and its nearest pixel of either side,
        # inside the box
        rows = np.flatnonzero(binary[z].any(axis=1))
        cols = np.flatnonzero(binary[z].any(axis=0))
        ys = slice(max(int(rows[0]) - pad, 0), int(rows[-1]) + 1 + pad)
        xs = slice(max(int(cols[0]) - pad, 0), int(cols[-1]) + 1 + pad)
        b = binary[z, ys, xs]
        signed = np.where(
            b, 0.5 - ndimage.distance_transform_edt(b), ndimage.distance_transform_edt(~b) - 0.5
        )
        near = np.abs(signed) <= _PROFILE_PX
        offsets.append(signed[near])
        values.append(image[z, ys, xs][near])
    signed_near, image_near = np.concatenate(offsets), np.concatenate(values)
    bins = np.floor((signed_near + _PROFILE_PX) / _BIN_PX).astype(np.int64)
    n_bins = int(2 * _PROFILE_PX / _BIN_PX) + 1
    counts = np.bincount(bins, minlength=n_bins)
    sums = np.bincount(bins, weights=image_near, minlength=n_bins)
    used = counts > 0
    centres = (np.arange(n_bins) + 0.5) * _BIN_PX - _PROFILE_PX
    profile = np.interp(centres, centres[used], sums[used] / counts[used])
    smooth = np.convolve(np.pad(profile, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    step = np.diff(smooth)
    k = int(np.argmin(step))
    shift = 0.0
    if 0 < k < step.size - 1:  # parabola through the steepest step and its neighbours
        a, b, c = step[k - 1], step[k], step[k + 1]
        curvature = a - 2 * b + c
        if curvature > 0:
            shift = 0.5 * (a - c) / curvature
    return float((centres[k] + centres[k + 1]) / 2 + shift * _BIN_PX)


def slice_contrast(image: np.ndarray, binary: np.ndarray, scale: float) -> np.ndarray:
    """Per-slice boundary contrast (inside minus outside ring median, over ``scale``); nan where absent."""
    box, inner, outer = _rings(binary)
    part = image[box]
    out = np.full(binary.shape[0], np.nan)
    for z in np.flatnonzero(inner.any(axis=(1, 2)) & outer.any(axis=(1, 2))):
        out[z] = (np.median(part[z][inner[z]]) - np.median(part[z][outer[z]])) / scale
    return out


def _moved(binary: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """A 2D boolean array moved by whole pixels (what leaves the array is lost)."""
    out = np.zeros_like(binary)
    ny, nx = binary.shape
    if abs(dy) >= ny or abs(dx) >= nx:
        return out
    out[max(dy, 0) : ny + min(dy, 0), max(dx, 0) : nx + min(dx, 0)] = binary[
        max(-dy, 0) : ny + min(-dy, 0), max(-dx, 0) : nx + min(-dx, 0)
    ]
    return out


def realigned_contrast(
    image: np.ndarray, binary: np.ndarray, z: int, shift_px: tuple[float, float], scale: float
) -> float:
    """Boundary contrast of slice ``z`` of ``binary`` moved in-plane by ``shift_px`` (dy, dx; rounded).

    Where a slice's mask strayed from the image, moving it to where its neighbours put the heart
    raises its contrast; where the image moved with the mask (breath-hold motion), it lowers it.
    Returns: (inside - outside ring median) / ``scale``; nan if a ring is empty.
    """
    moved = _moved(binary[z], round(shift_px[0]), round(shift_px[1]))
    return float(slice_contrast(image[z : z + 1], moved[None], scale)[0])


def confirmed_by_image(contrast: np.ndarray, slices: tuple[int, ...], fraction: float) -> bool:
    """Whether every slice of ``slices`` fits the image as well as the rest of the stack does.

    A slice whose boundary contrast is at least ``fraction`` of the median of the other slices'
    follows the image's own edges: the image moved with the mask (breath-hold motion), the mask did
    not stray from the image.
    """
    picked = [z for z in slices if 0 <= z < contrast.size]
    others = np.delete(contrast, picked)
    others = others[~np.isnan(others)]
    if not picked or others.size == 0:
        return False
    reference = float(np.median(others))
    return reference > 0 and all(contrast[z] >= fraction * reference for z in picked)


def _overlap(bright: np.ndarray, dark: np.ndarray) -> float:
    """1 - AUC(bright > dark), ties counted half; nan if either is empty."""
    if bright.size == 0 or dark.size == 0:
        return float("nan")
    a = bright[:: max(1, bright.size // _MAX_SAMPLES)]
    d = np.sort(dark[:: max(1, dark.size // _MAX_SAMPLES)])
    below = np.searchsorted(d, a, side="left")
    ties = np.searchsorted(d, a, side="right") - below
    auc = (below.sum() + 0.5 * ties.sum()) / (a.size * d.size)
    return float(1.0 - auc)


def check_image(
    image: np.ndarray, labels: np.ndarray, scale: float, settings: EvidenceSettings
) -> dict[Structure, list[Check]]:
    """All image checks, per structure (absent structures, and undefined values, get none).

    Args:
        image: float [z, y, x], cut to the same box as ``labels``.
        labels: uint8 [z, y, x] canonical.
        scale: the image's 99th minus 1st percentile (> 0).
        settings: tolerances.
    """
    out: dict[Structure, list[Check]] = {s: [] for s in STRUCTURES}
    binary = {s: labels == CANONICAL_CHANNEL[s] for s in STRUCTURES}
    for structure in (Structure.LV, Structure.RV):
        if binary[structure].any():
            value = _contrast(image, binary[structure], scale)
            if not np.isnan(value):
                out[structure].append(
                    Check(
                        code=ReasonCode.IMAGE_CONTRAST,
                        value=value,
                        passed=bool(value >= settings.contrast_min),
                    )
                )
    if binary[Structure.LV].any():
        offset = edge_offset_px(image, binary[Structure.LV]) - settings.edge_bias_px
        within = -settings.edge_inward_px <= offset <= settings.edge_outward_px
        out[Structure.LV].append(Check(code=ReasonCode.EDGE_OFFSET, value=offset, passed=bool(within)))
    myo = image[binary[Structure.MYO]]
    pools = {  # the RV's thin, trabeculated pool overlaps the myocardium even in expert masks
        Structure.LV: image[binary[Structure.LV]],
        Structure.MYO: image[binary[Structure.LV] | binary[Structure.RV]],
    }
    for structure, pool in pools.items():
        if binary[structure].any():
            value = _overlap(pool, myo)
            if not np.isnan(value):
                out[structure].append(
                    Check(
                        code=ReasonCode.CLASS_OVERLAP,
                        value=value,
                        passed=bool(value <= settings.class_overlap_max),
                    )
                )
    return out
