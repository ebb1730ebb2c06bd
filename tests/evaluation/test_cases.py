"""Tests of ``monitor.evaluation.cases`` on a synthetic dataset: real metrics, pseudo metrics, skips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from monitor.evaluation import CASE_COLUMNS, GROUND_TRUTH, evaluate_cases, pair_cases, summarise
from monitor.io.nifti import save_labels
from tests.evaluation.conftest import SEGMENTERS, STRUCTURES, metrics_csv


def test_cases_table_has_real_metrics_of_the_dataset(evaluated, dataset: Path) -> None:
    cases, skipped = evaluated
    assert not skipped
    assert tuple(cases.columns) == CASE_COLUMNS
    assert len(cases) == (len(SEGMENTERS) + 1) * 6 * 3
    for segmenter in SEGMENTERS:
        for row in metrics_csv(dataset, segmenter):
            for structure in STRUCTURES:
                key = structure.lower()
                (got,) = cases[
                    (cases["segmenter"] == segmenter)
                    & (cases["case"] == f"{row['patient']}_{row['phase']}")
                    & (cases["structure"] == structure)
                ].itertuples()
                assert got.dice == pytest.approx(float(row[f"dice_{key}"]), abs=1e-4)
                expected_hd = float(row[f"hd_{key}_mm"] or "nan")
                assert (math.isnan(got.hd_mm) and math.isnan(expected_hd)) or got.hd_mm == pytest.approx(
                    expected_hd, abs=1e-3
                )
                assert got.missing == (structure in row["pred_missing_structures"].split())
    truth = cases[cases["segmenter"] == GROUND_TRUTH]
    assert len(truth) == 6 * 3
    assert (truth["dice"] == 1.0).all() and (truth["hd_mm"] == 0.0).all()
    assert not truth["missing"].any()
    assert set(cases["flag"]) <= {"ok", "suspicious", "erroneous"}


def test_worse_segmenter_ranks_lower(summary: dict) -> None:
    for structure in STRUCTURES:
        table = summary["ranking"]["dice"][structure]["all"]["segmenters"]
        assert [table[s]["real_rank"] for s in SEGMENTERS] == [1.0, 2.0, 3.0]
        assert table["good"]["pseudo_rank"] < table["failing"]["pseudo_rank"]
    pdsc = [summary["per_segmenter"][s]["mean"]["all"]["pdsc"] for s in SEGMENTERS]
    assert pdsc == sorted(pdsc, reverse=True)
    flagged = [summary["per_segmenter"][s]["structure_flags"]["ok"] for s in SEGMENTERS]
    assert flagged[0] > flagged[-1]


def test_missing_structures_are_caught(evaluated, summary: dict) -> None:
    cases = evaluated[0]
    rows = cases[cases["segmenter"] != GROUND_TRUTH]
    assert rows["missing"].any(), "the failing segmenter should drop a structure with seed 0"
    assert (rows.loc[rows["missing"], "flag"] == "erroneous").all()
    quality = summary["flags"]["erroneous_vs_missing"]["all"]
    assert quality["recall"] == 1.0
    assert quality["tp"] == int(rows["missing"].sum())
    # recomputed here with numpy from the table
    failed = (rows["dice"].to_numpy() < 0.5) | (rows["hd_mm"].to_numpy() > 50)
    flagged = rows["flag"].to_numpy() != "ok"
    got = summary["flags"]["flagged_vs_failure"]["all"]
    assert got["tp"] == int(np.sum(failed & flagged))
    assert got["precision"] == pytest.approx(np.sum(failed & flagged) / np.sum(flagged))
    assert got["recall"] == pytest.approx(np.sum(failed & flagged) / np.sum(failed))


def test_summary_correlations_match_numpy_on_the_cases(evaluated, summary: dict) -> None:
    cases = evaluated[0]
    rows = cases[(cases["segmenter"] != GROUND_TRUTH) & (cases["structure"] == "LV")]
    x, y = rows["hd_mm"].to_numpy(float), rows["phd_mm"].to_numpy(float)
    keep = np.isfinite(x) & np.isfinite(y)
    got = summary["correlation"]["hd_mm"]["LV"]["all"]
    assert got["pearson"] == pytest.approx(np.corrcoef(x[keep], y[keep])[0, 1])
    assert (got["n"], got["n_dropped"]) == (int(keep.sum()), int((~keep).sum()))
    assert got["pearson"] > 0.5  # pHD follows HD on these phantoms


class _NoScorer:
    def score_batch(self, volumes: list) -> list:
        assert not volumes, "nothing should reach the scorer"
        return []


def test_unreadable_and_mismatched_predictions_are_skipped_with_a_reason(tmp_path: Path) -> None:
    labels = np.zeros((3, 16, 16), np.uint8)
    labels[:, 4:10, 4:10] = 3
    save_labels(tmp_path / "gt" / "a.nii.gz", labels, np.diag([1.5, 1.5, 8.0, 1.0]))
    save_labels(tmp_path / "gt" / "b.nii.gz", labels, np.diag([1.5, 1.5, 8.0, 1.0]))
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "a.nii.gz").write_bytes(b"not a nifti file")
    save_labels(tmp_path / "pred" / "b.nii.gz", labels[:, :12], np.diag([1.5, 1.5, 8.0, 1.0]))
    pairing = pair_cases(tmp_path / "gt", {"net": tmp_path / "pred"})
    cases, skipped = evaluate_cases(pairing.pairs, _NoScorer(), include_ground_truth=False)
    assert cases.empty and tuple(cases.columns) == CASE_COLUMNS
    assert sorted((s.case, s.reason) for s in skipped) == [("a", "not_nifti"), ("b", "geometry_mismatch")]
    assert summarise(cases)["n_volumes"] == 0
