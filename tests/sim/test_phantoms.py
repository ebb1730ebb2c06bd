"""Tests of ``monitor.sim.phantoms``: ACDC-like geometry, ES contraction, determinism, files."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from monitor.io.nifti import load_mask
from monitor.qc.labels import MNMS
from monitor.sim import (
    make_phantom,
    render_phantom,
    sample_geometry,
)
from tests.phantoms import phantom_volume, segmented_volume, write_phantom
from tests.sim._helpers import LV, MYO, RV, grow, mid_slice, occupied_slices, rng


def test_phantom_grid_spacing_and_affine_are_acdc_like(patients):
    for ed, es in patients:
        nz, ny, nx = ed.shape
        dz, dy, dx = ed.spacing_mm
        assert 6 <= nz <= 14
        assert 180 <= ny <= 262 and 180 <= nx <= 262
        assert 1.3 <= dy == dx <= 1.8 and 5.0 <= dz <= 10.0
        np.testing.assert_array_equal(ed.affine, np.diag([dx, dy, dz, 1.0]))
        assert ed.labels.dtype == np.uint8 and set(np.unique(ed.labels)) <= {0, 1, 2, 3}
        assert (es.shape, es.spacing_mm, es.geometry) == (ed.shape, ed.spacing_mm, ed.geometry)
        np.testing.assert_array_equal(es.affine, ed.affine)
        assert (ed.phase, es.phase) == ("ED", "ES")


def test_mid_slices_have_all_three_structures_and_a_closed_myocardium(patients):
    for ed, es in patients:
        for phantom in (ed, es):
            z = mid_slice(phantom.labels)
            s = phantom.labels[z]
            for value in (RV, MYO, LV):
                assert np.count_nonzero(s == value) > 50, (phantom.phase, z, value)
            # The LV cavity touches only myocardium: the ring is closed on mid slices.
            neighbours = set(np.unique(s[grow(s == LV) & (s != LV)]))
            assert neighbours == {MYO}


def test_lv_radius_and_wall_thickness_in_range(patients):
    for ed, _ in patients:
        z = mid_slice(ed.labels)
        area_mm2 = ed.spacing_mm[1] * ed.spacing_mm[2]
        r_lv = math.sqrt(np.count_nonzero(ed.labels[z] == LV) * area_mm2 / math.pi)
        r_epi = math.sqrt(np.count_nonzero(ed.labels[z] >= MYO) * area_mm2 / math.pi)
        assert 12.0 <= r_lv <= 34.0
        assert 5.0 <= r_epi - r_lv <= 14.0


def test_rv_hugs_the_septum_on_the_side_it_was_drawn(patients):
    for ed, _ in patients:
        z = mid_slice(ed.labels)
        s = ed.labels[z]
        rv, lv = s == RV, s == LV
        assert np.count_nonzero(grow(rv) & (s == MYO)) > 10  # RV cavity borders the myocardium
        assert not (grow(rv) & lv).any()  # ... and never the LV cavity
        (ry, rx), (ly, lx) = ndimage.center_of_mass(rv), ndimage.center_of_mass(lv)
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        g = ed.geometry
        expected = g.rv_angle_deg + g.rv_twist_deg * (z - g.base_slice) / (g.apex_slice - g.base_slice)
        assert abs((angle - expected + 180) % 360 - 180) < 45
        assert 90 <= angle % 360 <= 270  # septal side: towards -x, as in ACDC


def test_rv_tapers_towards_the_apex(patients):
    for ed, _ in patients:
        rv_area = (ed.labels == RV).sum(axis=(1, 2))
        occupied = occupied_slices(ed.labels)
        assert rv_area[occupied[-1]] < rv_area[occupied].max() / 2


def test_es_is_contracted(patients):
    for ed, es in patients:
        lv_ratio = np.count_nonzero(es.labels == LV) / np.count_nonzero(ed.labels == LV)
        assert 0.3 <= lv_ratio <= 0.75
        assert np.count_nonzero(es.labels == RV) < np.count_nonzero(ed.labels == RV)
        z = mid_slice(ed.labels)
        area = ed.spacing_mm[1] * ed.spacing_mm[2] / math.pi

        def wall_mm(labels: np.ndarray, z: int = z, area: float = area) -> float:
            return math.sqrt(np.count_nonzero(labels[z] >= MYO) * area) - math.sqrt(
                np.count_nonzero(labels[z] == LV) * area
            )

        assert wall_mm(es.labels) > wall_mm(ed.labels)


def test_phantoms_are_deterministic_per_seed():
    a, b, c = make_phantom(rng(7)), make_phantom(rng(7)), make_phantom(rng(8))
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.geometry == b.geometry
    assert a.shape != c.shape or not np.array_equal(a.labels, c.labels)


def test_geometry_overrides_and_errors():
    for n_slices in (6, 14):  # base and apex follow an overridden slice count
        phantom = make_phantom(rng(1), n_slices=n_slices, shape_yx=(200, 220), rv_angle_deg=180.0)
        assert phantom.shape == (n_slices, 200, 220)
        area = (phantom.labels > 0).sum(axis=(1, 2))
        assert area[:2].all() and 0 < area[-1] < area.max() / 2
    geometry = sample_geometry(rng(1))
    assert render_phantom(replace(geometry, basal_gap_deg=0.0)).labels.any()
    with pytest.raises(TypeError, match="unknown PhantomGeometry"):
        sample_geometry(rng(1), lv_size=3)
    with pytest.raises(ValueError, match="phase"):
        render_phantom(geometry, "MID")


@pytest.mark.parametrize("label_map", [None, MNMS], ids=["acdc", "mnms"])
def test_phantom_files_round_trip_with_geometry(tmp_path, label_map):
    kwargs = {} if label_map is None else {"label_map": label_map}
    path = write_phantom(tmp_path / "case_ES.nii.gz", seed=4, phase="ES", **kwargs)
    loaded = load_mask(path, **kwargs)
    expected = phantom_volume(4, "ES")
    np.testing.assert_array_equal(loaded.labels, expected.labels)
    assert loaded.spacing_mm == pytest.approx(expected.spacing_mm)
    np.testing.assert_allclose(loaded.affine, expected.affine, atol=1e-6)
    corrupted, description = segmented_volume(4, "failing", "ES")
    assert corrupted.labels.shape == expected.labels.shape and description
