"""Slice viewer helpers: resolve file paths inside the configured folders, find the MR image, render slices.

Paths come from the database (mask, artifacts, image) and are only opened when they resolve, symbolic
links followed, to a file inside one of the configured folders (``artifacts_dir`` and
``dashboard_data_dirs``); anything else is refused, so a crafted row cannot make the dashboard read
arbitrary files. Rendering is pure numpy: a grey MR slice (or black) with the labels or the
inconsistency map blended on top, as an RGB uint8 array for ``st.image``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from monitor.io.layouts import image_candidates

__all__ = [
    "INCONSISTENCY_RGB",
    "LABEL_RGB",
    "busiest_slice",
    "image_candidates",
    "render_slice",
    "resolve_inside",
]

#: Colour of each canonical label (1 RV, 2 MYO, 3 LV) in the overlays.
LABEL_RGB: dict[int, tuple[int, int, int]] = {1: (52, 120, 246), 2: (46, 204, 64), 3: (240, 60, 60)}
#: Colour of voxels where mask and pseudo ground truth disagree.
INCONSISTENCY_RGB: tuple[int, int, int] = (255, 214, 0)


def resolve_inside(raw: str | Path | None, roots: Iterable[Path]) -> Path | None:
    """The existing file ``raw`` names, if it lies inside one of ``roots``; otherwise None.

    A relative ``raw`` is tried against each root in turn. Symbolic links are resolved before the check,
    so a link inside a root that points outside is refused.

    Args:
        raw: path from the database (absolute or relative); None or empty gives None.
        roots: the configured folders.
    Returns: the resolved path of a regular file inside a root, or None.
    """
    if raw is None or not str(raw).strip() or "\x00" in str(raw):
        return None
    resolved_roots = [Path(root).expanduser().resolve() for root in roots]
    path = Path(raw).expanduser()
    candidates = [path] if path.is_absolute() else [root / path for root in resolved_roots]
    for candidate in candidates:
        try:
            target = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if target.is_file() and any(target.is_relative_to(root) for root in resolved_roots):
            return target
    return None


def busiest_slice(*volumes: np.ndarray | None) -> int:
    """Index of the slice [z] with the most non-zero voxels in the first volume that has any; 0 if none.

    Args:
        volumes: arrays [z, y, x] (None entries are skipped), e.g. the inconsistency map, then the mask.
    """
    for volume in volumes:
        if volume is None:
            continue
        counts = np.count_nonzero(volume.reshape(volume.shape[0], -1), axis=1)
        if counts.any():
            return int(np.argmax(counts))
    return 0


def render_slice(
    image: np.ndarray | None,
    *,
    labels: np.ndarray | None = None,
    inconsistency: np.ndarray | None = None,
    spacing_yx_mm: Sequence[float] = (1.0, 1.0),
    alpha: float = 0.45,
    min_width_px: int = 320,
) -> np.ndarray:
    """One slice as RGB: grey MR image (or black), labels or the inconsistency map blended on top.

    Args:
        image: float [y, x] MR slice, or None for a black background.
        labels: canonical labels uint8 [y, x] (0 BG, 1 RV, 2 MYO, 3 LV), coloured with ``LABEL_RGB``.
        inconsistency: bool [y, x], coloured with ``INCONSISTENCY_RGB``.
        spacing_yx_mm: in-plane voxel size (dy, dx) in mm; pixels are repeated so the aspect is right.
        alpha: opacity of the overlay over an image (1 without an image).
        min_width_px: the slice is enlarged by whole-pixel repetition to at least this width.
    Returns: uint8 [H, W, 3].
    Raises: ValueError when no array is given or the shapes differ.
    """
    arrays = [a for a in (image, labels, inconsistency) if a is not None]
    if not arrays:
        raise ValueError("render_slice needs an image, labels or an inconsistency map")
    shape = arrays[0].shape
    if len(shape) != 2 or any(a.shape != shape for a in arrays):
        raise ValueError(f"slices must be 2D [y, x] of one shape, got {[a.shape for a in arrays]}")
    if image is not None:
        grey = _window(image)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        opacity = alpha
    else:
        rgb = np.zeros((*shape, 3), dtype=np.float32)
        opacity = 1.0
    if labels is not None:
        for value, colour in LABEL_RGB.items():
            where = labels == value
            rgb[where] = (1 - opacity) * rgb[where] + opacity * np.asarray(colour, dtype=np.float32)
    if inconsistency is not None:
        where = np.asarray(inconsistency, dtype=bool)
        strength = max(opacity, 0.75)
        rgb[where] = (1 - strength) * rgb[where] + strength * np.asarray(INCONSISTENCY_RGB, dtype=np.float32)
    out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return _enlarge(out, spacing_yx_mm, min_width_px)


def _window(image: np.ndarray) -> np.ndarray:
    """Grey levels 0-255 from the 1st to the 99th percentile of the slice."""
    values = np.asarray(image, dtype=np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.float32)
    low, high = np.percentile(finite, [1.0, 99.0])
    if high <= low:
        high = low + 1.0
    return np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0) * 255.0


def _enlarge(rgb: np.ndarray, spacing_yx_mm: Sequence[float], min_width_px: int) -> np.ndarray:
    """Repeat pixels so that width >= ``min_width_px`` and the pixel aspect follows the spacing."""
    dy, dx = (float(s) if s and s > 0 else 1.0 for s in spacing_yx_mm)
    base = max(1, int(np.ceil(min_width_px / max(rgb.shape[1], 1))))
    fy = max(1, round(base * dy / min(dy, dx)))
    fx = max(1, round(base * dx / min(dy, dx)))
    return np.repeat(np.repeat(rgb, fy, axis=0), fx, axis=1)
