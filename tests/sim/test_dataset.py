"""Tests of ``monitor.sim.dataset``: the acdc-dev layout and its real metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from monitor.io.nifti import load_image, load_mask
from monitor.qc.metrics import dice, hausdorff_mm
from monitor.sim import (
    METRICS_COLUMNS,
    SEGMENTERS,
    SimulatedSegmenter,
    remove_structure,
    write_dataset,
)
from tests.sim._helpers import ACDC_DEV_METRICS, LV, MYO, RV


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
