"""The evidence of a score and its MR image, stored and read back on SQLite and PostgreSQL: refined
pDSC/pHD, the refined pGT's volume, every check (code, value, verdict, slices), and whether, which and
why not an image was used; through ``record_scores``, ``bulk_insert_scored``, ``get_case``, the alert
list and the export."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.io.images import ImagePairing
from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Check, StructureScore, VolumeScore
from monitor.store import (
    FinishedFile,
    StoredCheck,
    bulk_insert_scored,
    enqueue_file,
    get_case,
    iter_export_rows,
    list_alerts,
    record_scores,
    register_model,
)
from monitor.store.models import StructureScoreRow

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
#: Every reason code as a failed check: what the evidence stage adds flows through unchanged.
ALL_CHECKS = tuple(
    Check(code=code, value=float(i) + 0.25, passed=i % 2 == 0, slices=(i, i + 1))
    for i, code in enumerate(ReasonCode)
)


def _score(*, image_used: bool = False, evidence: tuple[Check, ...] = ALL_CHECKS) -> VolumeScore:
    """LV suspicious with refined values and ``evidence``; RV ok without refined values (nan); MYO
    missing (nan plain metrics, an infinite check value)."""
    lv = StructureScore(
        structure=Structure.LV,
        pdsc=0.91,
        phd_mm=5.0,
        flag=FlagLevel.SUSPICIOUS,
        reasons=tuple(c.code for c in evidence if not c.passed),
        mask_voxels=1000,
        pgt_voxels=1200,
        mask_volume_ml=150.0,
        pdsc_3d=0.62,
        phd_mm_3d=38.5,
        pgt_volume_ml=171.25,
        evidence=evidence,
    )
    rv = StructureScore(
        structure=Structure.RV,
        pdsc=0.85,
        phd_mm=7.0,
        flag=FlagLevel.OK,
        reasons=(),
        mask_voxels=900,
        pgt_voxels=950,
        mask_volume_ml=140.0,
    )
    myo = StructureScore(
        structure=Structure.MYO,
        pdsc=0.0,
        phd_mm=math.nan,
        flag=FlagLevel.ERRONEOUS,
        reasons=(ReasonCode.MISSING,),
        mask_voxels=0,
        pgt_voxels=800,
        mask_volume_ml=0.0,
        pdsc_3d=0.0,
        phd_mm_3d=math.nan,
        pgt_volume_ml=120.0,
        evidence=(Check(code=ReasonCode.MISSING, value=math.inf, passed=False),),
    )
    return VolumeScore(
        structures=(lv, rv, myo),
        flag=FlagLevel.ERRONEOUS,
        shape=(10, 224, 256),
        spacing_mm=(10.0, 1.5625, 1.5625),
        slices_scored=8,
        image_used=image_used,
    )


def _enqueue(session: Session, name: str, image_path: str | None = None) -> int:
    file_id, _ = enqueue_file(
        session,
        path=f"/watch/unet/1/{name}.nii.gz",
        content_hash=f"{name:0>64}",
        case_key=name,
        phase="ED",
        segmenter_name="unet",
        segmenter_version="1",
        image_path=image_path,
        received_at=T0,
    )
    return file_id


def _expected_checks(checks: tuple[Check, ...]) -> list[tuple[str, float, bool, tuple[int, ...]]]:
    return [(str(c.code), c.value, c.passed, c.slices) for c in checks]


def _as_tuples(checks: tuple[StoredCheck, ...]) -> list[tuple[str, float, bool, tuple[int, ...]]]:
    return [(c.code, c.value, c.passed, c.slices) for c in checks]


def test_record_scores_round_trip(session: Session) -> None:
    model_id = register_model(session, "a" * 64, {})
    file_id = _enqueue(session, "p1", image_path="/sidecar/p1.nii.gz")
    used = ImagePairing(path="/images/p1_0000.nii.gz", used=True)
    record_scores(session, file_id, _score(image_used=True), model_id=model_id, artifacts={}, image=used)

    case = get_case(session, file_id)
    assert case is not None
    assert (case.image_used, case.image_path, case.image_reason, case.image_detail) == (
        True,
        "/images/p1_0000.nii.gz",  # the image paired replaces the sidecar's
        None,
        None,
    )
    lv, rv, myo = case.structures
    assert (lv.pdsc, lv.phd_mm) == (0.91, 5.0)  # the paper's plain values stay
    assert (lv.pdsc_3d, lv.phd_mm_3d, lv.pgt_volume_ml) == (0.62, 38.5, 171.25)
    assert _as_tuples(lv.evidence) == _expected_checks(ALL_CHECKS)
    assert lv.reasons == tuple(str(c.code) for c in ALL_CHECKS if not c.passed)
    assert [c.code for c in lv.failed_checks()] == [str(c.code) for c in ALL_CHECKS if not c.passed]
    assert math.isnan(rv.pdsc_3d) and math.isnan(rv.phd_mm_3d) and math.isnan(rv.pgt_volume_ml)
    assert rv.evidence == ()
    (missing,) = myo.evidence
    assert missing.code == "missing" and math.isnan(missing.value)  # inf is stored as null
    assert math.isnan(myo.phd_mm_3d) and myo.pdsc_3d == 0.0


def test_an_image_not_used_keeps_its_reason(session: Session) -> None:
    model_id = register_model(session, "a" * 64, {})
    mismatch = ImagePairing(
        path="/images/p2_0000.nii.gz", used=False, reason="geometry_mismatch", detail="image shape [9, 8, 8]"
    )
    missing = ImagePairing(path="/sidecar/gone.nii.gz", used=False, reason="not_found", detail="no file")
    none_found = ImagePairing(path=None, used=False, reason="not_found", detail="no MR image found")
    ids = []
    for name, pairing in (("p2", mismatch), ("p3", missing), ("p4", none_found)):
        ids.append(_enqueue(session, name, image_path="/sidecar/gone.nii.gz" if name == "p3" else None))
        record_scores(session, ids[-1], _score(), model_id=model_id, artifacts={}, image=pairing)
    cases = [get_case(session, file_id) for file_id in ids]
    assert [(c.image_used, c.image_path, c.image_reason) for c in cases if c is not None] == [
        (False, "/images/p2_0000.nii.gz", "geometry_mismatch"),
        (False, "/sidecar/gone.nii.gz", "not_found"),
        (False, None, "not_found"),
    ]
    assert cases[0] is not None and cases[0].image_detail == "image shape [9, 8, 8]"


def test_an_image_paired_but_not_evaluated(session: Session) -> None:
    """The pairing found a usable image, yet the score ran no image check (an empty mask, a constant
    image): stored as not used, ``not_evaluated``."""
    model_id = register_model(session, "a" * 64, {})
    file_id = _enqueue(session, "p8")
    paired = ImagePairing(path="/images/p8_0000.nii.gz", used=True)
    record_scores(session, file_id, _score(image_used=False), model_id=model_id, artifacts={}, image=paired)
    case = get_case(session, file_id)
    assert case is not None
    assert (case.image_used, case.image_path, case.image_reason) == (False, paired.path, "not_evaluated")


def test_rows_scored_without_evidence_read_back_empty(session: Session) -> None:
    """A structure row without the evidence columns (scored before e13a0evidence, or by an older
    writer) reads back nan and no checks; unknown codes and odd entries of another version are tolerated."""
    model_id = register_model(session, "a" * 64, {})
    file_id = _enqueue(session, "p5")
    record_scores(session, file_id, _score(evidence=()), model_id=model_id, artifacts={})
    odd = [{"code": "from_a_newer_version", "value": "n/a", "slices": [2, "x"]}, {"value": 1.0}, "junk"]
    session.execute(
        sa.update(StructureScoreRow).where(StructureScoreRow.structure == Structure.RV).values(evidence=None)
    )
    session.execute(
        sa.update(StructureScoreRow).where(StructureScoreRow.structure == Structure.LV).values(evidence=odd)
    )
    session.commit()
    case = get_case(session, file_id)
    assert case is not None
    lv, rv, _ = case.structures
    assert rv.evidence == ()
    (newer,) = lv.evidence
    assert (newer.code, newer.passed, newer.slices) == ("from_a_newer_version", True, (2,))
    assert math.isnan(newer.value)


def test_alerts_and_export_carry_the_evidence(session: Session) -> None:
    model_id = register_model(session, "a" * 64, {})
    file_id = _enqueue(session, "p6")
    pairing = ImagePairing(path=None, used=False, reason="not_found", detail="no MR image found")
    record_scores(session, file_id, _score(), model_id=model_id, artifacts={}, image=pairing)

    (alert,) = list_alerts(session)
    assert _as_tuples(alert.structures[0].evidence) == _expected_checks(ALL_CHECKS)
    rows = list(iter_export_rows(session))
    assert [r["structure"] for r in rows] == ["LV", "RV", "MYO"]
    lv, rv, myo = rows
    assert (lv["pdsc"], lv["pdsc_3d"], lv["phd_mm_3d"], lv["pgt_volume_ml"]) == (0.91, 0.62, 38.5, 171.25)
    assert (lv["image_used"], lv["image_reason"]) == (False, "not_found")
    assert [c["code"] for c in json.loads(lv["evidence"])] == [str(c.code) for c in ALL_CHECKS]
    assert rv["pdsc_3d"] is None and json.loads(rv["evidence"]) == []
    assert json.loads(myo["evidence"]) == [{"code": "missing", "value": None, "passed": False, "slices": []}]


@pytest.mark.parametrize("image_used", [True, False])
def test_bulk_insert_stores_the_evidence(session: Session, image_used: bool) -> None:
    model_id = register_model(session, "a" * 64, {})
    item = FinishedFile(
        path="/import/p7.nii.gz",
        content_hash="7" * 64,
        case_key="p7",
        phase="ES",
        segmenter_name="unet",
        segmenter_version="2",
        received_at=T0,
        done_at=T0 + timedelta(seconds=3),
        score=_score(image_used=image_used),
        image_path="/images/p7.nii.gz",
        image_reason=None if image_used else "geometry_mismatch",
        image_detail=None if image_used else "image shape [9, 8, 8] differs",
    )
    (file_id,) = bulk_insert_scored(session, [item], model_id=model_id)
    case = get_case(session, file_id)
    assert case is not None
    expected_reason = None if image_used else "geometry_mismatch"
    assert (case.image_used, case.image_path, case.image_reason) == (
        image_used,
        "/images/p7.nii.gz",
        expected_reason,
    )
    assert _as_tuples(case.structures[0].evidence) == _expected_checks(ALL_CHECKS)
    assert case.structures[0].pgt_volume_ml == 171.25
