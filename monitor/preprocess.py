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

from monitor.labels import N_CHANNELS

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

Spacing3 = tuple[float, float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessInfo:
    """What ``to_model_space`` did, so that its inverse can undo it."""

    shape: tuple[int, int, int]  #: input shape [z, y, x], voxels
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
    t = torch.as_tensor(labels).long()
    return F.one_hot(t, n_channels).permute(0, 3, 1, 2).to(torch.float32)


def _resample_probs(probs: torch.Tensor, size_yx: tuple[int, int]) -> torch.Tensor:
    """Interpolate class probabilities [n, C, h, w] to a new in-plane size (bilinear, anti-aliased when shrinking)."""
    h, w = probs.shape[-2:]
    if (h, w) == tuple(size_yx):
        return probs
    shrinking = size_yx[0] < h or size_yx[1] < w
    return F.interpolate(probs, size=size_yx, mode="bilinear", align_corners=False, antialias=shrinking)


def _window_start(
    labels: np.ndarray, scale_yx: tuple[float, float], resampled_yx: tuple[int, int], size: int
) -> tuple[int, int]:
    """Top-left corner of a ``size`` window centred on the foreground bounding box (resampled pixels)."""
    fg_y = np.flatnonzero(labels.any(axis=(0, 2)))
    fg_x = np.flatnonzero(labels.any(axis=(0, 1)))
    if fg_y.size == 0:
        centre_y, centre_x = resampled_yx[0] / 2.0, resampled_yx[1] / 2.0
    else:
        # bbox centre in input pixel coordinates -> resampled pixel coordinates (pixel-centre convention)
        cy = (fg_y[0] + fg_y[-1]) / 2.0
        cx = (fg_x[0] + fg_x[-1]) / 2.0
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
    start = _window_start(labels, scale, resampled, size)
    info = PreprocessInfo(
        shape=(z, h, w),
        spacing_mm=tuple(float(s) for s in spacing_mm),  # type: ignore[arg-type]
        resampled_yx=resampled,
        window_start_yx=start,
        slice_index=index.astype(np.int64),
        size=size,
    )
    out = torch.zeros((index.size, size, size), dtype=torch.uint8)
    if index.size:
        src = torch.from_numpy(np.ascontiguousarray(labels[index]))
        if resampled != (h, w):
            src = _resample_probs(one_hot(src), resampled).argmax(dim=1).to(torch.uint8)
        _paste(src, out, (-start[0], -start[1]))
    return out.numpy(), info


def from_model_space(probs: np.ndarray | torch.Tensor, info: PreprocessInfo) -> np.ndarray:
    """Map model-space class probabilities (or one-hot) back to labels in the input's exact shape.

    Args:
        probs: float [n, 4, size, size], one row per ``info.slice_index`` entry (softmax output).
        info: returned by ``to_model_space`` for the same volume.
    Returns: uint8 [z, y, x] canonical labels; slices not in ``info.slice_index`` are background.
    """
    p = torch.as_tensor(probs)
    n, c = p.shape[:2]
    if n != info.slice_index.size:
        raise ValueError(f"expected {info.slice_index.size} slices, got {n}")
    z, h, w = info.shape
    out = np.zeros((z, h, w), dtype=np.uint8)
    if n == 0:
        return out
    canvas = torch.zeros((n, c, *info.resampled_yx), dtype=p.dtype, device=p.device)
    canvas[:, 0] = 1.0  # outside the window: background
    _paste(p, canvas, info.window_start_yx)
    back = _resample_probs(canvas, (h, w)) if info.resampled_yx != (h, w) else canvas
    out[info.slice_index] = back.argmax(dim=1).to(torch.uint8).cpu().numpy()
    return out
