"""``cmr-monitor calibrate`` through the console script: a phantom segmenter with a known bias (its RV
dilated by 3 voxels and its LV eroded by 2, so pDSC barely moves while the real Dice drops) is
re-calibrated from 24 labelled volumes, and its estimates on held-out phantoms get closer to the truth
than the shipped calibration's; with ``--db``, the real metrics of the labelled volumes that the database
scored are recorded there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.io.calibration import default_calibration_path
from monitor.io.nifti import save_labels
from monitor.qc.labels import Structure
from monitor.qc.scores import compare_structures
from monitor.sim import dilate_structure, erode_structure
from monitor.store import estimated_vs_realized, open_session
from tests.cli.console import run_cli
from tests.phantoms import phantom_volume

pytestmark = pytest.mark.slow


def _biased(labels: np.ndarray) -> np.ndarray:
    return erode_structure(dilate_structure(labels, Structure.RV, 3), Structure.LV, 2)


def _write(root: Path, seeds: range) -> dict[str, dict[str, float]]:
    """GT and biased predictions as ``pNNN_ED/ES.nii.gz``; returns the real Dice per volume."""
    real: dict[str, dict[str, float]] = {}
    for seed in seeds:
        for phase in ("ED", "ES"):
            gt = phantom_volume(seed, phase)
            pred = _biased(gt.labels)
            name = f"p{seed:03d}_{phase}.nii.gz"
            save_labels(root / "gt" / name, gt.labels, gt.affine)
            save_labels(root / "pred" / name, pred, gt.affine)
            real[name] = {
                c.structure.value: c.dice for c in compare_structures(pred, gt.labels, gt.spacing_mm)
            }
    return real


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True, timeout=900, cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    return result


def _edsc_error(rows: list[dict], real: dict[str, dict[str, float]]) -> float:
    errors = [
        abs(row[f"edsc_{s}"] - real[Path(row["file"]).name][s])
        for row in rows
        for s in ("LV", "RV", "MYO")
        if row.get(f"edsc_{s}") is not None
    ]
    return float(np.mean(errors))


def test_calibrate_learns_a_known_bias(tmp_path: Path) -> None:
    if not default_calibration_path().is_file():
        pytest.skip("no shipped calibration in this checkout")
    site, held_out = tmp_path / "site", tmp_path / "held"
    site_real = _write(site, range(12))
    real = _write(held_out, range(40, 43))
    # two of the site's labelled volumes were scored into a database (a copy: found by their bytes)
    for name in ("p003_ED.nii.gz", "p003_ES.nii.gz"):
        (tmp_path / "archive" / "biased").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site / "pred" / name, tmp_path / "archive" / "biased" / name)
    db = f"sqlite:///{tmp_path / 'results.db'}"
    scored = run_cli(
        "backfill", "archive", "--db", db, "--migrate", "--local-cpus", "1", "--folders-mean", "segmenter",
        "--no-artifacts", "--no-progress", cwd=tmp_path, timeout_s=300,
    )  # fmt: skip
    assert scored.returncode == 0, scored
    out = tmp_path / "calib"
    result = _cli(
        "calibrate", "--gt", str(site / "gt"), "--pred", f"biased={site / 'pred'}", "--out", str(out),
        "--device", "cpu", "--version", "site-test-1", "--db", db, cwd=tmp_path,
    )  # fmt: skip
    assert "calibration site-test-1 (stack, 24 volumes, 12 patients)" in result.stdout
    assert "realized metrics recorded for 2 scored files" in result.stdout
    with open_session(db) as session:
        realized = estimated_vs_realized(session)
    assert len(realized) == 6 and set(realized["source"]) == {"calibrate"}
    for row in realized.itertuples():
        assert row.dsc == pytest.approx(site_real[f"p003_{row.phase}.nii.gz"][row.structure], abs=1e-12)
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "stack" and report["volumes"] == 24
    # cross-validated by patient, the site calibration beats the shipped one on the site's cases
    assert report["mae_mean"]["site_cv"]["edsc"] < report["mae_mean"]["base"]["edsc"]
    assert (out / "calibration.skops").is_file() and (out / "report.md").read_text().startswith(
        "# Calibration"
    )

    scores = {}
    for name, calibration in (("shipped", "shipped"), ("site", str(out / "calibration.skops"))):
        run = _cli(
            "score", str(held_out / "pred"), "--calibration", calibration, "--format", "json", "--device", "cpu",
            cwd=tmp_path,
        )  # fmt: skip
        scores[name] = json.loads(run.stdout)
    assert {r["calibration_version"] for r in scores["site"]} == {"site-test-1"}
    assert _edsc_error(scores["site"], real) < 0.7 * _edsc_error(scores["shipped"], real)
