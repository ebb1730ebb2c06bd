"""Tests of ``monitor.evaluation.pairing``: predictions paired with their ground truth by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.evaluation import GROUND_TRUTH, pair_cases
from tests.evaluation.conftest import SEGMENTERS, metrics_csv


def test_pairs_acdc_layout_by_info_cfg(dataset: Path) -> None:
    pairing = pair_cases(dataset / "gt", {s: dataset / "predictions" / s for s in SEGMENTERS})
    assert len(pairing.pairs) == len(SEGMENTERS) * 3 * 2
    assert not pairing.unpaired and not pairing.missing
    for row in metrics_csv(dataset, "poor"):
        (pair,) = [
            p for p in pairing.pairs if p.segmenter == "poor" and p.case == f"{row['patient']}_{row['phase']}"
        ]
        assert (pair.patient, pair.phase) == (row["patient"], row["phase"])
        assert pair.gt_path == dataset / "gt" / row["gt_file"]  # the frame Info.cfg names
        assert pair.pred_path.name == row["pred_file"]


def test_pairs_plain_layout_by_name_and_reports_the_rest(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for path in (gt / "a.nii.gz", gt / "b_gt.nii.gz", gt / "c_ED.nii.gz", gt / "sub" / "d.nii"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    for name in ("a.nii.gz", "b.nii.gz", "c_ED.nii.gz", "e.nii.gz", ".hidden.nii.gz", "notes.txt"):
        pred.mkdir(exist_ok=True)
        (pred / name).touch()
    # a plain folder with any *_gt file: only *_gt files are ground truth
    pairing = pair_cases(gt, {"net": pred})
    assert [(p.case, p.gt_path.name) for p in pairing.pairs] == [("b", "b_gt.nii.gz")]
    assert {s.case for s in pairing.unpaired} == {"a", "c_ED", "e"}
    assert all(s.reason == "no_ground_truth" for s in pairing.unpaired)

    (gt / "b_gt.nii.gz").rename(gt / "b.nii.gz")
    pairing = pair_cases(gt, {"net": pred})
    assert sorted((p.case, p.gt_path.name, p.patient, p.phase) for p in pairing.pairs) == [
        ("a", "a.nii.gz", "a", ""),
        ("b", "b.nii.gz", "b", ""),
        ("c_ED", "c_ED.nii.gz", "c", "ED"),
    ]
    assert [(s.case, s.reason) for s in pairing.unpaired] == [("e", "no_ground_truth")]
    assert [(s.case, s.reason, s.path.name) for s in pairing.missing] == [("d", "no_prediction", "d.nii")]


def test_pairing_refuses_bad_input(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    with pytest.raises(FileNotFoundError, match="no ground-truth masks"):
        pair_cases(tmp_path / "gt", {"net": tmp_path / "pred"})
    (tmp_path / "gt" / "a.nii.gz").touch()
    with pytest.raises(FileNotFoundError, match="prediction folder"):
        pair_cases(tmp_path / "gt", {"net": tmp_path / "nowhere"})
    with pytest.raises(ValueError, match="ground_truth"):
        pair_cases(tmp_path / "gt", {GROUND_TRUTH: tmp_path / "pred"})
