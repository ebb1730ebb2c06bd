"""Estimates and the failure model's P(failure) stored beside pDSC/pHD with the calibration version, and
realized metrics joined to them ("estimated vs realized"), on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from monitor.qc.labels import Structure
from monitor.qc.records import Estimate, StructureScore
from monitor.store import (
    FileFilter,
    enqueue_file,
    estimated_vs_realized,
    export_frame,
    file_ids_by_hash,
    get_case,
    list_alerts,
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
                p_failure=0.83 if i == 0 else None,  # the failure model's, for LV only
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
    assert lv.p_failure == 0.83
    assert lv.calibration_version == "acdc-dev-test" and lv.segmenter_version == "1.0"
    rv = frame[(frame.file_id == calibrated) & (frame.structure == "RV")].iloc[0]
    assert math.isnan(rv.hd_mm) and math.isnan(rv.p_failure)  # estimated, but no failure model
    myo = frame[frame.file_id == plain].iloc[0]
    assert math.isnan(myo.edsc) and math.isnan(myo.p_failure) and pd.isna(myo.calibration_version)
    case = get_case(session, calibrated)
    assert case is not None
    assert case.structures[0].structure == "LV" and case.structures[0].p_failure == 0.83
    assert all(math.isnan(s.p_failure) for s in case.structures[1:])
    read = [(s.edsc, s.edsc_lo, s.edsc_hi, s.ehd_mm, s.ehd_mm_lo, s.ehd_mm_hi) for s in case.structures]
    assert read == [(0.8 + 0.01 * i, 0.7, 0.9, 9.0 + i, 5.0, 20.0) for i in range(3)]  # as written
    assert case.calibration_version == "acdc-dev-test"
    uncalibrated = get_case(session, plain)
    assert uncalibrated is not None and uncalibrated.calibration_version is None
    assert all(math.isnan(s.edsc) and math.isnan(s.ehd_mm_hi) for s in uncalibrated.structures)
    only_v2 = estimated_vs_realized(session, FileFilter(segmenter_version="2.0"))
    assert list(only_v2.file_id) == [plain]
    with pytest.raises(ValueError, match="source"):
        record_realized(session, plain, {Structure.LV: (1.0, 0.0)}, source="guess")


@pytest.fixture(scope="module")
def shipped_scores():
    """A good phantom and a failing segmentation of another, scored with the shipped calibration."""
    from monitor.io.calibration import default_calibration_path, load_calibration
    from monitor.model.scorer import Scorer
    from tests.phantoms import phantom_volume, segmented_volume

    if not default_calibration_path().is_file():
        pytest.skip("no shipped calibration")
    scorer = Scorer(device="cpu", calibration=load_calibration())
    failing, _ = segmented_volume(3, "failing")
    return [result.score for result in scorer.score_batch([phantom_volume(3), failing])]


def _store(session, scores, prefix: str) -> dict:
    """Each score stored as a scored file ``<prefix><i>_ED`` of unet 1.0: file id -> score, in order."""
    model_id = register_model(session, f"{ord(prefix):02x}" * 32, {"epochs": 1})
    stored = {}
    for i, score in enumerate(scores):
        file_id, _ = enqueue_file(
            session,
            path=f"/watch/unet/1.0/{prefix}{i}_ED.nii.gz",
            content_hash=f"{ord(prefix):02x}{i:0>62}",
            case_key=f"{prefix}{i}",
            phase="ED",
            segmenter_name="unet",
            segmenter_version="1.0",
            received_at=T0,
        )
        record_scores(session, file_id, score, model_id=model_id, artifacts={}, scored_at=T0)
        stored[file_id] = score
    return stored


def test_the_shipped_failure_model_is_stored_and_read_back(session, shipped_scores):
    """``p_failure`` of a real score (shipped calibration, which has a failure model) is stored as
    computed and read back by ``get_case``, the alert list's records and the export."""
    stored = _store(session, shipped_scores, "p")
    exported = export_frame(session).set_index(["file_id", "structure"])
    present = 0
    for file_id, score in stored.items():
        case = get_case(session, file_id)
        assert case is not None
        for computed, read in zip(score.structures, case.structures, strict=True):
            value = exported.loc[(file_id, str(read.structure)), "p_failure"]
            if computed.p_failure is None:  # a structure missing from the mask has no estimate
                assert computed.mask_voxels == 0 and math.isnan(read.p_failure) and math.isnan(value)
                continue
            present += 1
            assert 0.0 <= read.p_failure <= 1.0
            assert read.p_failure == computed.p_failure == value  # a float column: stored exactly
    assert present >= 5
    good, failing = (get_case(session, file_id) for file_id in stored)
    assert good is not None and failing is not None
    assert max(s.p_failure for s in good.structures) < 0.1  # a ground-truth phantom
    flagged = [s for s in failing.structures if "ehd_high" in s.reasons or "edsc_low" in s.reasons]
    assert flagged and all(s.p_failure >= 0.5 for s in flagged)  # what the estimate flags stand on


#: The estimate columns of ``structure_scores`` (and the export), in order.
_ESTIMATES = ("edsc", "edsc_lo", "edsc_hi", "ehd_mm", "ehd_mm_lo", "ehd_mm_hi")


def _computed(score: StructureScore) -> tuple[float, ...] | None:
    """The six estimates of a computed structure score, in ``_ESTIMATES`` order; None without any."""
    if score.edsc is None or score.ehd_mm is None:
        return None
    return (
        score.edsc.value,
        score.edsc.lo,
        score.edsc.hi,
        score.ehd_mm.value,
        score.ehd_mm.lo,
        score.ehd_mm.hi,
    )


@pytest.fixture(scope="module")
def uncalibrated_score():
    """A failing segmentation of a phantom scored without a calibration (the paper's flags)."""
    from monitor.model.scorer import Scorer
    from tests.phantoms import segmented_volume

    failing, _ = segmented_volume(3, "failing")
    return Scorer(device="cpu", calibration=None).score_batch([failing])[0].score


def test_the_shipped_estimates_are_stored_and_read_back(session, shipped_scores, uncalibrated_score):
    """eDSC and eHD with their intervals of real scores (shipped calibration) are stored as computed and
    read back by ``get_case``, the alert list's records and the export, with the calibration version; a
    file scored without a calibration reads nan (empty in the export) and no version."""
    from monitor.io.calibration import load_calibration

    version = load_calibration().version
    stored = _store(session, [*shipped_scores, uncalibrated_score], "e")
    exported = export_frame(session).set_index(["file_id", "structure"])
    alerts = {a.file_id: a for a in list_alerts(session)}
    good, failing, plain = stored
    assert set(alerts) == {failing, plain}  # both flagged: one by its estimates, one by the paper's rule
    estimated = 0
    for file_id, score in stored.items():
        case = get_case(session, file_id)
        assert case is not None
        assert case.calibration_version == score.calibration_version
        assert set(exported.loc[file_id, "calibration_version"].fillna("none")) == {
            score.calibration_version or "none"
        }
        listed = alerts[file_id].structures if file_id in alerts else case.structures
        for computed, read, in_list in zip(score.structures, case.structures, listed, strict=True):
            values = tuple(getattr(read, name) for name in _ESTIMATES)
            row = exported.loc[(file_id, str(read.structure))]
            assert tuple(getattr(in_list, name) for name in _ESTIMATES) == pytest.approx(values, nan_ok=True)
            expected = _computed(computed)
            if expected is None:  # no calibration, or a structure missing from the mask
                assert all(math.isnan(v) for v in values)
                assert all(math.isnan(row[name]) for name in _ESTIMATES)
                continue
            estimated += 1
            assert values == expected  # float columns: stored exactly
            assert tuple(row[name] for name in _ESTIMATES) == expected
            assert values[1] <= values[0] <= values[2] and values[4] <= values[3] <= values[5]
    assert estimated >= 5
    assert (stored[good].calibration_version, stored[plain].calibration_version) == (version, None)
    assert all(math.isnan(s.edsc) for s in alerts[plain].structures)
    worst = min(s.edsc for s in alerts[failing].structures if not math.isnan(s.edsc))
    assert worst < min(s.edsc for s in get_case(session, good).structures)  # type: ignore[union-attr]
