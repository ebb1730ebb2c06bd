"""In-plane morphology on [z, y, x] boolean stacks, slice by slice, with array shifts (fast on small boxes).

Nothing connects through z. ``grow`` and ``shrink`` use the square (chessboard) neighbourhood of
radius ``r`` pixels; ``grow_cross`` and ``shrink_cross`` take ``r`` steps of the 4-neighbour cross (a
diamond of radius ``r``, what ``scipy.ndimage`` does with the in-plane cross and ``iterations=r``);
outside the array counts as background. ``fill_holes`` and ``edge`` use 4-connectivity in-plane.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["edge", "fill_holes", "grow", "grow_cross", "shrink", "shrink_cross"]

_CROSS = np.zeros((3, 3, 3), dtype=bool)
_CROSS[1] = ndimage.generate_binary_structure(2, 1)


def _along(binary: np.ndarray, r: int, axis: int, grow_: bool) -> np.ndarray:
    out = binary.copy()
    n = binary.shape[axis]
    for i in range(1, min(r, n) + 1):
        head = [slice(None)] * 3
        tail = [slice(None)] * 3
        head[axis], tail[axis] = slice(i, None), slice(None, n - i)
        if grow_:
            out[tuple(head)] |= binary[tuple(tail)]
            out[tuple(tail)] |= binary[tuple(head)]
        else:
            out[tuple(head)] &= binary[tuple(tail)]
            out[tuple(tail)] &= binary[tuple(head)]
    if not grow_ and r > 0:
        edge_ = [slice(None)] * 3
        edge_[axis] = slice(0, min(r, n))
        out[tuple(edge_)] = False
        edge_[axis] = slice(max(n - r, 0), n)
        out[tuple(edge_)] = False
    return out


def grow(binary: np.ndarray, r: int) -> np.ndarray:
    """In-plane dilation by a (2r+1) x (2r+1) square; ``r`` = 0 returns a copy."""
    return _along(_along(binary, r, 1, True), r, 2, True)


def shrink(binary: np.ndarray, r: int) -> np.ndarray:
    """In-plane erosion by a (2r+1) x (2r+1) square (outside the array is background)."""
    return _along(_along(binary, r, 1, False), r, 2, False)


def _cross_step(binary: np.ndarray, grow_: bool) -> np.ndarray:
    """One step of the 4-neighbour cross: the union (or intersection) of the one-pixel steps along y
    and along x."""
    along_y, along_x = _along(binary, 1, 1, grow_), _along(binary, 1, 2, grow_)
    return along_y | along_x if grow_ else along_y & along_x


def grow_cross(binary: np.ndarray, r: int) -> np.ndarray:
    """In-plane dilation by ``r`` steps of the 4-neighbour cross; ``r`` = 0 returns a copy."""
    out = binary.copy()
    for _ in range(r):
        out = _cross_step(out, True)
    return out


def shrink_cross(binary: np.ndarray, r: int) -> np.ndarray:
    """In-plane erosion by ``r`` steps of the 4-neighbour cross (outside the array is background)."""
    out = binary.copy()
    for _ in range(r):
        out = _cross_step(out, False)
    return out


def edge(binary: np.ndarray) -> np.ndarray:
    """Pixels of ``binary`` with a 4-neighbour in-plane outside it (or on the array's in-plane border)."""
    inner = binary.copy()
    inner[:, 1:, :] &= binary[:, :-1, :]
    inner[:, :-1, :] &= binary[:, 1:, :]
    inner[:, :, 1:] &= binary[:, :, :-1]
    inner[:, :, :-1] &= binary[:, :, 1:]
    inner[:, (0, -1), :] = False
    inner[:, :, (0, -1)] = False
    return binary & ~inner


def fill_holes(binary: np.ndarray) -> np.ndarray:
    """Per-slice hole filling: background not 4-connected to its slice's border becomes foreground."""
    out = binary.copy()
    ys = np.flatnonzero(binary.any(axis=(0, 2)))
    xs = np.flatnonzero(binary.any(axis=(0, 1)))
    if ys.size == 0:
        return out
    # holes lie inside the foreground's box: work there, with a one-pixel rim of background around it
    box = (
        slice(None),
        slice(max(int(ys[0]) - 1, 0), int(ys[-1]) + 2),
        slice(max(int(xs[0]) - 1, 0), int(xs[-1]) + 2),
    )
    part = binary[box]
    background = ~part
    labels, n = ndimage.label(background, structure=_CROSS)
    outside = np.zeros(n + 1, dtype=bool)
    for rim in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        outside[rim] = True
    out[box] = part | ~outside[labels]
    return out
