"""Tests of ``monitor.sim.corruptions``: each edit changes what it says and nothing else."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from monitor.qc.labels import Structure
from monitor.qc.metrics import dice
from monitor.sim import (
    add_spurious_blobs,
    dilate_structure,
    drop_slices,
    erode_structure,
    perturb_boundaries,
    punch_holes,
    remove_structure,
    swap_labels,
)
from tests.sim._helpers import LV, MYO, RV, occupied_slices, rng


def test_remove_structure_removes_only_it(ed_phantom):
    labels = ed_phantom.labels
    for structure, value in ((Structure.LV, LV), ("rv", RV), ("MYO", MYO)):
        out = remove_structure(labels, structure)
        assert not (out == value).any()
        np.testing.assert_array_equal(out[labels != value], labels[labels != value])
    with pytest.raises(ValueError, match="unknown structure"):
        remove_structure(labels, "LA")


def test_erode_and_dilate_change_one_structure_by_k_voxels(ed_phantom):
    labels = ed_phantom.labels
    n_lv = np.count_nonzero(labels == LV)
    eroded = erode_structure(labels, "LV", 2)
    assert np.count_nonzero(eroded == LV) < n_lv
    assert set(np.unique(eroded[(labels == LV) & (eroded != LV)])) == {MYO}  # rim handed to the wall
    np.testing.assert_array_equal(eroded[labels != LV], labels[labels != LV])
    dilated = dilate_structure(labels, "RV", 2)
    assert np.count_nonzero(dilated == RV) > np.count_nonzero(labels == RV)
    assert ((labels == RV) <= (dilated == RV)).all()
    grown = ndimage.binary_dilation(labels == RV, structure=np.ones((1, 3, 3), bool), iterations=2)
    assert ((dilated == RV) <= grown).all()  # never beyond 2 voxels in-plane
    np.testing.assert_array_equal(erode_structure(labels, "LV", 0), labels)


def test_holes_blobs_slices_and_swaps(ed_phantom):
    labels, spacing = ed_phantom.labels, ed_phantom.spacing_mm
    holed = punch_holes(labels, rng(0), spacing, structure="LV", n_holes=3, radius_mm=4.0)
    lost = (labels == LV) & (holed == 0)
    assert 0 < np.count_nonzero(lost) <= 3 * math.pi * 4.0**2 / (spacing[1] * spacing[2]) + 30
    assert (holed[~lost] == labels[~lost]).all()

    blobs = add_spurious_blobs(labels, rng(0), spacing, n_blobs=3, radius_mm=5.0, min_distance_mm=40.0)
    new = blobs != labels
    assert new.any() and (labels[new] == 0).all()
    heart = labels.any(axis=0)
    distance = ndimage.distance_transform_edt(~heart, sampling=spacing[1:])
    centres = ndimage.center_of_mass(new.any(axis=0), ndimage.label(new.any(axis=0))[0], [1])
    assert all(distance[round(y), round(x)] >= 35.0 for y, x in centres)

    occupied = occupied_slices(labels)
    dropped = drop_slices(labels, occupied[:2], "RV")
    assert not (dropped[occupied[:2]] == RV).any() and (dropped[occupied[:2]] == LV).any()
    np.testing.assert_array_equal(drop_slices(labels, [occupied[0]])[occupied[0]], 0)

    swapped = swap_labels(labels, "LV", "RV", slices=[occupied[2]])
    z = occupied[2]
    np.testing.assert_array_equal(swapped[z] == RV, labels[z] == LV)
    np.testing.assert_array_equal(swapped[z] == LV, labels[z] == RV)
    np.testing.assert_array_equal(np.delete(swapped, z, axis=0), np.delete(labels, z, axis=0))


def test_boundary_noise_is_graded_and_pure(ed_phantom):
    labels, spacing = ed_phantom.labels, ed_phantom.spacing_mm
    before = labels.copy()
    np.testing.assert_array_equal(perturb_boundaries(labels, rng(0), spacing, amplitude_mm=0.0), labels)
    scores = []
    for amplitude in (0.8, 2.0, 4.0):
        out = perturb_boundaries(labels, rng(0), spacing, amplitude_mm=amplitude)
        scores.append(dice(out == MYO, labels == MYO))
    assert 0.99 > scores[0] > scores[1] > scores[2] > 0.3
    np.testing.assert_array_equal(labels, before)  # input untouched
