"""monitor.store.clinical on SQLite and PostgreSQL: per-volume volumes, and the patient row that waits
for its second frame and comes out the same whichever frame is scored first."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from monitor.qc.clinical import ClinicalPolicy, ClinicalReason, VolumeIndices
from monitor.qc.levels import FlagLevel
from monitor.qc.records import VolumeScore
from monitor.store import enqueue_file, record_scores, register_model
from monitor.store.clinical import (
    PATIENT_COLUMNS,
    list_patients,
    patient_frame,
    record_volume_indices,
    update_patient,
    volume_indices_of,
)

T0 = datetime(2026, 5, 1, 8, tzinfo=UTC)


def _indices(lv: float, rv: float, myo: float, *, pgt_scale: float = 1.0) -> VolumeIndices:
    return VolumeIndices(
        lv_volume_ml=lv,
        rv_volume_ml=rv,
        myo_volume_ml=myo,
        pgt_lv_volume_ml=lv * pgt_scale,
        pgt_rv_volume_ml=rv * pgt_scale,
        pgt_myo_volume_ml=myo * pgt_scale,
        n_slices=10,
        lv_slices=8,
        rv_slices=7,
        heart_slices=9,
        pgt_lv_slices=8,
        margin_slices=0,
        lv_slice_ml=(0.0, lv / 2, lv / 2),
        pdsc=(0.9, math.nan, 0.8),
        phd_mm=(5.0, math.nan, 6.0),
    )


ED = _indices(150.0, 160.0, 100.0, pgt_scale=1.1)
ES = _indices(60.0, 70.0, 110.0)


def _scored(
    session: Session, make_score: Callable[..., VolumeScore], phase: str, indices: VolumeIndices, at: datetime
) -> int:
    model_id = register_model(session, "ab" * 32, {})
    file_id, _ = enqueue_file(
        session,
        path=f"/watch/unet/1/p001_{phase}.nii.gz",
        content_hash=f"{phase:0>64}",
        case_key="p001",
        phase=phase,
        segmenter_name="unet",
        segmenter_version="1",
        received_at=at,
    )
    record_scores(session, file_id, make_score(), model_id=model_id, artifacts={}, scored_at=at)
    record_volume_indices(session, file_id, indices)
    return file_id


def test_volume_indices_round_trip_with_nan_kept(session: Session, make_score) -> None:
    file_id = _scored(session, make_score, "ED", ED, T0)
    stored = volume_indices_of(session, file_id)
    assert stored is not None and stored.lv_mass_g == pytest.approx(105.0)
    assert stored.lv_slice_ml == ED.lv_slice_ml and stored.pdsc[0] == 0.9 and math.isnan(stored.pdsc[1])
    record_volume_indices(session, file_id, ES)  # replaced, not duplicated
    assert volume_indices_of(session, file_id).lv_volume_ml == 60.0  # type: ignore[union-attr]


@pytest.mark.parametrize("first", ["ED", "ES"])
def test_patient_waits_for_its_second_frame_and_ends_the_same_in_either_order(
    session: Session, make_score, first: str
) -> None:
    policy = ClinicalPolicy()
    second = "ES" if first == "ED" else "ED"
    frames = {"ED": ED, "ES": ES}
    first_id = _scored(session, make_score, first, frames[first], T0)
    waiting = update_patient(session, first_id, calibration=None, policy=policy, now=T0)
    assert waiting is not None and not waiting.complete and waiting.missing == (second,)
    (row,) = list_patients(session)
    assert (row.complete, row.missing, row.flag) == (False, (second,), None)
    assert math.isnan(row.values["lv_ef"])

    second_id = _scored(session, make_score, second, frames[second], T0 + timedelta(minutes=5))
    done = update_patient(session, second_id, calibration=None, policy=policy, now=T0 + timedelta(minutes=5))
    assert done is not None and done.complete
    (row,) = list_patients(session)
    assert row.complete and row.missing == () and row.flag == FlagLevel.OK
    assert row.values["lv_edv"] == 150.0 and row.values["lv_ef"] == pytest.approx(60.0)
    assert row.values["rv_ef"] == pytest.approx(56.25)
    assert row.values["lv_mass"] == pytest.approx(105.0)
    assert row.pgt["lv_edv"] == pytest.approx(165.0)
    assert row.pseudo_error["lv_edv"] == pytest.approx(-15.0)
    # EF of the pGTs: (165 - 60) / 165
    assert row.pseudo_error["lv_ef"] == pytest.approx(60.0 - 100 * 105 / 165)
    assert row.estimates == {}  # no calibration given
    assert {row.ed_file_id, row.es_file_id} == {first_id, second_id}


def test_impossible_indices_are_flagged_and_exported(session: Session, make_score) -> None:
    policy = ClinicalPolicy()
    ed_id = _scored(session, make_score, "ED", ES, T0)  # ED smaller than ES: ESV > EDV
    es_id = _scored(session, make_score, "ES", ED, T0)
    update_patient(session, ed_id, calibration=None, policy=policy, now=T0)
    update_patient(session, es_id, calibration=None, policy=policy, now=T0)
    (row,) = list_patients(session, complete_only=True)
    assert row.flag == FlagLevel.SUSPICIOUS
    assert set(row.reasons) == {ClinicalReason.EF_IMPOSSIBLE, ClinicalReason.ESV_ABOVE_EDV}
    frame = patient_frame(session)
    assert list(frame.columns) == list(PATIENT_COLUMNS)
    assert frame.loc[0, "lv_ef_pct"] == pytest.approx(-150.0)
    assert frame.loc[0, "reasons"] == "ef_impossible;esv_above_edv"
    assert list_patients(session, segmenters=["other"]) == []


def test_a_file_without_ed_or_es_phase_takes_no_part(session: Session, make_score) -> None:
    model_id = register_model(session, "cd" * 32, {})
    file_id, _ = enqueue_file(
        session,
        path="/watch/unet/1/p002.nii.gz",
        content_hash="f" * 64,
        case_key="p002",
        phase=None,
        segmenter_name="unet",
        segmenter_version="1",
    )
    record_scores(session, file_id, make_score(), model_id=model_id, artifacts={})
    record_volume_indices(session, file_id, ED)
    assert update_patient(session, file_id, calibration=None, policy=ClinicalPolicy()) is None
    assert list_patients(session) == []


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_patients_through_the_console_script(
    db_url: str, session: Session, make_score, tmp_path, suffix: str
) -> None:
    """``cmr-monitor export --patients``: the per-patient table beside the per-file one."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    cli = shutil.which("cmr-monitor", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("the cmr-monitor console script is not installed")
    policy = ClinicalPolicy()
    ed_id = _scored(session, make_score, "ED", ED, T0)
    update_patient(session, ed_id, calibration=None, policy=policy, now=T0)
    es_id = _scored(session, make_score, "ES", ES, T0)
    update_patient(session, es_id, calibration=None, policy=policy, now=T0)
    out, patients = tmp_path / "files.csv", tmp_path / f"patients{suffix}"
    run = subprocess.run(
        [cli, "export", "--db", db_url, "--out", str(out), "--patients", str(patients)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote 1 patients" in run.stdout
    frame = pd.read_csv(patients) if suffix == ".csv" else pd.read_parquet(patients)
    assert list(frame.columns) == list(PATIENT_COLUMNS)
    assert frame.loc[0, "case_key"] == "p001" and frame.loc[0, "lv_ef_pct"] == pytest.approx(60.0)
    bad = subprocess.run(
        [cli, "export", "--db", db_url, "--out", str(out), "--patients", str(tmp_path / "p.xlsx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--patients" in bad.stderr
