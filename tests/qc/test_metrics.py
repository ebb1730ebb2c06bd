"""Dice and Hausdorff against analytic values, at anisotropic spacing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from monitor.qc.metrics import boundary, dice, hausdorff_mm, inconsistency_map, volume_ml

SPACING = (10.0, 1.5, 1.25)  # (dz, dy, dx) mm


def _box(shape, z, y, x):
    mask = np.zeros(shape, dtype=bool)
    mask[z[0] : z[1], y[0] : y[1], x[0] : x[1]] = True
    return mask


def _cylinder(shape, radius_mm, spacing, z=(2, 8)):
    _, ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    disc = ((yy - cy) * spacing[1]) ** 2 + ((xx - cx) * spacing[2]) ** 2 <= radius_mm**2
    mask = np.zeros(shape, dtype=bool)
    mask[z[0] : z[1]] = disc
    return mask


def test_dice_of_overlapping_boxes_is_analytic():
    a = _box((4, 20, 20), (0, 4), (0, 10), (0, 10))  # 400 voxels
    b = _box((4, 20, 20), (0, 4), (0, 10), (5, 15))  # 400 voxels, overlap 200
    assert dice(a, b) == pytest.approx(2 * 200 / 800)


@pytest.mark.parametrize(
    ("a_empty", "b_empty", "expected"),
    [(True, True, math.nan), (True, False, 0.0), (False, True, 0.0)],
    ids=["both-empty", "pred-empty", "ref-empty"],
)
def test_dice_empty_masks(a_empty, b_empty, expected):
    full = _box((2, 5, 5), (0, 2), (0, 5), (0, 5))
    empty = np.zeros_like(full)
    value = dice(empty if a_empty else full, empty if b_empty else full)
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


@pytest.mark.parametrize("shift", [1, 3, 6])
def test_hausdorff_of_shifted_boxes_is_shift_times_spacing(shift):
    shape = (6, 40, 40)
    a = _box(shape, (1, 5), (10, 30), (10, 25))
    b = _box(shape, (1, 5), (10, 30), (10 + shift, 25 + shift))
    assert hausdorff_mm(a, b, SPACING) == pytest.approx(shift * SPACING[2])
    # shifts along y and z use their own spacing
    c = _box(shape, (1, 5), (10 + shift, 30 + shift), (10, 25))
    assert hausdorff_mm(a, c, SPACING) == pytest.approx(shift * SPACING[1])


def test_hausdorff_extra_slice_is_slice_thickness():
    shape = (8, 30, 30)
    a = _box(shape, (2, 5), (5, 25), (5, 25))
    b = _box(shape, (2, 6), (5, 25), (5, 25))
    assert hausdorff_mm(a, b, SPACING) == pytest.approx(SPACING[0])


@pytest.mark.parametrize(("r1", "r2"), [(20.0, 25.0), (15.0, 30.0)])
def test_hausdorff_of_concentric_cylinders_is_radius_difference(r1, r2):
    spacing = (8.0, 1.25, 1.25)
    shape = (10, 64, 64)
    a = _cylinder(shape, r1, spacing)
    b = _cylinder(shape, r2, spacing)
    # discretisation error is at most one in-plane voxel diagonal
    assert hausdorff_mm(a, b, spacing) == pytest.approx(r2 - r1, abs=math.hypot(1.25, 1.25))


def test_hausdorff_identical_masks_is_zero_and_symmetric():
    a = _cylinder((10, 50, 50), 12.0, SPACING)
    b = _box((10, 50, 50), (3, 6), (5, 20), (30, 45))
    assert hausdorff_mm(a, a, SPACING) == 0.0
    assert hausdorff_mm(a, b, SPACING) == pytest.approx(hausdorff_mm(b, a, SPACING))


def test_hausdorff_empty_is_nan_and_shape_mismatch_raises():
    a = _box((3, 10, 10), (0, 3), (2, 5), (2, 5))
    assert math.isnan(hausdorff_mm(a, np.zeros_like(a), SPACING))
    with pytest.raises(ValueError, match="same shape"):
        hausdorff_mm(a, a[:, :5], SPACING)
    with pytest.raises(ValueError, match="spacing"):
        hausdorff_mm(a, a, (1.0, 1.0))


def test_hausdorff_matches_brute_force_on_random_blobs():
    rng = np.random.default_rng(3)
    a = rng.random((4, 16, 16)) > 0.7
    b = rng.random((4, 16, 16)) > 0.6
    pa = np.argwhere(boundary(a)) * np.array(SPACING)
    pb = np.argwhere(boundary(b)) * np.array(SPACING)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    expected = max(d.min(axis=1).max(), d.min(axis=0).max())
    assert hausdorff_mm(a, b, SPACING) == pytest.approx(expected)


def _brute_force_hd(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    structure = ndimage.generate_binary_structure(a.ndim, 1)
    pa = np.argwhere(a & ~ndimage.binary_erosion(a, structure)) * np.array(spacing)
    pb = np.argwhere(b & ~ndimage.binary_erosion(b, structure)) * np.array(spacing)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return float(max(d.min(axis=1).max(), d.min(axis=0).max()))


@pytest.mark.parametrize(
    "edit",
    ["dilate_1", "shift_1", "shift_4", "speck_far", "speck_near"],
)
@pytest.mark.parametrize("spacing", [SPACING, (5.0, 0.7, 2.5)], ids=["10x1.5x1.25", "5x0.7x2.5"])
def test_hausdorff_equals_brute_force_near_and_far(edit, spacing):
    """Points near the other boundary are queried only when the rest are nearer still: exact anyway,
    whether the distance is under that reach (a 1-px edit) or over it (a shift, a far speck)."""
    a = _cylinder((8, 40, 40), 9.0, spacing, z=(1, 7))
    b = {
        "dilate_1": lambda: ndimage.binary_dilation(a, ndimage.generate_binary_structure(3, 1)),
        "shift_1": lambda: np.roll(a, 1, axis=2),
        "shift_4": lambda: np.roll(a, 4, axis=1),
        "speck_far": lambda: a | _box(a.shape, (3, 4), (36, 38), (1, 3)),
        "speck_near": lambda: a | _box(a.shape, (7, 8), (19, 21), (19, 21)),
    }[edit]()
    assert hausdorff_mm(a, b, spacing) == pytest.approx(_brute_force_hd(a, b, spacing), rel=1e-12)


def test_boundary_counts_array_border_voxels():
    full = np.ones((3, 5, 5), dtype=bool)
    edge = boundary(full)
    # only the 1x3x3 core is interior: every other voxel touches the array border
    assert edge.sum() == full.size - 9
    assert not edge[1, 1:4, 1:4].any()


def test_inconsistency_map_and_volume():
    a = np.array([[[0, 1, 2, 3]]], dtype=np.uint8)
    b = np.array([[[0, 1, 3, 3]]], dtype=np.uint8)
    assert inconsistency_map(a, b).tolist() == [[[False, False, True, False]]]
    assert volume_ml(np.ones((2, 10, 10), bool), (10.0, 1.0, 1.0)) == pytest.approx(2.0)
