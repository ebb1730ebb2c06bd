"""monitor.evaluation and the ``evaluate`` command, on synthetic phantoms and hand-made tables."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from monitor.cli_evaluate import register
from monitor.evaluation import (
    CASE_COLUMNS,
    GROUND_TRUTH,
    PHASES,
    aurc,
    correlate,
    correlation_table,
    evaluate_cases,
    false_alarms,
    flag_quality,
    pair_cases,
    precision_recall,
    rank_segmenters,
    risk_coverage,
    summarise,
    write_report,
)
from monitor.nifti import save_labels
from monitor.scoring import Scorer
from monitor.synthetic import write_dataset

SEGMENTERS = ("good", "poor", "failing")  # best first, by construction
STRUCTURES = ("LV", "RV", "MYO")


# --------------------------------------------------------------------------------------------------
# Fixtures: one small synthetic dataset, scored once for the module
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluation")
    write_dataset(root, patients=3, seed=0, segmenters=SEGMENTERS, images=False)
    return root


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(device="cpu")


@pytest.fixture(scope="module")
def evaluated(dataset: Path, scorer: Scorer) -> tuple[pd.DataFrame, list]:
    pairing = pair_cases(dataset / "gt", {s: dataset / "predictions" / s for s in SEGMENTERS})
    return evaluate_cases(pairing.pairs, scorer, batch_volumes=4)


@pytest.fixture(scope="module")
def summary(evaluated) -> dict:
    return summarise(evaluated[0])


def _metrics_csv(dataset: Path, segmenter: str) -> list[dict[str, str]]:
    with (dataset / "predictions" / segmenter / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------------------


def test_pairs_acdc_layout_by_info_cfg(dataset: Path) -> None:
    pairing = pair_cases(dataset / "gt", {s: dataset / "predictions" / s for s in SEGMENTERS})
    assert len(pairing.pairs) == len(SEGMENTERS) * 3 * 2
    assert not pairing.unpaired and not pairing.missing
    for row in _metrics_csv(dataset, "poor"):
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


# --------------------------------------------------------------------------------------------------
# Cases table on synthetic data
# --------------------------------------------------------------------------------------------------


def test_cases_table_has_real_metrics_of_the_dataset(evaluated, dataset: Path) -> None:
    cases, skipped = evaluated
    assert not skipped
    assert tuple(cases.columns) == CASE_COLUMNS
    assert len(cases) == (len(SEGMENTERS) + 1) * 6 * 3
    for segmenter in SEGMENTERS:
        for row in _metrics_csv(dataset, segmenter):
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


# --------------------------------------------------------------------------------------------------
# Pure summaries on hand-made tables
# --------------------------------------------------------------------------------------------------


def _table(records: list[tuple]) -> pd.DataFrame:
    """(segmenter, case, phase, structure, dice, hd_mm, pdsc, phd_mm, flag, missing) -> cases table."""
    columns = [
        "segmenter",
        "case",
        "phase",
        "structure",
        "dice",
        "hd_mm",
        "pdsc",
        "phd_mm",
        "flag",
        "missing",
    ]
    frame = pd.DataFrame(records, columns=columns)
    frame["patient"] = frame["case"].str.split("_").str[0]
    worst = {"ok": 0, "suspicious": 1, "erroneous": 2}
    frame["volume_flag"] = frame.groupby(["segmenter", "case"])["flag"].transform(
        lambda f: max(f, key=worst.__getitem__)
    )
    return frame


def test_correlate_matches_numpy_and_drops_nan_pairs() -> None:
    rng = np.random.default_rng(3)
    real = rng.uniform(0, 1, 40)
    pseudo = real + rng.normal(0, 0.2, 40)
    real[[2, 7]] = np.nan
    pseudo[[7, 11, 30]] = np.nan
    got = correlate(real, pseudo)
    keep = np.isfinite(real) & np.isfinite(pseudo)
    x, y = real[keep], pseudo[keep]
    assert got["n"] == 36 and got["n_dropped"] == 4
    assert got["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks_x, ranks_y = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    assert got["spearman"] == pytest.approx(np.corrcoef(ranks_x, ranks_y)[0, 1])
    assert got["mae"] == pytest.approx(np.mean(np.abs(x - y)))
    empty = correlate([np.nan, 1.0], [0.5, np.nan])
    assert empty["n"] == 0 and math.isnan(empty["pearson"]) and math.isnan(empty["mae"])
    assert math.isnan(correlate([1.0, 1.0, 1.0], [0.1, 0.2, 0.3])["pearson"])  # constant side


def test_correlation_table_per_structure_and_phase() -> None:
    cases = _table(
        [
            ("A", "p1_ED", "ED", "LV", 0.9, 5.0, 0.8, 6.0, "ok", False),
            ("A", "p1_ES", "ES", "LV", 0.7, 9.0, 0.6, 12.0, "ok", False),
            ("B", "p1_ED", "ED", "LV", 0.5, 20.0, 0.55, 18.0, "ok", False),
            ("B", "p1_ES", "ES", "LV", 0.0, np.nan, 0.0, np.nan, "erroneous", True),
            (GROUND_TRUTH, "p1_ED", "ED", "LV", 1.0, 0.0, 0.1, 90.0, "suspicious", False),
        ]
    )
    table = correlation_table(cases)
    assert set(table) == {"dice", "hd_mm"}
    assert set(table["dice"]) == set(STRUCTURES)
    assert set(table["dice"]["LV"]) == set(PHASES)
    assert table["dice"]["LV"]["ED"]["n"] == 2  # ground_truth left out
    assert table["dice"]["LV"]["all"]["pearson"] == pytest.approx(
        np.corrcoef([0.9, 0.7, 0.5, 0.0], [0.8, 0.6, 0.55, 0.0])[0, 1]
    )
    assert (table["hd_mm"]["LV"]["all"]["n"], table["hd_mm"]["LV"]["all"]["n_dropped"]) == (3, 1)
    assert table["dice"]["RV"]["all"]["n"] == 0


def test_rankings_and_their_spearman() -> None:
    records = []
    # mean real Dice A 0.9 > B 0.7 > C 0.5; mean pDSC B 0.65 > A 0.6 > C 0.3
    for name, d, pd_ in (("A", 0.9, 0.6), ("B", 0.7, 0.65), ("C", 0.5, 0.3)):
        for case, shift in (("p1_ED", -0.05), ("p2_ED", 0.05)):
            hd = np.nan if name == "C" else {"A": 5.0, "B": 10.0}[name] + shift
            records.append((name, case, "ED", "LV", d + shift, hd, pd_ + shift, 7.0 + shift, "ok", False))
    ranking = rank_segmenters(_table(records))
    lv = ranking["dice"]["LV"]["ED"]
    assert [lv["segmenters"][n]["real_rank"] for n in "ABC"] == [1.0, 2.0, 3.0]
    assert [lv["segmenters"][n]["pseudo_rank"] for n in "ABC"] == [2.0, 1.0, 3.0]
    assert lv["segmenters"]["B"]["pseudo_mean"] == pytest.approx(0.65)
    assert lv["spearman"] == pytest.approx(1 - 6 * 2 / (3 * (9 - 1)))  # = 0.5
    assert ranking["dice"]["LV"]["all"]["spearman"] == pytest.approx(0.5)
    assert ranking["dice"]["LV"]["ES"]["n_segmenters"] == 0
    hd = ranking["hd_mm"]["LV"]["ED"]
    assert hd["excluded"] == ["C"] and hd["n_segmenters"] == 2
    assert hd["segmenters"]["A"]["real_rank"] == 1.0  # lower HD is better
    assert math.isnan(hd["segmenters"]["C"]["real_rank"])
    # pHD means are 7.0 for both A and B: the pseudo ranking is a tie, r_s undefined
    assert hd["segmenters"]["A"]["pseudo_rank"] == hd["segmenters"]["B"]["pseudo_rank"] == 1.5
    assert math.isnan(hd["spearman"])


def test_precision_recall_counts() -> None:
    got = precision_recall([True, True, False, False, True], [True, False, True, False, True])
    assert (got["tp"], got["fp"], got["fn"], got["tn"], got["n"]) == (2, 1, 1, 1, 5)
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 3)
    none = precision_recall([False, False], [False, False])
    assert math.isnan(none["precision"]) and math.isnan(none["recall"])


def test_flag_quality_and_false_alarms_on_a_hand_made_table() -> None:
    cases = _table(
        [
            # missing RV, caught
            ("A", "p1_ED", "ED", "RV", 0.0, np.nan, 0.0, np.nan, "erroneous", True),
            # erroneous although present (vanished from pGT) and fine: false alarm of both detectors
            ("A", "p1_ED", "ED", "LV", 0.95, 4.0, np.nan, np.nan, "erroneous", False),
            # real failure by HD only, flagged suspicious
            ("A", "p1_ED", "ED", "MYO", 0.8, 60.0, 0.6, 70.0, "suspicious", False),
            # real failure by Dice, missed
            ("B", "p1_ED", "ED", "LV", 0.4, 12.0, 0.7, 10.0, "ok", False),
            # fine and ok
            ("B", "p1_ED", "ED", "RV", 0.9, 8.0, 0.8, 9.0, "ok", False),
            ("B", "p1_ED", "ED", "MYO", 0.85, 7.0, 0.7, 8.0, "ok", False),
            # ground truth: one volume with a suspicious MYO, one clean
            (GROUND_TRUTH, "p1_ED", "ED", "LV", 1.0, 0.0, 0.9, 5.0, "ok", False),
            (GROUND_TRUTH, "p1_ED", "ED", "RV", 1.0, 0.0, 0.9, 5.0, "ok", False),
            (GROUND_TRUTH, "p1_ED", "ED", "MYO", 1.0, 0.0, 0.4, 9.0, "suspicious", False),
            (GROUND_TRUTH, "p2_ED", "ED", "LV", 1.0, 0.0, 0.9, 5.0, "ok", False),
            (GROUND_TRUTH, "p2_ED", "ED", "RV", 1.0, 0.0, 0.9, 5.0, "ok", False),
            (GROUND_TRUTH, "p2_ED", "ED", "MYO", 1.0, 0.0, 0.8, 5.0, "ok", False),
        ]
    )
    quality = flag_quality(cases)
    missing = quality["erroneous_vs_missing"]
    assert (missing["all"]["tp"], missing["all"]["fp"], missing["all"]["fn"]) == (1, 1, 0)
    assert missing["all"]["precision"] == 0.5 and missing["all"]["recall"] == 1.0
    assert missing["RV"]["precision"] == 1.0 and missing["LV"]["precision"] == 0.0
    assert math.isnan(missing["MYO"]["precision"]) and missing["all"]["n"] == 6
    failure = quality["flagged_vs_failure"]["all"]
    # failures: A-RV (Dice 0), A-MYO (HD 60), B-LV (Dice 0.4); flagged: A-RV, A-LV, A-MYO
    assert (failure["tp"], failure["fp"], failure["fn"], failure["tn"]) == (2, 1, 1, 2)
    alarms = false_alarms(cases)
    assert alarms["MYO"] == {"rate": 0.5, "flagged": 1, "erroneous": 0, "n": 2}
    assert alarms["LV"]["rate"] == 0.0
    assert alarms["all"]["rate"] == pytest.approx(1 / 6)
    assert alarms["volume_any"] == {"rate": 0.5, "flagged": 1, "erroneous": 0, "n": 2}


def test_risk_coverage_and_aurc_by_hand() -> None:
    coverage, risk = risk_coverage([0.9, 0.8, 0.7, 0.6], [0.0, 1.0, 0.0, 1.0])
    assert coverage == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert risk == pytest.approx([0.0, 0.5, 1 / 3, 0.5])
    got = aurc([0.6, 0.9, 0.7, 0.8], [1.0, 0.0, 0.0, 1.0])  # same items, shuffled
    assert got["aurc"] == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    assert got["optimal"] == pytest.approx((0 + 0 + 1 / 3 + 0.5) / 4)
    assert got["random"] == 0.5 and got["excess"] == pytest.approx(got["aurc"] - got["optimal"])
    # a perfect confidence reaches the optimum
    perfect = aurc([0.9, 0.5, 0.1], [0.1, 0.3, 0.8])
    assert perfect["aurc"] == pytest.approx(perfect["optimal"])
    # ties share their mean risk: the expected area over both orders, (0.25 + 0.75) / 2
    assert aurc([0.5, 0.5], [0.0, 1.0])["aurc"] == pytest.approx(0.5)
    # nan risk dropped; nan confidence counts as the least confident
    got = aurc([np.nan, 0.9, 0.8], [1.0, 0.0, np.nan])
    assert (got["n"], got["n_dropped"]) == (2, 1)
    assert got["aurc"] == pytest.approx((0.0 + 0.5) / 2)
    assert math.isnan(aurc([0.1], [np.nan])["aurc"])


# --------------------------------------------------------------------------------------------------
# Report and command line
# --------------------------------------------------------------------------------------------------


def test_write_report_files_and_stable_keys(evaluated, summary: dict, tmp_path: Path) -> None:
    cases = evaluated[0]
    written = write_report(cases, summary, tmp_path / "report")
    out = tmp_path / "report"
    for name in ("report.md", "cases.csv", "summary.json", "scatter_dice.png", "scatter_hd_mm.png"):
        assert (out / name).is_file(), name
    assert set(written) >= {"report", "cases", "summary", "risk_coverage"}
    data = json.loads((out / "summary.json").read_text())
    assert {"n_volumes", "correlation", "ranking", "flags", "aurc", "per_segmenter", "thresholds"} <= set(
        data
    )
    assert data["n_volumes"] == 18 and data["n_ground_truth_volumes"] == 6
    entry = data["correlation"]["dice"]["LV"]["ES"]
    assert set(entry) == {"pearson", "spearman", "mae", "n", "n_dropped"}
    assert set(data["ranking"]["hd_mm"]["RV"]["all"]) == {
        "spearman",
        "n_segmenters",
        "excluded",
        "segmenters",
    }
    assert set(data["flags"]) == {"erroneous_vs_missing", "flagged_vs_failure", "false_alarm"}
    assert set(data["aurc"]) == {"LV", "RV", "MYO", "all", "volume"}
    assert set(data["aurc"]["volume"]) == {"dice", "failure"}
    written_cases = pd.read_csv(out / "cases.csv")
    assert tuple(written_cases.columns) == CASE_COLUMNS and len(written_cases) == len(cases)
    report = (out / "report.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (out / link).is_file(), link
    assert "risk_coverage.png" in report


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Throwaway root so that ``evaluate`` stays a subcommand."""

    return app


def test_cli_evaluate_reports_a_prediction_without_ground_truth(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", patients=1, seed=1, segmenters=("good",), images=False)
    pred = tmp_path / "data" / "predictions" / "good"
    shutil.copy(pred / "patient001_ED.nii.gz", pred / "patient777_ED.nii.gz")
    out = tmp_path / "report"
    args = ["evaluate", "--gt", str(tmp_path / "data" / "gt"), "--pred", f"good={pred}", "--out", str(out)]
    result = CliRunner().invoke(_cli(), [*args, "--device", "cpu", "--batch", "2", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "no ground truth for good" in result.output and "patient777_ED" in result.output
    assert "2 volumes of 1 segmenters evaluated" in result.output
    data = json.loads((out / "summary.json").read_text())
    assert [u["case"] for u in data["pairing"]["unpaired"]] == ["patient777_ED"]
    assert data["n_volumes"] == 2 and data["n_ground_truth_volumes"] == 2
    assert len(data["checkpoint_sha256"]) == 64 and data["versions"]["cmr_monitor"]
    assert "patient777_ED" in (out / "report.md").read_text()
    assert not list(out.glob("*.png"))


@pytest.mark.parametrize("spec", ["good", "=somewhere", f"{GROUND_TRUTH}=.", "good=/no/such/folder"], ids=str)
def test_cli_refuses_bad_pred_specs(tmp_path: Path, spec: str) -> None:
    (tmp_path / "gt").mkdir()
    result = CliRunner().invoke(
        _cli(), ["evaluate", "--gt", str(tmp_path / "gt"), "--pred", spec, "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "o").exists()
