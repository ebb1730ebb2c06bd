"""``cmr-monitor evaluate --families`` through the installed console script, on phantoms with their MR-like
images paired beside the ground truth."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from monitor.evaluation import CASE_COLUMNS
from monitor.sim import write_dataset
from monitor.sim.failure_set import write_failure_set
from tests.evaluation.test_families import _console


def test_evaluate_families_through_the_console_script(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", patients=2, seed=4, segmenters=("good",), images=True)
    gt = tmp_path / "data" / "gt"
    families = ["missing_basal", "swapped_slices", "far_component"]
    summary = write_failure_set(gt, tmp_path / "failures", families=families, seed=0)
    out = tmp_path / "report"
    result = _console(
        "evaluate", "--gt", gt, "--pred", f"good={tmp_path / 'data' / 'predictions' / 'good'}",
        "--families", summary.manifest, "--out", out, "--device", "cpu", "--batch", "4", "--no-plots",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "summary.json").read_text())
    sets = data["families"]["sets"]
    assert list(sets) == [s.name for s in summary.sets]
    assert data["inputs"]["families"] == list(sets)
    assert data["segmenters"] == ["good"] and data["n_volumes"] == 4  # the sets are not pooled in
    assert all(s["n_volumes"] == 4 for s in sets.values())
    far = sets["far_component-10"]
    assert far["clearly_wrong"] and far["hd_mm"] >= 60.0 and far["dice"] > 0.95
    basal = sets["missing_basal-3"]
    assert basal["dice"] < sets["missing_basal-1"]["dice"] and basal["hd_mm"] >= 10.0
    assert data["images"]["volumes_with_image"] == data["images"]["volumes"] > 0
    for key in (
        "correlation_refined",
        "flags_plain",
        "volume_failure",
        "correlation",
        "flags",
        "per_segmenter",
    ):
        assert key in data
    wrong = data["families"]["clearly_wrong"]
    assert wrong["n_volumes"] == 4 * sum(s["clearly_wrong"] for s in sets.values())
    with (out / "cases.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert set(CASE_COLUMNS) <= set(rows[0])
    assert {r["segmenter"] for r in rows} == {"good", "ground_truth", *sets}
    assert all(math.isfinite(float(r["pdsc"])) for r in rows if r["segmenter"] == "good" and r["pdsc"])
    report = (out / "report.md").read_text()
    assert (
        "## Failure families" in report and "## Plain vs refined" in report and "far_component-10 *" in report
    )
    assert "clearly wrong flagged:" in result.stdout and "family swapped_slices-1 *" in result.stdout
