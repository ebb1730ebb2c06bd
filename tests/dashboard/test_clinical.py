"""dashboard.clinical (pure transforms) and the Clinical indices page on a database with patients."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dashboard.clinical import bland_altman_frame, lvef_error_daily, volume_table
from monitor.qc.clinical import VolumeIndices
from monitor.store import upgrade
from tests import pg
from tests.dashboard.conftest import Seeded


@pytest.fixture
def private_db(seeded: Seeded, tmp_path) -> Iterator[Seeded]:
    """An empty migrated database of the seeded one's backend: this test adds patients "now", which
    would move the shared seeded database's overview (its date range ends at the newest file)."""
    if seeded.backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'clinical.db'}"
        upgrade(url)
        yield Seeded(backend="sqlite", url=url, artifacts_dir=tmp_path, summary=seeded.summary)
        return
    server = pg.Server(pg.require_admin_url("dashboard"))
    name = f"cmrclin_{uuid.uuid4().hex[:12]}"
    server.create_database(name)
    try:
        url = server.url_of(name)
        upgrade(url)
        yield Seeded(backend="postgresql", url=url, artifacts_dir=tmp_path, summary=seeded.summary)
    finally:
        from tests.dashboard.conftest import _dispose_streamlit_engines

        _dispose_streamlit_engines()
        server.drop_database(name)
        server.close()


def _patients() -> pd.DataFrame:
    day = datetime(2026, 6, 1, 9, tzinfo=UTC)
    return pd.DataFrame(
        {
            "segmenter": ["unet", "unet", "unet", "unet"],
            "segmenter_version": ["1", "1", "1", "2"],
            "complete": [True, True, False, True],
            "est_error_lv_ef_pct": [2.0, 6.0, math.nan, 3.0],
            "updated_at": [day, day + timedelta(hours=2), day, day + timedelta(days=1)],
        }
    )


def test_daily_estimated_lvef_error_per_version_leaves_incomplete_cases_out() -> None:
    daily = lvef_error_daily(_patients()).set_index("version")
    assert daily.loc["unet 1", "n"] == 2 and daily.loc["unet 1", "median"] == pytest.approx(4.0)
    assert daily.loc["unet 1", "p90"] == pytest.approx(5.6)
    assert daily.loc["unet 2", "n"] == 1
    assert lvef_error_daily(_patients().iloc[2:3]).empty


def test_bland_altman_points_and_a_wrong_file() -> None:
    table = pd.DataFrame(
        {
            "segmenter": ["a", "b"],
            "lv_ef_pct": [60.0, 40.0],
            "gt_lv_ef_pct": [50.0, math.nan],
            "est_error_lv_ef_pct": [9.0, 1.0],
        }
    )
    points = bland_altman_frame(table)
    assert points.to_dict("records") == [
        {"segmenter": "a", "mean": 55.0, "difference": 10.0, "estimated_error": 9.0}
    ]
    with pytest.raises(ValueError, match=r"patients\.csv"):
        bland_altman_frame(pd.DataFrame({"x": [1]}))


def test_volume_table_mask_beside_pgt() -> None:
    indices = VolumeIndices(
        lv_volume_ml=100.0,
        rv_volume_ml=90.0,
        myo_volume_ml=80.0,
        pgt_lv_volume_ml=110.0,
        pgt_rv_volume_ml=90.0,
        pgt_myo_volume_ml=70.0,
        n_slices=10,
        lv_slices=8,
        rv_slices=7,
        heart_slices=9,
        pgt_lv_slices=8,
        margin_slices=1,
    )
    table = volume_table(indices).set_index("quantity")
    assert table.loc["LV cavity (ml)", "difference"] == pytest.approx(-10.0)
    assert table.loc["LV mass (g)", "mask"] == pytest.approx(84.0)
    assert table.loc["LV mass (g)", "pgt"] == pytest.approx(73.5)


def test_clinical_page_shows_patients_and_a_bland_altman_upload(private_db, app_test) -> None:
    from monitor.qc.clinical import ClinicalPolicy
    from monitor.qc.labels import STRUCTURES
    from monitor.qc.levels import FlagLevel
    from monitor.qc.records import StructureScore, VolumeScore
    from monitor.store import enqueue_file, open_session, record_scores, register_model, update_patient
    from monitor.store.clinical import record_volume_indices
    from tests.store.test_clinical import ED, ES

    score = VolumeScore(
        structures=tuple(
            StructureScore(
                structure=s,
                pdsc=0.9,
                phd_mm=4.0,
                flag=FlagLevel.OK,
                reasons=(),
                mask_voxels=10,
                pgt_voxels=10,
                mask_volume_ml=1.0,
            )
            for s in STRUCTURES
        ),
        flag=FlagLevel.OK,
        shape=(10, 20, 20),
        spacing_mm=(10.0, 1.5, 1.5),
        slices_scored=8,
    )
    now = datetime.now(UTC)
    with open_session(private_db.url) as session:
        model_id = register_model(session, "e1" * 32, {})
        for phase, indices in (("ED", ES), ("ES", ED)):  # impossible: ESV > EDV
            file_id, _ = enqueue_file(
                session,
                path=f"/watch/clin/1/zz_{phase}.nii.gz",
                content_hash=f"{phase:e>64}",
                case_key="zz-clinical",
                phase=phase,
                segmenter_name="clin",
                segmenter_version="1",
            )
            record_scores(session, file_id, score, model_id=model_id, artifacts={}, scored_at=now)
            record_volume_indices(session, file_id, indices)
            update_patient(session, file_id, calibration=None, policy=ClinicalPolicy(), now=now)
    at = app_test(private_db).run()
    at.switch_page("views/clinical.py").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Patients"] == "1" and metrics["Suspicious"] == "1"
    flagged = at.dataframe[0].value
    assert (
        list(flagged["case_key"]) == ["zz-clinical"]
        and flagged.iloc[0]["reasons"] == "ef_impossible;esv_above_edv"
    )
