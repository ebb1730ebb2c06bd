"""Tests of the failure families: each edit changes what it should, and nothing else, on phantoms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from monitor.sim import make_phantom
from monitor.sim.failures import (
    FAMILIES,
    NotApplicable,
    apply_failure,
    attached_leak,
    broken_myocardium,
    clearly_wrong,
    displaced_slice,
    extra_apical_slices,
    extra_basal_slices,
    far_component,
    heart_slices_base_to_apex,
    lv_holes,
    missing_apical_slices,
    missing_basal_slices,
    missing_rv,
    rv_short,
    set_name,
    stray_in_empty_slice,
    stray_in_heart_slice,
    swapped_slices,
    uniform_dilation,
    uniform_erosion,
)
from tests.sim._helpers import LV, MYO, RV, occupied_slices, rng

SPACING = (10.0, 1.5, 1.5)


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    """An ED phantom with its base at slice 2 and its apex before the last slice (room at both ends)."""
    return make_phantom(rng(11), n_slices=12, base_slice=1.3, apex_slice=8.6, spacing_mm=SPACING).labels


@pytest.fixture(scope="module")
def full_stack() -> np.ndarray:
    """An ED phantom whose heart fills every slice."""
    return make_phantom(rng(5), n_slices=10, base_slice=-0.3, apex_slice=9.6, spacing_mm=SPACING).labels


def rings(radius_px: int, wall_px: int, n_slices: int = 5, size: int = 96) -> np.ndarray:
    """Concentric discs on every slice: LV of ``radius_px``, MYO out to ``radius_px + wall_px``."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    plane = np.where(r <= radius_px, LV, np.where(r <= radius_px + wall_px, MYO, 0)).astype(np.uint8)
    return np.repeat(plane[None], n_slices, axis=0)


def changed_slices(before: np.ndarray, after: np.ndarray) -> list[int]:
    return [int(z) for z in np.flatnonzero((before != after).any(axis=(1, 2)))]


# ------------------------------------------------------------------------------------- base and apex


def test_base_is_the_end_with_more_lv_and_myo(phantom: np.ndarray) -> None:
    order = heart_slices_base_to_apex(phantom)
    assert list(order) == list(occupied_slices(phantom))
    assert list(heart_slices_base_to_apex(phantom[::-1])) == [phantom.shape[0] - 1 - z for z in order]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_missing_basal_removes_exactly_the_top_n_slices(phantom: np.ndarray, n: int) -> None:
    out = missing_basal_slices(phantom, n)
    base = list(occupied_slices(phantom)[:n])
    assert changed_slices(phantom, out) == base
    assert not out[base].any()
    flipped = missing_basal_slices(phantom[::-1], n)
    assert changed_slices(phantom[::-1], flipped) == sorted(phantom.shape[0] - 1 - z for z in base)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_missing_apical_removes_exactly_the_last_n_slices(phantom: np.ndarray, n: int) -> None:
    out = missing_apical_slices(phantom, n)
    apex = list(occupied_slices(phantom)[-n:])
    assert changed_slices(phantom, out) == apex
    assert not out[apex].any()


def test_rv_short_and_missing_rv_touch_only_the_rv(phantom: np.ndarray) -> None:
    rv_slices = [z for z in occupied_slices(phantom) if (phantom[z] == RV).any()]
    out = rv_short(phantom, 2)
    assert changed_slices(phantom, out) == rv_slices[-2:]
    assert np.array_equal(out == LV, phantom == LV) and np.array_equal(out == MYO, phantom == MYO)
    assert not (out[rv_slices[-2:]] == RV).any()
    gone = missing_rv(phantom)
    assert not (gone == RV).any() and np.array_equal(gone == LV, phantom == LV)
    with pytest.raises(NotApplicable):
        missing_rv(gone)
    with pytest.raises(NotApplicable):
        rv_short(phantom, len(rv_slices))


def test_extra_basal_slices_are_the_basal_lv_cavity(phantom: np.ndarray) -> None:
    base = int(occupied_slices(phantom)[0])
    assert base == 2
    out = extra_basal_slices(phantom, 2)
    assert changed_slices(phantom, out) == [0, 1]
    for z in (0, 1):
        assert np.array_equal(out[z] == LV, phantom[base] == LV) and set(np.unique(out[z])) == {0, LV}
    with pytest.raises(NotApplicable, match="no room for 3"):
        extra_basal_slices(phantom, 3)


def test_extra_apical_slices_repeat_the_apex(phantom: np.ndarray, full_stack: np.ndarray) -> None:
    apex = int(occupied_slices(phantom)[-1])
    room = phantom.shape[0] - 1 - apex
    out = extra_apical_slices(phantom, room)
    assert changed_slices(phantom, out) == list(range(apex + 1, phantom.shape[0]))
    assert all(np.array_equal(out[z], phantom[apex]) for z in range(apex + 1, phantom.shape[0]))
    with pytest.raises(NotApplicable):
        extra_apical_slices(full_stack, 1)
    with pytest.raises(NotApplicable):
        extra_basal_slices(full_stack, 1)


# ------------------------------------------------------------------------------------ in-plane families


@pytest.mark.parametrize("shift_mm", [5.0, 10.0, 15.0])
def test_displaced_slice_moves_one_slice_by_the_shift(phantom: np.ndarray, shift_mm: float) -> None:
    out = displaced_slice(phantom, SPACING, rng(1), shift_mm)
    (z,) = changed_slices(phantom, out)
    assert np.count_nonzero(out[z]) == np.count_nonzero(phantom[z])  # nothing left the field of view
    moved = np.subtract(ndimage.center_of_mass(out[z] > 0), ndimage.center_of_mass(phantom[z] > 0))
    assert np.hypot(*moved) * SPACING[1] == pytest.approx(shift_mm, abs=SPACING[1])
    heart = occupied_slices(phantom)
    assert heart[len(heart) // 3] <= z <= heart[(2 * len(heart)) // 3]


@pytest.mark.parametrize("n", [1, 2])
def test_swapped_slices_exchange_rv_and_lv(phantom: np.ndarray, n: int) -> None:
    out = swapped_slices(phantom, rng(2), n)
    changed = changed_slices(phantom, out)
    assert len(changed) == n and changed == list(range(changed[0], changed[0] + n))
    for z in changed:
        assert np.array_equal(out[z] == LV, phantom[z] == RV) and np.array_equal(
            out[z] == RV, phantom[z] == LV
        )
        assert np.array_equal(out[z] == MYO, phantom[z] == MYO)


def _lv_touches_background(plane: np.ndarray) -> bool:
    return bool((ndimage.binary_dilation(plane == LV) & (plane == 0)).any())


@pytest.mark.parametrize("gap_px", [2, 4, 8])
def test_broken_myocardium_opens_the_ring(phantom: np.ndarray, gap_px: int) -> None:
    out = broken_myocardium(phantom, rng(3), gap_px)
    (z,) = changed_slices(phantom, out)
    removed = (phantom[z] == MYO) & (out[z] == 0)
    assert np.array_equal(phantom[z] != out[z], removed)  # only myocardium, only to background
    assert not _lv_touches_background(phantom[z]) and _lv_touches_background(out[z])
    wall_px = 9.0 / SPACING[1]  # the phantom's wall is 6-11 mm
    assert 0.3 * gap_px * wall_px < removed.sum() < 3 * gap_px * wall_px


def equivalent_radius(pixels: np.ndarray) -> np.ndarray:
    """Radius (px) of the disc with the same area."""
    return np.sqrt(pixels / math.pi)


@pytest.mark.parametrize("px", [1, 2, 3])
def test_uniform_dilation_moves_every_contour_out_by_px(px: int) -> None:
    labels = rings(radius_px=14, wall_px=7)
    out = uniform_dilation(labels, px)
    before = np.count_nonzero(labels == LV, axis=(1, 2))
    after = np.count_nonzero(out == LV, axis=(1, 2))
    radius = equivalent_radius(before)
    # the analytic shell pi ((r + px)^2 - r^2), to half a pixel of radius (digitisation)
    assert (after - before > math.pi * ((radius + px - 0.5) ** 2 - radius**2)).all()
    assert (after - before < math.pi * ((radius + px + 0.5) ** 2 - radius**2)).all()
    heart = equivalent_radius(np.count_nonzero(out, axis=(1, 2)))
    assert np.allclose(heart - equivalent_radius(np.count_nonzero(labels, axis=(1, 2))), px, atol=0.5)
    myo = np.count_nonzero(out == MYO, axis=(1, 2))
    assert np.array_equal(myo, np.count_nonzero(out, axis=(1, 2)) - after)  # no label but LV and MYO
    volume_ml = (after - before).sum() * math.prod(SPACING) / 1000
    assert volume_ml == pytest.approx(
        5 * math.pi * ((radius[0] + px) ** 2 - radius[0] ** 2) * 2.25e-2, rel=0.2
    )


@pytest.mark.parametrize("px", [1, 2, 3])
def test_uniform_erosion_moves_every_contour_in_by_px(px: int) -> None:
    labels = rings(radius_px=14, wall_px=7)
    out = uniform_erosion(labels, px)
    lv_in = equivalent_radius(np.count_nonzero(labels == LV, axis=(1, 2)))
    assert np.allclose(lv_in - equivalent_radius(np.count_nonzero(out == LV, axis=(1, 2))), px, atol=0.5)
    heart_in = equivalent_radius(np.count_nonzero(labels, axis=(1, 2)))
    assert np.allclose(heart_in - equivalent_radius(np.count_nonzero(out, axis=(1, 2))), px, atol=0.5)


def test_uniform_dilation_of_a_phantom_adds_about_perimeter_times_depth(phantom: np.ndarray) -> None:
    out = uniform_dilation(phantom, 2)
    for z in occupied_slices(phantom):
        lv = phantom[z] == LV
        if lv.sum() < 200:
            continue
        perimeter = np.count_nonzero(lv & ~ndimage.binary_erosion(lv))
        gained = np.count_nonzero(out[z] == LV) - lv.sum()
        assert 0.8 * 2 * perimeter < gained < 1.4 * 2 * perimeter + 4 * math.pi
    assert (np.count_nonzero(out, axis=(1, 2)) >= np.count_nonzero(phantom, axis=(1, 2))).all()


@pytest.mark.parametrize("radius_mm", [2.0, 4.0])
def test_lv_holes_are_enclosed_background_in_the_cavity(phantom: np.ndarray, radius_mm: float) -> None:
    out = lv_holes(phantom, SPACING, rng(4), radius_mm, n_holes=3)
    changed = changed_slices(phantom, out)
    assert len(changed) == 3
    for z in changed:
        cleared = (phantom[z] == LV) & (out[z] == 0)
        assert np.array_equal(phantom[z] != out[z], cleared)
        assert cleared.sum() == pytest.approx(math.pi * (radius_mm / SPACING[1]) ** 2, rel=0.35)
        filled = ndimage.binary_fill_holes(out[z] > 0)
        assert filled[cleared].all()  # each hole is enclosed by the heart


# ---------------------------------------------------------------------------------- component families


def _new_component(before: np.ndarray, after: np.ndarray) -> tuple[int, np.ndarray]:
    (z,) = changed_slices(before, after)
    added = (after[z] > 0) & (before[z] == 0)
    assert ndimage.label(added)[1] == 1
    return z, added


@pytest.mark.parametrize("radius_mm", [3.0, 6.0, 10.0])
def test_stray_in_heart_slice_is_a_separate_blob_15_to_35_mm_away(
    phantom: np.ndarray, radius_mm: float
) -> None:
    out = stray_in_heart_slice(phantom, SPACING, rng(5), radius_mm)
    z, blob = _new_component(phantom, out)
    assert phantom[z].any() and set(np.unique(out[z][blob])) == {LV}
    gap_mm = ndimage.distance_transform_edt(phantom[z] == 0, sampling=SPACING[1:])[blob]
    assert gap_mm.min() >= 15.0 - SPACING[1] and gap_mm.max() <= 35.0 + 2 * radius_mm + SPACING[1]
    assert blob.sum() == pytest.approx(math.pi * (radius_mm / SPACING[1]) ** 2, rel=0.3)


def test_stray_in_empty_slice_lands_on_a_slice_without_heart(
    phantom: np.ndarray, full_stack: np.ndarray
) -> None:
    out = stray_in_empty_slice(phantom, SPACING, rng(6), 6.0)
    z, blob = _new_component(phantom, out)
    assert not phantom[z].any()
    footprint_gap = ndimage.distance_transform_edt(~phantom.any(axis=0), sampling=SPACING[1:])
    assert footprint_gap[blob].min() <= 30.0
    with pytest.raises(NotApplicable, match="every slice"):
        stray_in_empty_slice(full_stack, SPACING, rng(6), 6.0)


@pytest.mark.parametrize("radius_mm", [3.0, 10.0])
def test_far_component_is_at_least_60_mm_from_the_heart(phantom: np.ndarray, radius_mm: float) -> None:
    out = far_component(phantom, SPACING, rng(7), radius_mm)
    _, blob = _new_component(phantom, out)
    gap_mm = ndimage.distance_transform_edt(~phantom.any(axis=0), sampling=SPACING[1:])
    assert gap_mm[blob].min() >= 60.0 - SPACING[1]


@pytest.mark.parametrize("seed", [8, 9, 10])
def test_attached_leak_grows_out_of_the_structure_it_touches(phantom: np.ndarray, seed: int) -> None:
    out = attached_leak(phantom, SPACING, rng(seed), 10.0)
    changed = changed_slices(phantom, out)
    assert 1 <= len(changed) <= 3 and changed == list(range(changed[0], changed[0] + len(changed)))
    middle = changed[len(changed) // 2]
    added = out[middle] != phantom[middle]
    (value,) = set(np.unique(out[middle][added]))
    assert value in (RV, MYO) and (phantom[middle][added] == 0).all()
    assert (ndimage.binary_dilation(added) & (phantom[middle] == value)).any()
    for z in changed:
        assert set(np.unique(out[z][out[z] != phantom[z]])) == {value}


# -------------------------------------------------------------------------------------------- registry


def test_every_family_edits_a_copy_deterministically(phantom: np.ndarray) -> None:
    frozen = phantom.copy()
    for name, family in FAMILIES.items():
        for strength in family.strengths:
            try:
                first = apply_failure(phantom, SPACING, name, strength, rng(9))
            except NotApplicable:
                pytest.fail(f"{set_name(name, strength)} not applicable on a phantom with room")
            again = apply_failure(phantom, SPACING, name, strength, rng(9))
            assert first.dtype == np.uint8 and first.shape == phantom.shape
            assert np.array_equal(first, again), name
            assert not np.array_equal(first, phantom), set_name(name, strength)
    assert np.array_equal(phantom, frozen)
    with pytest.raises(KeyError, match="unknown failure family"):
        apply_failure(phantom, SPACING, "nonsense", 1, rng(0))


def test_the_clearly_wrong_subset_is_the_issues() -> None:
    wrong = {set_name(n, s) for n, f in FAMILIES.items() for s in f.strengths if clearly_wrong(n, s)}
    assert {"missing_basal-2", "missing_basal-3", "swapped_slices-1", "broken_myocardium-2"} <= wrong
    assert {"stray_heart_slice-3", "stray_empty_slice-3", "far_component-3", "displaced_slice-10"} <= wrong
    assert {"uniform_dilation-2", "uniform_erosion-2"} <= wrong
    assert not {"missing_basal-1", "uniform_dilation-1", "lv_holes-6", "missing_apical-3"} & wrong
    assert not clearly_wrong("uniform_dilation", 2, image=False)
    assert clearly_wrong("swapped_slices", 1, image=False)
