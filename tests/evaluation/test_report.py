"""Tests of ``monitor.evaluation.report``: the files written and their stable keys."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from monitor.evaluation import CASE_COLUMNS, write_report


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
    assert set(data["flags"]) == {
        "erroneous_vs_missing",
        "flagged_vs_failure",
        "review_vs_failure",
        "false_alarm",
    }
    assert set(data["aurc"]) == {"LV", "RV", "MYO", "all", "volume"}
    assert set(data["aurc"]["volume"]) == {"dice", "failure"}
    written_cases = pd.read_csv(out / "cases.csv")
    assert tuple(written_cases.columns) == CASE_COLUMNS and len(written_cases) == len(cases)
    report = (out / "report.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (out / link).is_file(), link
    assert "risk_coverage.png" in report
