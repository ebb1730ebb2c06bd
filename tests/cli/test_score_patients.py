"""``cmr-monitor score --patients``: the per-patient table, through the installed console script."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.phantoms import phantom_volume, write_phantom


def _cli() -> str:
    found = shutil.which("cmr-monitor", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the cmr-monitor console script is not installed")
    return found


def _ml(seed: int, phase: str, label: int) -> float:
    volume = phantom_volume(seed, phase)
    return float(np.count_nonzero(volume.labels == label)) * float(np.prod(volume.spacing_mm)) / 1000


def test_score_pairs_ed_and_es_by_case_and_reports_a_waiting_case(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    write_phantom(masks / "patient001_ES.nii.gz", seed=3, phase="ES")  # ES first in name order
    write_phantom(masks / "patient001_ED.nii.gz", seed=3, phase="ED")
    write_phantom(masks / "patient002_ED.nii.gz", seed=4, phase="ED")  # its ES never comes
    table = tmp_path / "patients.csv"
    run = subprocess.run(
        [
            _cli(),
            "score",
            str(masks),
            "--device",
            "cpu",
            "--format",
            "csv",
            "--patients",
            str(table),
            "--out",
            str(tmp_path / "qc"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    rows = pd.read_csv(table).set_index("case_key")
    assert set(rows.index) == {"patient001", "patient002"}
    done, waiting = rows.loc["patient001"], rows.loc["patient002"]
    assert bool(done["complete"]) and not bool(waiting["complete"])
    assert waiting["missing"] == "ES" and math.isnan(waiting["lv_ef_pct"])
    edv, esv = _ml(3, "ED", 3), _ml(3, "ES", 3)
    assert done["lv_edv_ml"] == pytest.approx(edv)
    assert done["lv_esv_ml"] == pytest.approx(esv)
    assert done["lv_ef_pct"] == pytest.approx(100 * (edv - esv) / edv)
    assert done["lv_mass_g"] == pytest.approx(1.05 * _ml(3, "ED", 2))
    # the shipped calibration gives every index an estimate with its interval
    for column in ("lv_ef_pct", "lv_edv_ml", "rv_ef_pct", "lv_mass_g"):
        assert done[f"est_error_{column}_lo"] <= done[f"est_error_{column}"] <= done[f"est_error_{column}_hi"]
    assert isinstance(done["calibration_version"], str) and done["calibration_version"]
    assert (tmp_path / "qc" / "patients.csv").read_text() == table.read_text()
