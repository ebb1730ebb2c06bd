"""Synthetic phantoms, corruptions, simulated segmenters and the ACDC-layout dataset writer."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from monitor.labels import MNMS, Structure
from monitor.metrics import dice, hausdorff_mm
from monitor.nifti import load_image, load_mask
from monitor.synthetic import (
    METRICS_COLUMNS,
    SEGMENTERS,
    SimulatedSegmenter,
    add_spurious_blobs,
    dilate_structure,
    drop_slices,
    erode_structure,
    make_patient,
    make_phantom,
    perturb_boundaries,
    punch_holes,
    remove_structure,
    render_phantom,
    sample_geometry,
    swap_labels,
    write_dataset,
)
from tests.phantoms import phantom_volume, segmented_volume, write_phantom

RV, MYO, LV = 1, 2, 3
SEEDS = range(8)
ACDC_DEV_METRICS = Path("/work/shared/data/acdc-dev/predictions/tiramisu/metrics.csv")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _occupied(labels: np.ndarray) -> np.ndarray:
    return np.flatnonzero(labels.any(axis=(1, 2)))


def _mid_slice(labels: np.ndarray) -> int:
    occupied = _occupied(labels)
    return int(occupied[len(occupied) // 2])


def _grow(mask: np.ndarray) -> np.ndarray:
    """One-voxel in-plane (4-connected) dilation of a 2D mask."""
    return ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(2, 1))


@pytest.fixture(scope="module")
def patients() -> list[tuple]:
    return [make_patient(_rng(seed)) for seed in SEEDS]


# ---------------------------------------------------------------------------------------- phantoms


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
            z = _mid_slice(phantom.labels)
            s = phantom.labels[z]
            for value in (RV, MYO, LV):
                assert np.count_nonzero(s == value) > 50, (phantom.phase, z, value)
            # The LV cavity touches only myocardium: the ring is closed on mid slices.
            neighbours = set(np.unique(s[_grow(s == LV) & (s != LV)]))
            assert neighbours == {MYO}


def test_lv_radius_and_wall_thickness_in_range(patients):
    for ed, _ in patients:
        z = _mid_slice(ed.labels)
        area_mm2 = ed.spacing_mm[1] * ed.spacing_mm[2]
        r_lv = math.sqrt(np.count_nonzero(ed.labels[z] == LV) * area_mm2 / math.pi)
        r_epi = math.sqrt(np.count_nonzero(ed.labels[z] >= MYO) * area_mm2 / math.pi)
        assert 12.0 <= r_lv <= 34.0
        assert 5.0 <= r_epi - r_lv <= 14.0


def test_rv_hugs_the_septum_on_the_side_it_was_drawn(patients):
    for ed, _ in patients:
        z = _mid_slice(ed.labels)
        s = ed.labels[z]
        rv, lv = s == RV, s == LV
        assert np.count_nonzero(_grow(rv) & (s == MYO)) > 10  # RV cavity borders the myocardium
        assert not (_grow(rv) & lv).any()  # ... and never the LV cavity
        (ry, rx), (ly, lx) = ndimage.center_of_mass(rv), ndimage.center_of_mass(lv)
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        g = ed.geometry
        expected = g.rv_angle_deg + g.rv_twist_deg * (z - g.base_slice) / (g.apex_slice - g.base_slice)
        assert abs((angle - expected + 180) % 360 - 180) < 45
        assert 90 <= angle % 360 <= 270  # septal side: towards -x, as in ACDC


def test_rv_tapers_towards_the_apex(patients):
    for ed, _ in patients:
        rv_area = (ed.labels == RV).sum(axis=(1, 2))
        occupied = _occupied(ed.labels)
        assert rv_area[occupied[-1]] < rv_area[occupied].max() / 2


def test_es_is_contracted(patients):
    for ed, es in patients:
        lv_ratio = np.count_nonzero(es.labels == LV) / np.count_nonzero(ed.labels == LV)
        assert 0.3 <= lv_ratio <= 0.75
        assert np.count_nonzero(es.labels == RV) < np.count_nonzero(ed.labels == RV)
        z = _mid_slice(ed.labels)
        area = ed.spacing_mm[1] * ed.spacing_mm[2] / math.pi

        def wall_mm(labels: np.ndarray, z: int = z, area: float = area) -> float:
            return math.sqrt(np.count_nonzero(labels[z] >= MYO) * area) - math.sqrt(
                np.count_nonzero(labels[z] == LV) * area
            )

        assert wall_mm(es.labels) > wall_mm(ed.labels)


def test_phantoms_are_deterministic_per_seed():
    a, b, c = make_phantom(_rng(7)), make_phantom(_rng(7)), make_phantom(_rng(8))
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.geometry == b.geometry
    assert a.shape != c.shape or not np.array_equal(a.labels, c.labels)


def test_geometry_overrides_and_errors():
    for n_slices in (6, 14):  # base and apex follow an overridden slice count
        phantom = make_phantom(_rng(1), n_slices=n_slices, shape_yx=(200, 220), rv_angle_deg=180.0)
        assert phantom.shape == (n_slices, 200, 220)
        area = (phantom.labels > 0).sum(axis=(1, 2))
        assert area[:2].all() and 0 < area[-1] < area.max() / 2
    geometry = sample_geometry(_rng(1))
    assert render_phantom(replace(geometry, basal_gap_deg=0.0)).labels.any()
    with pytest.raises(TypeError, match="unknown PhantomGeometry"):
        sample_geometry(_rng(1), lv_size=3)
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


# ------------------------------------------------------------------------------------- corruptions


@pytest.fixture(scope="module")
def ed_phantom():
    return make_phantom(_rng(3))


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
    holed = punch_holes(labels, _rng(0), spacing, structure="LV", n_holes=3, radius_mm=4.0)
    lost = (labels == LV) & (holed == 0)
    assert 0 < np.count_nonzero(lost) <= 3 * math.pi * 4.0**2 / (spacing[1] * spacing[2]) + 30
    assert (holed[~lost] == labels[~lost]).all()

    blobs = add_spurious_blobs(labels, _rng(0), spacing, n_blobs=3, radius_mm=5.0, min_distance_mm=40.0)
    new = blobs != labels
    assert new.any() and (labels[new] == 0).all()
    heart = labels.any(axis=0)
    distance = ndimage.distance_transform_edt(~heart, sampling=spacing[1:])
    centres = ndimage.center_of_mass(new.any(axis=0), ndimage.label(new.any(axis=0))[0], [1])
    assert all(distance[round(y), round(x)] >= 35.0 for y, x in centres)

    occupied = _occupied(labels)
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
    np.testing.assert_array_equal(perturb_boundaries(labels, _rng(0), spacing, amplitude_mm=0.0), labels)
    scores = []
    for amplitude in (0.8, 2.0, 4.0):
        out = perturb_boundaries(labels, _rng(0), spacing, amplitude_mm=amplitude)
        scores.append(dice(out == MYO, labels == MYO))
    assert 0.99 > scores[0] > scores[1] > scores[2] > 0.3
    np.testing.assert_array_equal(labels, before)  # input untouched


@pytest.mark.parametrize("name", list(SEGMENTERS))
def test_segmenters_are_deterministic_and_describe_themselves(ed_phantom, name):
    segmenter = SEGMENTERS[name]
    a, text_a = segmenter(ed_phantom.labels, _rng(5), ed_phantom.spacing_mm)
    b, text_b = segmenter(ed_phantom.labels, _rng(5), ed_phantom.spacing_mm)
    np.testing.assert_array_equal(a, b)
    assert text_a == text_b and text_a.startswith("noise=") and "," not in text_a
    assert a.dtype == np.uint8 and a.shape == ed_phantom.shape


# ---------------------------------------------------------------------------------------- dataset


def _without_rv(labels: np.ndarray, rng: np.random.Generator, spacing) -> tuple[np.ndarray, str]:
    return remove_structure(labels, "RV"), "missing=RV"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    no_rv = SimulatedSegmenter(name="no_rv", summary="drops the RV", apply=_without_rv)
    summary = write_dataset(root, patients=4, seed=11, segmenters=[*SEGMENTERS, no_rv], images=False)
    return root, summary


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_dataset_layout_matches_acdc_dev(dataset):
    root, summary = dataset
    assert summary.patients == ("patient001", "patient002", "patient003", "patient004")
    assert summary.n_volumes == 8 and summary.segmenters[-1] == "no_rv"
    for pid in summary.patients:
        info = dict(line.split(": ") for line in (root / "gt" / pid / "Info.cfg").read_text().splitlines())
        assert info["ED"] == "1" and 9 <= int(info["ES"]) <= 16 and info["Group"] == "SYN"
        for phase, frame in (("ED", 1), ("ES", int(info["ES"]))):
            gt = load_mask(root / "gt" / pid / f"{pid}_frame{frame:02d}_gt.nii.gz")
            pred = load_mask(root / "predictions" / "good" / f"{pid}_{phase}.nii.gz")
            assert gt.shape == pred.shape and gt.spacing_mm == pytest.approx(pred.spacing_mm)
            dz, dy, dx = gt.spacing_mm
            np.testing.assert_allclose(gt.affine, np.diag([dx, dy, dz, 1.0]), atol=1e-6)
            assert {1, 2, 3} <= set(np.unique(gt.labels))
    header = next(csv.reader(summary.metrics_files["good"].open()))
    assert tuple(header) == METRICS_COLUMNS
    if ACDC_DEV_METRICS.exists():
        assert tuple(next(csv.reader(ACDC_DEV_METRICS.open()))) == METRICS_COLUMNS


def test_metrics_csv_holds_real_metrics(dataset):
    root, summary = dataset
    for row in _rows(summary.metrics_files["poor"])[:3]:
        gt = load_mask(root / "gt" / row["gt_file"])
        pred = load_mask(root / "predictions" / "poor" / row["pred_file"])
        for key, value in (("lv", LV), ("rv", RV), ("myo", MYO)):
            assert float(row[f"dice_{key}"]) == pytest.approx(
                dice(pred.labels == value, gt.labels == value), abs=1e-4
            )
            hd = hausdorff_mm(pred.labels == value, gt.labels == value, gt.spacing_mm)
            assert float(row[f"hd_{key}_mm"] or "nan") == pytest.approx(hd, abs=1e-3, nan_ok=True)
        assert row["perturbation"] and row["group"] == "SYN"


def test_missing_structure_is_reported(dataset):
    root, summary = dataset
    rows = _rows(summary.metrics_files["no_rv"])
    assert len(rows) == 8
    for row in rows:
        assert row["pred_missing_structures"] == "RV"
        assert row["dice_rv"] == "0.0000" and row["hd_rv_mm"] == ""
        assert float(row["dice_lv"]) == 1.0 and row["perturbation"] == "missing=RV"
        assert not (load_mask(root / "predictions" / "no_rv" / row["pred_file"]).labels == RV).any()
    failing = _rows(summary.metrics_files["failing"])
    for row in failing:
        missing = row["pred_missing_structures"].split()
        for structure in missing:
            assert f"missing={structure}" in row["perturbation"]
            assert float(row[f"dice_{structure.lower()}"]) == 0.0


def test_segmenter_quality_is_graded(dataset):
    _, summary = dataset
    means = [summary.mean_dice[name] for name in ("good", "fair", "poor", "failing")]
    assert means == sorted(means, reverse=True)
    assert means[0] > 0.88 and means[-1] < 0.6


def test_ef_columns_and_per_patient_determinism(dataset, tmp_path):
    root, summary = dataset
    rows = _rows(summary.metrics_files["good"])
    ed, es = rows[0], rows[1]
    assert (ed["phase"], es["phase"]) == ("ED", "ES") and ed["gt_lv_ef_pct"] == es["gt_lv_ef_pct"]
    ef = 100 * (float(ed["gt_lv_ml"]) - float(es["gt_lv_ml"])) / float(ed["gt_lv_ml"])
    assert float(ed["gt_lv_ef_pct"]) == pytest.approx(ef, abs=0.01)
    assert 25.0 <= ef <= 75.0
    # One patient, one segmenter, with images: same GT and prediction as in the larger set.
    small = write_dataset(tmp_path, patients=1, seed=11, segmenters=["good"], images=True)
    assert small.patients == ("patient001",)
    for name in ("gt/patient001/patient001_frame01_gt.nii.gz", "predictions/good/patient001_ED.nii.gz"):
        np.testing.assert_array_equal(load_mask(tmp_path / name).labels, load_mask(root / name).labels)
    image, spacing = load_image(tmp_path / "gt/patient001/patient001_frame01.nii.gz")
    gt = load_mask(tmp_path / "gt/patient001/patient001_frame01_gt.nii.gz")
    assert image.shape == gt.shape and spacing == pytest.approx(gt.spacing_mm)
    assert image[gt.labels == LV].mean() > image[gt.labels == MYO].mean() + 80


def test_write_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown simulated segmenter"):
        write_dataset(tmp_path, patients=1, segmenters=["perfect"])
    with pytest.raises(ValueError, match="between 1 and 999"):
        write_dataset(tmp_path, patients=0)
    with pytest.raises(ValueError, match="unique"):
        write_dataset(tmp_path, patients=1, segmenters=["good", "good"])
