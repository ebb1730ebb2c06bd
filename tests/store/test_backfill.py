"""``known_files`` and ``record_finished``: the batch backfill's bulk path, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.labels import STRUCTURES
from monitor.qc.levels import FlagLevel
from monitor.qc.records import VolumeScore
from monitor.store import (
    FileStatus,
    FinishedFile,
    add_review,
    claim_batch,
    enqueue_file,
    get_case,
    known_files,
    record_finished,
    register_model,
)

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _finished(path: str, content_hash: str, score: VolumeScore | None = None) -> FinishedFile:
    return FinishedFile(
        path=path,
        content_hash=content_hash,
        case_key=path.rsplit("/", 1)[-1].split("_")[0],
        phase="ED",
        segmenter_name="unet",
        segmenter_version="1.0",
        received_at=T0,
        done_at=T0 + timedelta(seconds=2),
        score=score,
        rejection=None if score is not None else ("not_nifti", "not a NIfTI file"),
    )


def _count(session: Session, table: str) -> int:
    return session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_record_finished_writes_scores_rejections_and_artifacts(
    session: Session, make_score: Callable[..., VolumeScore]
) -> None:
    model_id = register_model(session, "a" * 64, {})
    files = [_finished(f"/a/p{i}_ED.nii.gz", f"h{i}", make_score()) for i in range(3)]
    files.append(_finished("/a/bad_ED.nii.gz", "hb"))
    calls: list[tuple[int, int]] = []

    def artifacts(index: int, file_id: int) -> dict[str, str]:
        calls.append((index, file_id))
        return {"pgt": f"/art/{file_id}_pgt.nii.gz"}

    written = record_finished(session, files, model_id=model_id, artifacts=artifacts)
    assert sorted(written.file_ids) == [0, 1, 2, 3] and written.already_stored == ()
    assert sorted(calls) == sorted((i, written.file_ids[i]) for i in range(3))  # scored files only
    assert _count(session, "structure_scores") == 9 and _count(session, "artifacts") == 3
    scored = get_case(session, written.file_ids[0])
    assert scored is not None and scored.status == FileStatus.SCORED and scored.attempts == 1
    rejected = get_case(session, written.file_ids[3])
    assert rejected is not None and rejected.status == FileStatus.REJECTED
    assert rejected.rejection_reason == "not_nifti"

    known = known_files(session, ["/a/p0_ED.nii.gz", "/a/bad_ED.nii.gz", "/a/other.nii.gz"])
    assert set(known) == {("/a/p0_ED.nii.gz", "h0"), ("/a/bad_ED.nii.gz", "hb")}
    assert known[("/a/p0_ED.nii.gz", "h0")].checkpoint_hash == "a" * 64
    assert known[("/a/bad_ED.nii.gz", "hb")].status == FileStatus.REJECTED
    assert known[("/a/bad_ED.nii.gz", "hb")].checkpoint_hash is None


def test_record_finished_is_idempotent_and_leaves_stored_rows(
    session: Session, make_score: Callable[..., VolumeScore]
) -> None:
    """A content stored before (by a run, or by the daemon's queue: pending) is reported and left as it
    is; the others of the batch are written."""
    model_id = register_model(session, "a" * 64, {})
    first = record_finished(session, [_finished("/a/p0_ED.nii.gz", "h0", make_score())], model_id=model_id)
    pending_id, _ = enqueue_file(
        session, path="/a/p1_ED.nii.gz", content_hash="h1", case_key="p1", phase="ED",
        segmenter_name="unet", segmenter_version="1.0",
    )  # fmt: skip
    batch = [_finished(f"/a/p{i}_ED.nii.gz", f"h{i}", make_score()) for i in range(3)]
    written = record_finished(session, batch, model_id=model_id)
    assert written.already_stored == (0, 1) and list(written.file_ids) == [2]
    assert _count(session, "mask_files") == 3 and _count(session, "structure_scores") == 6
    assert get_case(session, first.file_ids[0]).status == FileStatus.SCORED  # type: ignore[union-attr]
    assert [c.file_id for c in claim_batch(session, worker_id="w", limit=5, lease_s=60)] == [pending_id]
    again = record_finished(session, batch, model_id=model_id)
    assert again.file_ids == {} and again.already_stored == (0, 1, 2)


def test_a_new_content_becomes_the_paths_current_row(
    session: Session, make_score: Callable[..., VolumeScore]
) -> None:
    model_id = register_model(session, "a" * 64, {})
    old = record_finished(session, [_finished("/a/p0_ED.nii.gz", "old", make_score())], model_id=model_id)
    new = record_finished(session, [_finished("/a/p0_ED.nii.gz", "new", make_score())], model_id=model_id)
    rows = dict(session.execute(sa.text("SELECT id, superseded_at FROM mask_files")).all())
    assert rows[new.file_ids[0]] is None and rows[old.file_ids[0]] is not None


def test_record_finished_refuses_a_repeated_content(
    session: Session, make_score: Callable[..., VolumeScore]
) -> None:
    model_id = register_model(session, "a" * 64, {})
    twice = [_finished("/a/p0_ED.nii.gz", "h0", make_score())] * 2
    with pytest.raises(ValueError, match="repeats"):
        record_finished(session, twice, model_id=model_id)
    assert _count(session, "mask_files") == 0


def _clinical(session: Session, file_id: int) -> None:
    """A ``volume_clinical`` row for the file (values arbitrary)."""
    session.execute(
        sa.text(
            "INSERT INTO volume_clinical (file_id, lv_volume_ml, rv_volume_ml, myo_volume_ml, lv_mass_g,"
            " pgt_lv_volume_ml, pgt_rv_volume_ml, pgt_myo_volume_ml, pgt_lv_mass_g, extent_json)"
            " VALUES (:f, 100, 110, 80, 84, 98, 108, 79, 83, '{}')"
        ),
        {"f": file_id},
    )
    session.commit()


def test_a_stale_score_is_rescored_in_place(session: Session, make_score: Callable[..., VolumeScore]) -> None:
    """A content scored under checkpoint A is rescored in place under B: same row (its review kept), new
    model, scores and artifact rows, its clinical volumes gone with the old pGT; then, under B with a
    new calibration version, again in place with the clinical volumes kept; not when it is up to date,
    nor when the caller does not ask."""
    old_model = register_model(session, "a" * 64, {})
    new_model = register_model(session, "b" * 64, {})
    path = "/a/p0_ED.nii.gz"
    first = record_finished(
        session, [_finished(path, "h0", make_score())], model_id=old_model,
        artifacts=lambda i, f: {"pgt": f"/old/{f}_pgt.nii.gz"},
    )  # fmt: skip
    file_id = first.file_ids[0]
    add_review(session, file_id, verdict="confirmed", reviewer="qa")
    _clinical(session, file_id)
    worse = make_score({s: (0.5, 20.0, FlagLevel.SUSPICIOUS) for s in STRUCTURES})
    later = T0 + timedelta(days=30)
    rescoring = replace(_finished(path, "h0", worse), done_at=later)

    kept = record_finished(session, [rescoring], model_id=new_model)  # not asked to rescore
    assert kept.already_stored == (0,) and kept.rescored == {}
    assert known_files(session, [path])[(path, "h0")].stale("b" * 64, None)

    written = record_finished(
        session, [rescoring], model_id=new_model, rescore={0},
        artifacts=lambda i, f: {"pgt": f"/new/{f}_pgt.nii.gz"},
    )  # fmt: skip
    assert written.rescored == {0: file_id} and written.file_ids == {} and written.already_stored == ()
    assert _count(session, "mask_files") == 1 and _count(session, "structure_scores") == 3
    case = get_case(session, file_id)
    assert case is not None and case.status == FileStatus.SCORED and case.flag == FlagLevel.SUSPICIOUS
    assert case.scored_at == later and case.received_at == T0
    assert {s.pdsc for s in case.structures} == {0.5}
    assert session.execute(sa.text("SELECT path FROM artifacts")).scalars().all() == [
        f"/new/{file_id}_pgt.nii.gz"
    ]
    assert _count(session, "reviews") == 1 and _count(session, "volume_clinical") == 0
    known = known_files(session, [path])[(path, "h0")]
    assert (known.checkpoint_hash, known.calibration_version) == ("b" * 64, None)
    assert not known.stale("b" * 64, None)

    again = record_finished(session, [rescoring], model_id=new_model, rescore={0})
    assert again.rescored == {} and again.already_stored == (0,)

    _clinical(session, file_id)
    calibrated = replace(rescoring, score=replace(worse, calibration_version="site-v2"))
    recalibrated = record_finished(session, [calibrated], model_id=new_model, rescore={0})
    assert recalibrated.rescored == {0: file_id}
    assert known_files(session, [path])[(path, "h0")].calibration_version == "site-v2"
    assert _count(session, "volume_clinical") == 1  # the same pGT: its volumes stand
    assert _count(session, "artifacts") == 0  # no artifacts this time: the old ones' rows are gone


def test_only_a_scored_row_is_stale(session: Session, make_score: Callable[..., VolumeScore]) -> None:
    model_id = register_model(session, "a" * 64, {})
    record_finished(session, [_finished("/a/bad_ED.nii.gz", "hb")], model_id=model_id)
    enqueue_file(
        session, path="/a/p1_ED.nii.gz", content_hash="h1", case_key="p1", phase="ED",
        segmenter_name="unet", segmenter_version="1.0",
    )  # fmt: skip
    known = known_files(session, ["/a/bad_ED.nii.gz", "/a/p1_ED.nii.gz"])
    assert [k.stale("b" * 64, "v2") for k in known.values()] == [False, False]
    rescoring = [
        _finished("/a/bad_ED.nii.gz", "hb", make_score()),
        _finished("/a/p1_ED.nii.gz", "h1", make_score()),
    ]
    written = record_finished(
        session, rescoring, model_id=register_model(session, "b" * 64, {}), rescore={0, 1}
    )
    assert written.rescored == {} and written.already_stored == (0, 1)
