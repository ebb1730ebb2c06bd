"""Tests of monitor/store/repository.py (and engine.py) on SQLite and PostgreSQL: the queue and writes."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.errors import StoreError
from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.records import VolumeScore
from monitor.store import (
    ARTIFACT_INCONSISTENCY,
    ARTIFACT_PGT,
    REJECTION_TOO_MANY_ATTEMPTS,
    FileStateError,
    FileStatus,
    ReviewVerdict,
    add_review,
    claim_batch,
    enqueue_file,
    export_frame,
    get_case,
    make_session_factory,
    normalise_url,
    reclaim_expired,
    record_rejection,
    record_scores,
    register_model,
    release,
    status_counts,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ScoreFactory = Callable[..., VolumeScore]


def _enqueue(session: Session, n: int, *, start: datetime = T0, prefix: str = "case") -> list[int]:
    """Enqueue n files received one minute apart; return their ids."""
    ids = []
    for i in range(n):
        file_id, created = enqueue_file(
            session,
            path=f"/watch/unet/1.0/{prefix}{i:03d}_ED.nii.gz",
            content_hash=f"{i:064x}",
            case_key=f"{prefix}{i:03d}",
            phase="ED",
            segmenter_name="unet",
            segmenter_version="1.0",
            received_at=start + timedelta(minutes=i),
        )
        assert created
        ids.append(file_id)
    return ids


# --- engine ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
    ],
    ids=["postgresql", "postgres", "psycopg", "sqlite"],
)
def test_normalise_url(given: str, driver: str) -> None:
    assert normalise_url(given).drivername == driver


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "not a url"], ids=["mysql", "garbage"])
def test_normalise_url_refuses(bad: str) -> None:
    with pytest.raises(StoreError):
        normalise_url(bad)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_connection_settings(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_timestamps_are_aware_utc(session: Session) -> None:
    paris = timezone(timedelta(hours=2))
    file_id, _ = enqueue_file(
        session,
        path="/a.nii.gz",
        content_hash="a",
        case_key="a",
        phase=None,
        segmenter_name="unet",
        segmenter_version="1",
        received_at=datetime(2026, 6, 1, 12, 30, tzinfo=paris),
    )
    case = get_case(session, file_id)
    assert case is not None
    assert case.received_at == datetime(2026, 6, 1, 10, 30, tzinfo=UTC)
    assert case.received_at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        enqueue_file(
            session,
            path="/b.nii.gz",
            content_hash="b",
            case_key="b",
            phase=None,
            segmenter_name="unet",
            segmenter_version="1",
            received_at=datetime(2026, 6, 1, 12, 30),
        )


# --- enqueue --------------------------------------------------------------------------------------


def test_enqueue_same_file_twice_gives_one_row(session: Session) -> None:
    kwargs = dict(
        path="/watch/patient101_ED.nii.gz",
        content_hash="ab" * 32,
        case_key="patient101",
        phase="ED",
        segmenter_name="unet",
        segmenter_version="1.0",
        site="Dijon",
        scanner="Siemens Aera",
        image_path="/images/patient101_ED.nii.gz",
    )
    first = enqueue_file(session, **kwargs)
    second = enqueue_file(session, **kwargs)
    assert first == (first[0], True)
    assert second == (first[0], False)
    assert status_counts(session).by_status == {"pending": 1, "scoring": 0, "scored": 0, "rejected": 0}
    case = get_case(session, first[0])
    assert case is not None
    assert (case.site, case.scanner, case.image_path) == (
        "Dijon",
        "Siemens Aera",
        "/images/patient101_ED.nii.gz",
    )
    assert case.status is FileStatus.PENDING
    assert case.attempts == 0


def test_changed_file_at_same_path_is_a_new_row(session: Session) -> None:
    common = dict(
        path="/w/p1_ED.nii.gz", case_key="p1", phase="ED", segmenter_name="unet", segmenter_version="1"
    )
    old_id, _ = enqueue_file(session, content_hash="1" * 64, **common)
    new_id, created = enqueue_file(session, content_hash="2" * 64, **common)
    assert created
    assert new_id != old_id
    assert status_counts(session).by_status["pending"] == 2
    frame = export_frame(session)
    assert sorted(frame["content_hash"]) == ["1" * 64, "2" * 64]
    assert set(frame["path"]) == {"/w/p1_ED.nii.gz"}


def test_concurrent_enqueue_of_one_file_creates_one_row(engine: sa.Engine) -> None:
    """Eight threads, each with its own connection, race to enqueue the same bytes."""
    sessions = make_session_factory(engine)
    barrier = threading.Barrier(8)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with sessions() as session:
                barrier.wait(timeout=10)
                results.append(
                    enqueue_file(
                        session,
                        path="/w/race.nii.gz",
                        content_hash="f" * 64,
                        case_key="race",
                        phase="ES",
                        segmenter_name="new-segmenter",
                        segmenter_version="0.1",
                    )
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(results) == 8
    assert len({file_id for file_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with sessions() as session:
        counts = status_counts(session)
    assert counts.total == 1
    assert [(s.segmenter_name, s.segmenter_version) for s in counts.segmenters] == [("new-segmenter", "0.1")]


def test_enqueue_refuses_empty_identifiers(session: Session) -> None:
    with pytest.raises(ValueError, match="content_hash"):
        enqueue_file(
            session,
            path="/x",
            content_hash="",
            case_key="x",
            phase=None,
            segmenter_name="u",
            segmenter_version="1",
        )


# --- claim, reclaim, release ----------------------------------------------------------------------


def test_claim_oldest_first_with_lease(session: Session) -> None:
    ids = _enqueue(session, 5)
    now = T0 + timedelta(hours=1)
    first = claim_batch(session, worker_id="w1", limit=3, lease_s=120, now=now)
    assert [c.file_id for c in first] == ids[:3]
    assert all(c.attempts == 1 for c in first)
    assert all(c.lease_expires_at == now + timedelta(seconds=120) for c in first)
    assert first[0].case_key == "case000"
    assert (first[0].segmenter_name, first[0].segmenter_version) == ("unet", "1.0")
    assert first[0].received_at == T0

    second = claim_batch(session, worker_id="w2", limit=3, lease_s=120, now=now)
    assert [c.file_id for c in second] == ids[3:]
    assert claim_batch(session, worker_id="w3", limit=3, lease_s=120, now=now) == []
    assert status_counts(session).by_status == {"pending": 0, "scoring": 5, "scored": 0, "rejected": 0}
    case = get_case(session, ids[0])
    assert case is not None
    assert case.status is FileStatus.SCORING
    assert case.started_at == now


@pytest.mark.parametrize(("limit", "lease_s"), [(0, 60), (1, 0)], ids=["limit", "lease"])
def test_claim_refuses_bad_arguments(session: Session, limit: int, lease_s: float) -> None:
    with pytest.raises(ValueError):
        claim_batch(session, worker_id="w", limit=limit, lease_s=lease_s)


def test_reclaim_expired_leases(session: Session) -> None:
    ids = _enqueue(session, 3)
    claim_batch(session, worker_id="dead", limit=2, lease_s=60, now=T0)
    assert reclaim_expired(session, now=T0 + timedelta(seconds=59)) == 0
    assert reclaim_expired(session, now=T0 + timedelta(seconds=61)) == 2
    assert status_counts(session).by_status["pending"] == 3

    again = claim_batch(session, worker_id="alive", limit=3, lease_s=60, now=T0 + timedelta(minutes=2))
    assert [c.file_id for c in again] == ids
    assert [c.attempts for c in again] == [2, 2, 1]


def test_reclaim_rejects_after_max_attempts(session: Session) -> None:
    (file_id,) = _enqueue(session, 1)
    for attempt in range(3):
        start = T0 + timedelta(minutes=10 * attempt)
        claim_batch(session, worker_id="crashy", limit=1, lease_s=60, now=start)
        requeued = reclaim_expired(session, now=start + timedelta(minutes=5), max_attempts=3)
        assert requeued == (1 if attempt < 2 else 0)
    case = get_case(session, file_id)
    assert case is not None
    assert case.status is FileStatus.REJECTED
    assert case.rejection_reason == REJECTION_TOO_MANY_ATTEMPTS
    assert case.attempts == 3


def test_release_gives_claims_back(session: Session) -> None:
    ids = _enqueue(session, 3)
    claimed = claim_batch(session, worker_id="w1", limit=3, lease_s=60)
    assert release(session, [c.file_id for c in claimed[:2]], worker_id="someone-else") == 0
    assert release(session, [c.file_id for c in claimed[:2]], worker_id="w1") == 2
    assert release(session, []) == 0
    counts = status_counts(session).by_status
    assert (counts["pending"], counts["scoring"]) == (2, 1)
    case = get_case(session, ids[0])
    assert case is not None
    assert case.attempts == 0
    assert [c.file_id for c in claim_batch(session, worker_id="w2", limit=5, lease_s=60)] == ids[:2]


# --- results --------------------------------------------------------------------------------------


def test_record_scores_round_trip(session: Session, make_score: ScoreFactory) -> None:
    (file_id,) = _enqueue(session, 1)
    claim_batch(session, worker_id="w", limit=1, lease_s=60)
    model_id = register_model(session, "c0ffee" * 10, {"epochs": 120, "train": "ACDC 1-100"})
    score = make_score(
        {
            Structure.LV: (0.91, 3.5, FlagLevel.OK),
            Structure.RV: (0.0, math.nan, FlagLevel.ERRONEOUS),
            Structure.MYO: (math.nan, math.nan, FlagLevel.SUSPICIOUS),
        },
        shape=(9, 216, 256),
        spacing_mm=(10.0, 1.40625, 1.40625),
    )
    scored_at = T0 + timedelta(hours=2)
    artifacts = {ARTIFACT_PGT: "/art/1_pgt.nii.gz", ARTIFACT_INCONSISTENCY: "/art/1_xor.nii.gz"}
    record_scores(session, file_id, score, model_id=model_id, artifacts=artifacts, scored_at=scored_at)

    case = get_case(session, file_id)
    assert case is not None
    assert case.status is FileStatus.SCORED
    assert case.flag is FlagLevel.ERRONEOUS
    assert case.scored_at == scored_at
    assert case.shape == (9, 216, 256)
    assert case.spacing_mm == (10.0, 1.40625, 1.40625)
    assert case.slices_scored == 7
    assert case.timings_s == {"model_s": 0.05}
    assert case.model_checkpoint_hash == "c0ffee" * 10
    assert case.model_metadata == {"epochs": 120, "train": "ACDC 1-100"}
    assert case.artifacts == artifacts
    assert [s.structure for s in case.structures] == [Structure.LV, Structure.RV, Structure.MYO]
    lv, rv, myo = case.structures
    assert (lv.pdsc, lv.phd_mm, lv.flag, lv.reasons) == (0.91, 3.5, FlagLevel.OK, ())
    assert rv.pdsc == 0.0
    assert math.isnan(rv.phd_mm)
    assert rv.reasons == ("missing",)
    assert math.isnan(myo.pdsc) and math.isnan(myo.phd_mm)
    assert (lv.mask_voxels, rv.mask_voxels, myo.mask_voxels) == (1000, 1001, 1002)
    assert lv.pgt_voxels == 1100
    assert lv.mask_volume_ml == pytest.approx(1000 * 10.0 * 1.40625 * 1.40625 / 1000)


def test_record_scores_only_once(session: Session, make_score: ScoreFactory) -> None:
    (file_id,) = _enqueue(session, 1)
    model_id = register_model(session, "m", {})
    record_scores(session, file_id, make_score(), model_id=model_id, artifacts={})
    with pytest.raises(FileStateError) as caught:
        record_scores(session, file_id, make_score(), model_id=model_id, artifacts={})
    assert caught.value.status == "scored"
    assert len(export_frame(session)) == 3
    with pytest.raises(FileStateError) as missing:
        record_scores(session, 999_999, make_score(), model_id=model_id, artifacts={})
    assert missing.value.status is None


def test_record_scores_is_atomic(session: Session, make_score: ScoreFactory) -> None:
    """A failure after the status update leaves no trace: still scoring, no structure rows."""
    (file_id,) = _enqueue(session, 1)
    claim_batch(session, worker_id="w", limit=1, lease_s=60)
    model_id = register_model(session, "m", {})
    good = make_score()
    broken = VolumeScore(
        # not JSON: fails in the structure insert, after the file row was updated
        structures=(good.structures[0], dataclasses.replace(good.structures[1], reasons=(object(),))),
        flag=good.flag,
        shape=good.shape,
        spacing_mm=good.spacing_mm,
        slices_scored=good.slices_scored,
    )
    with pytest.raises((sa.exc.StatementError, TypeError)):  # SQLAlchemy or psycopg serialises JSON
        record_scores(session, file_id, broken, model_id=model_id, artifacts={ARTIFACT_PGT: "/p"})
    case = get_case(session, file_id)
    assert case is not None
    assert case.status is FileStatus.SCORING
    assert case.structures == () and case.artifacts == {} and case.flag is None
    record_scores(session, file_id, good, model_id=model_id, artifacts={ARTIFACT_PGT: "/p"})
    case = get_case(session, file_id)
    assert case is not None
    assert case.status is FileStatus.SCORED and len(case.structures) == 3


def test_record_rejection(session: Session, make_score: ScoreFactory) -> None:
    ids = _enqueue(session, 2)
    claim_batch(session, worker_id="w", limit=2, lease_s=60)
    when = T0 + timedelta(hours=3)
    record_rejection(session, ids[0], "corrupt", "gzip stream ends early (CRC mismatch)", rejected_at=when)
    case = get_case(session, ids[0])
    assert case is not None
    assert case.status is FileStatus.REJECTED
    assert (case.rejection_reason, case.rejection_detail) == (
        "corrupt",
        "gzip stream ends early (CRC mismatch)",
    )
    assert case.rejected_at == when
    assert case.scored_at is None and case.flag is None
    with pytest.raises(FileStateError, match="is rejected"):
        record_rejection(session, ids[0], "corrupt", "again")
    with pytest.raises(FileStateError):
        record_scores(session, ids[0], make_score(), model_id=register_model(session, "m", {}), artifacts={})
    with pytest.raises(ValueError, match="short code"):
        record_rejection(session, ids[1], "x" * 65, "too long a code")
    assert status_counts(session).by_status == {"pending": 0, "scoring": 1, "scored": 0, "rejected": 1}


def test_register_model_is_idempotent(session: Session) -> None:
    first = register_model(session, "a" * 64, {"epochs": 1})
    assert register_model(session, "a" * 64, {"epochs": 2}) == first
    assert register_model(session, "b" * 64, {}) != first
    with pytest.raises(ValueError, match="JSON"):
        register_model(session, "c" * 64, {"bad": object()})


def test_add_review(session: Session, make_score: ScoreFactory) -> None:
    ids = _enqueue(session, 2)
    record_scores(session, ids[0], make_score(), model_id=register_model(session, "m", {}), artifacts={})
    first = add_review(
        session, ids[0], verdict="false_alarm", reviewer="dr.a", note="fine on the image", reviewed_at=T0
    )
    second = add_review(session, ids[0], verdict=ReviewVerdict.CONFIRMED, reviewer="dr.b")
    assert second != first
    case = get_case(session, ids[0])
    assert case is not None
    assert [(r.verdict, r.reviewer, r.note) for r in case.reviews] == [
        (ReviewVerdict.FALSE_ALARM, "dr.a", "fine on the image"),
        (ReviewVerdict.CONFIRMED, "dr.b", None),
    ]
    with pytest.raises(FileStateError, match="is pending"):
        add_review(session, ids[1], verdict="unsure", reviewer="dr.a")
    with pytest.raises(ValueError):
        add_review(session, ids[0], verdict="maybe", reviewer="dr.a")


def test_get_case_unknown_is_none(session: Session) -> None:
    assert get_case(session, 12345) is None
