"""Estimates stored beside pDSC/pHD with the calibration version, and realized metrics joined to them
("estimated vs realized"), on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from monitor.qc.labels import Structure
from monitor.qc.records import Estimate
from monitor.store import (
    FileFilter,
    enqueue_file,
    estimated_vs_realized,
    file_ids_by_hash,
    record_realized,
    record_scores,
    register_model,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _scored(session, make_score, key: str, version: str, *, calibrated: bool) -> int:
    file_id, _ = enqueue_file(
        session,
        path=f"/watch/unet/{version}/{key}_ED.nii.gz",
        content_hash=f"{key:0>64}",
        case_key=key,
        phase="ED",
        segmenter_name="unet",
        segmenter_version=version,
        received_at=T0,
    )
    score = make_score()
    if calibrated:
        items = tuple(
            replace(
                s,
                edsc=Estimate(value=0.8 + 0.01 * i, lo=0.7, hi=0.9),
                ehd_mm=Estimate(value=9.0 + i, lo=5.0, hi=20.0),
            )
            for i, s in enumerate(score.structures)
        )
        score = replace(score, structures=items, calibration_version="acdc-dev-test")
    model_id = register_model(session, "ab" * 32, {"epochs": 1})
    record_scores(session, file_id, score, model_id=model_id, artifacts={}, scored_at=T0)
    return file_id


def test_estimates_and_realized_metrics_round_trip(session, make_score):
    calibrated = _scored(session, make_score, "a1", "1.0", calibrated=True)
    plain = _scored(session, make_score, "a2", "2.0", calibrated=False)
    assert file_ids_by_hash(session, [f"{'a1':0>64}", "f" * 64]) == {f"{'a1':0>64}": calibrated}
    record_realized(
        session, calibrated, {Structure.LV: (0.82, 8.5), Structure.RV: (0.7, math.nan)}, source="calibrate"
    )
    # replacing a structure's value keeps one row per file and structure
    record_realized(session, calibrated, {Structure.LV: (0.83, 8.0)}, source="evaluate")
    record_realized(session, plain, {Structure.MYO: (0.75, 12.0)}, source="demo")
    frame = estimated_vs_realized(session)
    assert len(frame) == 3
    lv = frame[(frame.file_id == calibrated) & (frame.structure == "LV")].iloc[0]
    assert (lv.dsc, lv.hd_mm, lv.source) == (0.83, 8.0, "evaluate")
    assert (lv.edsc, lv.edsc_lo, lv.edsc_hi, lv.ehd_mm) == (0.8, 0.7, 0.9, 9.0)
    assert lv.calibration_version == "acdc-dev-test" and lv.segmenter_version == "1.0"
    rv = frame[(frame.file_id == calibrated) & (frame.structure == "RV")].iloc[0]
    assert math.isnan(rv.hd_mm)
    myo = frame[frame.file_id == plain].iloc[0]
    assert math.isnan(myo.edsc) and pd.isna(myo.calibration_version)
    only_v2 = estimated_vs_realized(session, FileFilter(segmenter_version="2.0"))
    assert list(only_v2.file_id) == [plain]
    with pytest.raises(ValueError, match="source"):
        record_realized(session, plain, {Structure.LV: (1.0, 0.0)}, source="guess")
