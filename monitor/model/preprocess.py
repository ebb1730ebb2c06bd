"""Model-space transform of label volumes and its exact inverse.

Recipe, per short-axis slice (all slices of a volume share one geometry):

1. resample in-plane from the header's spacing (dy, dx) to ``target_spacing_mm`` (1.25 mm): the
   label map is one-hot encoded, interpolated linearly (anti-aliased when shrinking) and arg-maxed;
2. centre a ``size`` x ``size`` window (256 x 256) on the heart, i.e. on the centre of the volume's
   foreground bounding box (the field-of-view centre when the volume is empty), padding with
   background where the window leaves the image;
3. one-hot encode with 4 channels in canonical order (0 BG, 1 RV, 2 MYO, 3 LV).

``PreprocessInfo`` records what was done so that ``from_model_space`` maps model outputs back to the
input's exact shape. The in-plane grid keeps the field of view: the resampled size is
``round(n * spacing / target)``, so the effective model-space spacing differs from the target by less
than half a pixel over the whole extent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from monitor.qc.labels import N_CHANNELS
from monitor.typing import Shape3, Spacing3

__all__ = [
    "MODEL_SIZE",
    "TARGET_SPACING_MM",
    "PreprocessInfo",
    "from_model_space",
    "one_hot",
    "to_model_space",
]

#: In-plane spacing of model space, mm.
TARGET_SPACING_MM = 1.25
#: Model input size (pixels, square).
MODEL_SIZE = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessInfo:
    """What ``to_model_space`` did, so that its inverse can undo it."""

    shape: Shape3  #: input shape [z, y, x], voxels
    spacing_mm: Spacing3  #: input spacing (dz, dy, dx), mm
    resampled_yx: tuple[int, int]  #: in-plane size after resampling to the target spacing, pixels
    window_start_yx: tuple[
        int, int
    ]  #: top-left corner of the model window in the resampled grid (may be < 0)
    slice_index: np.ndarray  #: int64 [n]: input slice of each model-space slice
    size: int = MODEL_SIZE  #: model window size, pixels

    @property
    def effective_spacing_mm(self) -> tuple[float, float]:
        """Actual in-plane pixel size (dy, dx) of model space, mm."""
        return (
            self.shape[1] * self.spacing_mm[1] / self.resampled_yx[0],
            self.shape[2] * self.spacing_mm[2] / self.resampled_yx[1],
        )


def one_hot(labels: np.ndarray | torch.Tensor, n_channels: int = N_CHANNELS) -> torch.Tensor:
    """One-hot encode integer labels [n, h, w] -> float32 tensor [n, C, h, w]."""
    t = torch.as_tensor(labels)
    channels = torch.arange(n_channels, dtype=t.dtype, device=t.device).view(1, n_channels, 1, 1)
    return (t.unsqueeze(1) == channels).to(torch.float32)


def _resample_probs(probs: torch.Tensor, size_yx: tuple[int, int]) -> torch.Tensor:
    """Interpolate class probabilities [n, C, h, w] to a new in-plane size (bilinear, anti-aliased when shrinking)."""
    h, w = probs.shape[-2:]
    if (h, w) == tuple(size_yx):
        return probs
    shrinking = size_yx[0] < h or size_yx[1] < w
    return F.interpolate(probs, size=size_yx, mode="bilinear", align_corners=False, antialias=shrinking)


def _foreground_box(labels: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive in-plane bounding box (y0, y1, x0, x1) of all foreground voxels, or None."""
    fg_y = np.flatnonzero(labels.any(axis=(0, 2)))
    if fg_y.size == 0:
        return None
    fg_x = np.flatnonzero(labels.any(axis=(0, 1)))
    return int(fg_y[0]), int(fg_y[-1]), int(fg_x[0]), int(fg_x[-1])


def _window_start(
    box: tuple[int, int, int, int] | None,
    scale_yx: tuple[float, float],
    resampled_yx: tuple[int, int],
    size: int,
) -> tuple[int, int]:
    """Top-left corner of a ``size`` window centred on the foreground bounding box (resampled pixels)."""
    if box is None:
        centre_y, centre_x = resampled_yx[0] / 2.0, resampled_yx[1] / 2.0
    else:
        # bbox centre in input pixel coordinates -> resampled pixel coordinates (pixel-centre convention)
        cy = (box[0] + box[1]) / 2.0
        cx = (box[2] + box[3]) / 2.0
        centre_y = (cy + 0.5) * scale_yx[0]
        centre_x = (cx + 0.5) * scale_yx[1]
    return round(centre_y - size / 2.0), round(centre_x - size / 2.0)


def _paste(src: torch.Tensor, dst: torch.Tensor, start_yx: tuple[int, int]) -> None:
    """Copy ``src`` [..., h, w] into ``dst`` [..., H, W] at offset ``start_yx`` (may be negative), clipping."""
    sy, sx = start_yx
    h, w = src.shape[-2:]
    H, W = dst.shape[-2:]
    y0, x0 = max(sy, 0), max(sx, 0)
    y1, x1 = min(sy + h, H), min(sx + w, W)
    if y1 <= y0 or x1 <= x0:
        return
    dst[..., y0:y1, x0:x1] = src[..., y0 - sy : y1 - sy, x0 - sx : x1 - sx]


def to_model_space(
    labels: np.ndarray,
    spacing_mm: Spacing3,
    *,
    slices: str | np.ndarray = "foreground",
    target_spacing_mm: float = TARGET_SPACING_MM,
    size: int = MODEL_SIZE,
) -> tuple[np.ndarray, PreprocessInfo]:
    """Resample, centre and crop/pad a canonical label volume to model space.

    Args:
        labels: uint8 [z, y, x], canonical labels 0..3.
        spacing_mm: (dz, dy, dx) in mm; only the in-plane part is used.
        slices: ``"foreground"`` (slices containing any structure), ``"all"``, or explicit indices.
        target_spacing_mm: model-space pixel size, mm.
        size: model window, pixels.
    Returns: (model labels uint8 [n, size, size], info for the inverse).
    Raises: ValueError for a non-3D array or non-positive spacing.
    """
    if labels.ndim != 3:
        raise ValueError(f"expected a 3D label volume [z, y, x], got {labels.ndim}D")
    if not all(s > 0 for s in spacing_mm):
        raise ValueError(f"spacing must be positive, got {spacing_mm}")
    z, h, w = labels.shape
    if isinstance(slices, str):
        if slices == "foreground":
            index = np.flatnonzero(labels.reshape(z, -1).any(axis=1))
        elif slices == "all":
            index = np.arange(z)
        else:
            raise ValueError(f"slices must be 'foreground', 'all' or indices, got {slices!r}")
    else:
        index = np.asarray(slices, dtype=np.int64)
    resampled = (
        max(1, round(h * spacing_mm[1] / target_spacing_mm)),
        max(1, round(w * spacing_mm[2] / target_spacing_mm)),
    )
    scale = (resampled[0] / h, resampled[1] / w)
    box = _foreground_box(labels)
    start = _window_start(box, scale, resampled, size)
    info = PreprocessInfo(
        shape=(z, h, w),
        spacing_mm=tuple(float(s) for s in spacing_mm),  # type: ignore[arg-type]
        resampled_yx=resampled,
        window_start_yx=start,
        slice_index=index.astype(np.int64),
        size=size,
    )
    out = np.zeros((index.size, size, size), dtype=np.uint8)
    if index.size == 0 or box is None:
        return out, info
    if resampled == (h, w):
        _paste(torch.from_numpy(labels[index]), torch.from_numpy(out), (-start[0], -start[1]))
    elif resampled[0] >= h and resampled[1] >= w:
        _upsample_box_into_window(labels[index], box, info, out)
    else:  # shrinking: anti-aliased interpolation of the whole slice
        src = _resample_probs(one_hot(torch.from_numpy(np.ascontiguousarray(labels[index]))), resampled)
        _paste(torch.from_numpy(_argmax(src)), torch.from_numpy(out), (-start[0], -start[1]))
    return out, info


def _argmax(probs: torch.Tensor) -> np.ndarray:
    """Channel argmax [n, C, h, w] -> uint8 [n, h, w] (numpy's is several times faster than torch's here)."""
    return np.argmax(probs.detach().cpu().numpy(), axis=1).astype(np.uint8)


def _source_coords(dst: np.ndarray, offset: float, ratio: float) -> np.ndarray:
    """Continuous source coordinate of destination pixels ``dst + offset`` (half-pixel convention).

    ``ratio`` is source size / destination size, as in ``F.interpolate(..., align_corners=False)``.
    """
    return (dst + offset + 0.5) * ratio - 0.5


def _bilinear(values: torch.Tensor, ys: np.ndarray, xs: np.ndarray) -> torch.Tensor:
    """Bilinear samples of ``values`` [n, C, h, w] at source rows ``ys`` x columns ``xs`` (edge-clamped)."""
    n, _, h, w = values.shape
    gy = torch.as_tensor((2.0 * ys + 1.0) / h - 1.0, dtype=values.dtype, device=values.device)
    gx = torch.as_tensor((2.0 * xs + 1.0) / w - 1.0, dtype=values.dtype, device=values.device)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # [rows, cols, (x, y)]
    grid = grid.unsqueeze(0).expand(n, -1, -1, -1)
    return F.grid_sample(values, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _index_range(lo: float, hi: float, limit: int) -> tuple[int, int]:
    """Integer range [a, b) of indices i with lo <= i <= hi, clipped to [0, limit)."""
    return max(0, int(np.ceil(lo))), min(limit, int(np.floor(hi)) + 1)


def _upsample_box_into_window(
    labels: np.ndarray, box: tuple[int, int, int, int], info: PreprocessInfo, out: np.ndarray
) -> None:
    """Fast path when the target grid is at least as fine as the input: only window pixels whose source
    lies in the foreground box (plus a background margin) are interpolated; all others are background.
    Gives the same labels as interpolating the whole slice."""
    margin = 2
    (h, w), (rh, rw), (sy, sx) = info.shape[1:], info.resampled_yx, info.window_start_yx
    y0, y1 = max(0, box[0] - margin), min(h, box[1] + 1 + margin)
    x0, x1 = max(0, box[2] - margin), min(w, box[3] + 1 + margin)
    # window rows i whose source row (i + sy + 0.5) * h / rh - 0.5 falls inside [y0, y1 - 1]
    i0, i1 = _index_range((y0 + 0.5) * rh / h - 0.5 - sy, (y1 - 0.5) * rh / h - 0.5 - sy, info.size)
    j0, j1 = _index_range((x0 + 0.5) * rw / w - 0.5 - sx, (x1 - 0.5) * rw / w - 0.5 - sx, info.size)
    i0, i1 = max(i0, -sy), min(i1, rh - sy)  # stay inside the resampled grid
    j0, j1 = max(j0, -sx), min(j1, rw - sx)
    if i1 <= i0 or j1 <= j0:
        return
    crop = one_hot(torch.from_numpy(np.ascontiguousarray(labels[:, y0:y1, x0:x1])))
    ys = _source_coords(np.arange(i0, i1), sy, h / rh) - y0
    xs = _source_coords(np.arange(j0, j1), sx, w / rw) - x0
    out[:, i0:i1, j0:j1] = _argmax(_bilinear(crop, ys, xs))


def from_model_space(
    probs: np.ndarray | torch.Tensor, info: PreprocessInfo, *, fast: bool = True
) -> np.ndarray:
    """Map model-space class probabilities (or one-hot) back to labels in the input's exact shape.

    Args:
        probs: float [n, 4, size, size], one row per ``info.slice_index`` entry (softmax output).
        info: returned by ``to_model_space`` for the same volume.
        fast: interpolate only around the foreground with plain bilinear weights; False interpolates
            whole slices (anti-aliased when shrinking), the reference the fast path is tested against.
    Returns: uint8 [z, y, x] canonical labels; slices not in ``info.slice_index`` are background.
    """
    p = torch.as_tensor(probs)
    n = p.shape[0]
    if n != info.slice_index.size:
        raise ValueError(f"expected {info.slice_index.size} slices, got {n}")
    z, h, w = info.shape
    out = np.zeros((z, h, w), dtype=np.uint8)
    if n == 0:
        return out
    if info.resampled_yx == (h, w) or not fast:
        return _from_model_space_full(p, info, out)
    # Only native pixels near the pGT foreground are interpolated. A foreground arg-max needs a background
    # probability below 0.5, and bilinear weights are convex, so pixels whose four neighbours all have
    # p(background) >= 0.5 ... stay background: the box of {p0 < 0.5} plus one pixel bounds the foreground.
    candidate = np.any(p[:, 0].detach().cpu().numpy() < 0.5, axis=0)
    rows = np.flatnonzero(candidate.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(candidate.any(axis=0))
    a0, a1 = int(rows[0]) - 1, int(rows[-1]) + 1
    b0, b1 = int(cols[0]) - 1, int(cols[-1]) + 1
    (rh, rw), (sy, sx) = info.resampled_yx, info.window_start_yx
    # native rows y whose window coordinate (y + 0.5) * rh / h - 0.5 - sy falls inside [a0, a1]
    y0, y1 = _index_range((a0 + sy + 0.5) * h / rh - 0.5, (a1 + sy + 0.5) * h / rh - 0.5, h)
    x0, x1 = _index_range((b0 + sx + 0.5) * w / rw - 0.5, (b1 + sx + 0.5) * w / rw - 0.5, w)
    if y1 <= y0 or x1 <= x0:
        return out
    ys = _source_coords(np.arange(y0, y1), 0, rh / h) - sy
    xs = _source_coords(np.arange(x0, x1), 0, rw / w) - sx
    region = out[info.slice_index]
    region[:, y0:y1, x0:x1] = _argmax(_bilinear(p.float(), ys, xs))
    out[info.slice_index] = region
    return out


def _from_model_space_full(p: torch.Tensor, info: PreprocessInfo, out: np.ndarray) -> np.ndarray:
    """Reference inverse: paste into the full resampled grid and interpolate every pixel."""
    h, w = info.shape[1:]
    n, c = p.shape[:2]
    canvas = torch.zeros((n, c, *info.resampled_yx), dtype=p.dtype, device=p.device)
    canvas[:, 0] = 1.0  # outside the window: background
    _paste(p, canvas, info.window_start_yx)
    back = _resample_probs(canvas, (h, w)) if info.resampled_yx != (h, w) else canvas
    out[info.slice_index] = _argmax(back)
    return out
