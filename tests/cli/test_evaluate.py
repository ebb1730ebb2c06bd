"""Tests of ``cmr-monitor evaluate`` through the application."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.evaluation import GROUND_TRUTH
from monitor.sim import write_dataset
from monitor.store import estimated_vs_realized, open_session
from tests.cli.console import run_cli


def test_cli_evaluate_reports_a_prediction_without_ground_truth(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", patients=1, seed=1, segmenters=("good",), images=False)
    pred = tmp_path / "data" / "predictions" / "good"
    shutil.copy(pred / "patient001_ED.nii.gz", pred / "patient777_ED.nii.gz")
    out = tmp_path / "report"
    args = ["evaluate", "--gt", str(tmp_path / "data" / "gt"), "--pred", f"good={pred}", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--batch", "2", "--no-plots"])
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
        app, ["evaluate", "--gt", str(tmp_path / "gt"), "--pred", spec, "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_no_ground_truth_writes_the_report_through_the_console_script(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", patients=1, seed=1, segmenters=("good",), images=False)
    pred = tmp_path / "data" / "predictions" / "good"
    ran = run_cli(
        "evaluate",
        *("--gt", "data/gt", "--pred", f"good={pred}", "--out", "report"),
        *("--no-ground-truth", "--no-plots", "--device", "cpu"),
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran
    assert "2 volumes of 1 segmenters evaluated" in ran.stdout
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["flags"]["false_alarm"]["volume_any"] == {
        "rate": None,
        "flagged": 0,
        "erroneous": 0,
        "n": 0,
    }  # nan is written as null
    assert len((tmp_path / "report" / "cases.csv").read_text().splitlines()) == 1 + 2 * 3


def test_cases_csv_is_kept_when_the_summary_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.evaluation.run as run

    write_dataset(tmp_path / "data", patients=1, seed=1, segmenters=("good",), images=False)
    pred = tmp_path / "data" / "predictions" / "good"

    def broken(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("summary failed")

    monkeypatch.setattr(run, "summarise", broken)
    args = ["evaluate", "--gt", str(tmp_path / "data" / "gt"), "--pred", f"good={pred}"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r"), "--device", "cpu", "--no-plots"])
    assert result.exit_code != 0 and isinstance(result.exception, RuntimeError)
    assert len((tmp_path / "r" / "cases.csv").read_text().splitlines()) == 1 + 4 * 3  # with ground truth


@pytest.mark.slow
def test_evaluate_db_records_the_real_metrics_of_the_scored_predictions(tmp_path: Path, db_url: str) -> None:
    """``good`` is scored into the database (by the backfill, from a copy elsewhere: files are found by
    their bytes), ``poor`` is not; ``evaluate --db`` records the real Dice/HD of cases.csv for ``good``."""
    write_dataset(tmp_path / "data", patients=1, seed=1, segmenters=("good", "poor"), images=False)
    preds = tmp_path / "data" / "predictions"
    shutil.copytree(preds / "good", tmp_path / "archive" / "good", ignore=shutil.ignore_patterns("*.csv"))
    scored = run_cli(
        "backfill", "archive", "--db", db_url, "--local-cpus", "1", "--folders-mean", "segmenter",
        "--no-artifacts", "--no-progress", cwd=tmp_path, timeout_s=300,
    )  # fmt: skip
    assert scored.returncode == 0, scored
    assert "2 files: 2 scored" in scored.stdout
    ran = run_cli(
        "evaluate", "--gt", "data/gt", "--pred", f"good={preds / 'good'}", "--pred", f"poor={preds / 'poor'}",
        "--out", "report", "--no-plots", "--device", "cpu", "--db", db_url, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran
    assert "realized metrics recorded for 2 scored files (2 evaluated predictions not in the database)" in (
        ran.stdout
    )
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["realized"] == {"recorded": 2, "not_in_database": 2}

    cases = pd.read_csv(tmp_path / "report" / "cases.csv")
    expected = {
        (row.case, row.structure): (row.dice, row.hd_mm)
        for row in cases[cases["segmenter"] == "good"].itertuples()
    }
    with open_session(db_url) as session:
        realized = estimated_vs_realized(session)
    assert len(expected) == 6 and len(realized) == 6
    assert set(realized["source"]) == {"evaluate"} and set(realized["segmenter_name"]) == {"good"}
    for row in realized.itertuples():
        dice, hd_mm = expected[(f"{row.case_key}_{row.phase}", row.structure)]
        assert row.dsc == pytest.approx(dice, abs=1e-9) and 0.5 < row.dsc < 1.0
        assert row.hd_mm == pytest.approx(hd_mm, abs=1e-9) and math.isfinite(row.hd_mm)
        assert math.isfinite(row.edsc)  # the backfill's calibrated estimate, beside it


def test_evaluate_db_refuses_an_unmigrated_database_before_scoring(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", patients=1, seed=1, segmenters=("good",), images=False)
    pred = tmp_path / "data" / "predictions" / "good"
    args = ["evaluate", "--gt", str(tmp_path / "data" / "gt"), "--pred", f"good={pred}"]
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r"), "--db", empty])
    assert result.exit_code == 1, result.output
    assert "cmr-monitor db upgrade" in result.output
    assert not (tmp_path / "r").exists()
