"""monitor.evaluation.clinical: real vs estimated errors per patient, the summary keys, the outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.evaluation import GROUND_TRUTH
from monitor.evaluation.clinical import ClinicalVolume, clinical_table, summarise_clinical, write_clinical
from monitor.qc.clinical import INDICES, ClinicalPolicy, VolumeIndices


def _vi(lv: float, rv: float = 100.0, myo: float = 80.0) -> VolumeIndices:
    return VolumeIndices(
        lv_volume_ml=lv,
        rv_volume_ml=rv,
        myo_volume_ml=myo,
        pgt_lv_volume_ml=lv,
        pgt_rv_volume_ml=rv,
        pgt_myo_volume_ml=myo,
        n_slices=10,
        lv_slices=8,
        rv_slices=7,
        heart_slices=9,
        pgt_lv_slices=8,
        margin_slices=0,
    )


def test_table_pairs_phases_and_gives_real_errors() -> None:
    volumes = [
        ClinicalVolume(segmenter="a", patient="p1", phase="ES", pred=_vi(50.0, 40.0), gt=_vi(60.0, 40.0)),
        ClinicalVolume(segmenter="a", patient="p1", phase="ED", pred=_vi(150.0), gt=_vi(150.0)),
        ClinicalVolume(segmenter="a", patient="p2", phase="ED", pred=_vi(150.0), gt=_vi(150.0)),  # no ES
    ]
    table = clinical_table(volumes, calibration=None, policy=ClinicalPolicy())
    assert len(table) == 1
    row = table.iloc[0]
    assert row["case_key"] == "p1" and row["gt_lv_ef_pct"] == pytest.approx(60.0)
    assert row["lv_ef_pct"] == pytest.approx(100 * 100 / 150)
    assert row["real_error_lv_ef_pct"] == pytest.approx(100 * 100 / 150 - 60.0)
    assert row["real_error_lv_esv_ml"] == pytest.approx(-10.0)
    assert math.isnan(row["est_error_lv_ef_pct"])


def _synthetic(n: int, rng: np.random.Generator) -> pd.DataFrame:
    real = rng.uniform(0, 12, size=n)
    rows: dict[str, object] = {"segmenter": ["a"] * n, "flag": ["ok"] * n, "reasons": [""] * n}
    for index in INDICES:
        column = {"lv_ef": "lv_ef_pct", "rv_ef": "rv_ef_pct", "lv_mass": "lv_mass_g"}.get(
            index, f"{index}_ml"
        )
        rows[f"real_error_{column}"] = real * np.where(rng.random(n) < 0.5, -1, 1)
        rows[f"est_error_{column}"] = real + rng.normal(0, 1, size=n)
        rows[f"est_error_{column}_lo"] = np.clip(real - 2, 0, None)
        rows[f"est_error_{column}_hi"] = real + np.where(np.arange(n) % 10 == 0, -0.5, 2)  # 10 % miss
        rows[f"pseudo_error_{column}"] = real
    frame = pd.DataFrame(rows)
    flagged = frame["est_error_lv_ef_pct_lo"] > 5
    frame.loc[flagged, "flag"] = "suspicious"
    frame.loc[flagged, "reasons"] = "lvef_error_high"
    return frame


def test_summary_keys_and_figures() -> None:
    frame = _synthetic(200, np.random.default_rng(0))
    truth = frame.iloc[:10].assign(segmenter=GROUND_TRUTH, flag="ok", reasons="")
    summary = summarise_clinical(
        pd.concat([frame, truth], ignore_index=True), limit_pct=5.0, segmenters=["a"]
    )
    for index in INDICES:
        assert summary[index]["pearson_abs_error"] > 0.9
        assert summary[index]["coverage"] == pytest.approx(0.9)
        assert summary[index]["n"] == 200
    real = np.abs(frame["real_error_lv_ef_pct"]) > 5
    flagged = frame["reasons"] == "lvef_error_high"
    assert summary["lv_ef"]["flag_precision"] == pytest.approx((real & flagged).sum() / flagged.sum())
    assert summary["lv_ef"]["flag_recall"] == pytest.approx((real & flagged).sum() / real.sum())
    assert summary["by_segmenter"]["a"]["n_patients"] == 200
    assert summary["ground_truth_flag_rate"] == 0.0


def test_outputs(tmp_path: Path) -> None:
    frame = _synthetic(20, np.random.default_rng(1)).assign(lv_ef_pct=55.0, gt_lv_ef_pct=50.0)
    written = write_clinical(frame, tmp_path)
    assert pd.read_csv(written["patients"]).shape == frame.shape
    assert written["bland_altman"].stat().st_size > 1000
