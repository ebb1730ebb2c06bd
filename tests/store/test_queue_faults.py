"""Faults of the queue that used to stall or mislead (issue 19), on SQLite and PostgreSQL: content that
comes back to its path, a peer frozen inside a transaction (its row locks), session timeouts, and
SQLite's write-ahead log, which kept its largest size."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.records import VolumeScore
from monitor.store import (
    REJECTION_CONTENT_CHANGED,
    REJECTION_MISSING,
    DatabaseUnavailable,
    FileStatus,
    LockTimeout,
    SessionTimeouts,
    claim_batch,
    enqueue_file,
    expired_claims,
    get_case,
    known_paths,
    make_engine,
    make_session_factory,
    reclaim_expired,
    record_rejection,
    record_scores,
    register_model,
)
from monitor.store._tx import write_transaction
from monitor.store.engine import SQLITE_JOURNAL_SIZE_LIMIT_BYTES
from monitor.store.models import MaskFile

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def _deliver(session: Session, path: str, content: str, at: datetime) -> tuple[int, bool]:
    return enqueue_file(
        session,
        path=path,
        content_hash=content * 64,
        case_key="p1",
        phase="ED",
        segmenter_name="unet",
        segmenter_version="1",
        received_at=at,
    )


def _current(session: Session, path: str) -> list[int]:
    """Ids of the path's current rows (there must be one)."""
    with session.begin():
        return list(
            session.scalars(
                sa.select(MaskFile.id).where(MaskFile.path == path, MaskFile.superseded_at.is_(None))
            )
        )


def _status(session: Session, file_id: int) -> tuple[FileStatus, str | None, int]:
    case = get_case(session, file_id)
    assert case is not None
    return case.status, case.rejection_reason, case.attempts


def test_content_deleted_while_queued_then_restored_is_queued_again(
    session: Session, make_score: Callable[[], VolumeScore]
) -> None:
    """Rejected ``missing`` (deleted while queued), then the same bytes come back: the same row is queued
    again (attempts reset, rejection cleared, received now) and scored. Before: never scored."""
    a, created = _deliver(session, "/w/p.nii.gz", "a", T0)
    claim_batch(session, worker_id="w", limit=1, lease_s=60, now=T0)
    record_rejection(session, a, REJECTION_MISSING, "the file vanished before it could be scored")
    again, queued = _deliver(session, "/w/p.nii.gz", "a", T0 + timedelta(minutes=5))
    assert (again, queued, created) == (a, True, True)
    assert _status(session, a) == (FileStatus.PENDING, None, 0)
    (claimed,) = claim_batch(session, worker_id="w", limit=1, lease_s=60, now=T0 + timedelta(minutes=6))
    assert (claimed.file_id, claimed.received_at) == (a, T0 + timedelta(minutes=5))
    record_scores(session, a, make_score(), model_id=register_model(session, "c" * 64, {}), artifacts={})
    assert _status(session, a)[0] is FileStatus.SCORED
    assert _deliver(session, "/w/p.nii.gz", "a", T0 + timedelta(minutes=9)) == (a, False)  # scored: left


def test_a_b_a_ends_with_a_current(session: Session, make_score: Callable[[], VolumeScore]) -> None:
    """A scored, then B scored, then A again: A's row is current again (not rescored), B superseded at
    the time A came back; ``known_paths`` gives the current row's receipt."""
    model_id = register_model(session, "c" * 64, {})
    a, _ = _deliver(session, "/w/p.nii.gz", "a", T0)
    record_scores(session, a, make_score(), model_id=model_id, artifacts={})
    b, created = _deliver(session, "/w/p.nii.gz", "b", T0 + timedelta(minutes=1))
    assert created and _current(session, "/w/p.nii.gz") == [b]
    record_scores(session, b, make_score(), model_id=model_id, artifacts={})
    assert _deliver(session, "/w/p.nii.gz", "a", T0 + timedelta(minutes=2)) == (a, False)
    assert _current(session, "/w/p.nii.gz") == [a]
    case_a, case_b = get_case(session, a), get_case(session, b)
    assert case_a is not None and case_b is not None
    assert (case_a.status, case_a.superseded_at) == (FileStatus.SCORED, None)
    assert case_b.superseded_at == T0 + timedelta(minutes=2)
    assert known_paths(session) == {"/w/p.nii.gz": T0}  # A's own receipt: its bytes were there since


def test_content_replaced_before_scoring_then_back_is_queued_again(session: Session) -> None:
    """A rejected ``content_changed`` (B arrived before A was scored), then A returns: A is queued again
    and current; a content rejected for what it is stays rejected (only re-linked)."""
    a, _ = _deliver(session, "/w/q.nii.gz", "a", T0)
    claim_batch(session, worker_id="w", limit=1, lease_s=60, now=T0)
    record_rejection(session, a, REJECTION_CONTENT_CHANGED, "the file changed after it was received")
    b, _ = _deliver(session, "/w/q.nii.gz", "b", T0 + timedelta(seconds=1))
    record_rejection(session, b, "corrupt", "compressed stream is corrupt or truncated")
    assert _deliver(session, "/w/q.nii.gz", "a", T0 + timedelta(seconds=2)) == (a, True)
    assert _current(session, "/w/q.nii.gz") == [a]
    assert _deliver(session, "/w/q.nii.gz", "b", T0 + timedelta(seconds=3)) == (b, False)
    assert _status(session, b) == (FileStatus.REJECTED, "corrupt", 0)
    assert _current(session, "/w/q.nii.gz") == [b]
    assert _status(session, a)[0] is FileStatus.PENDING  # A's queued row stays queued


def test_two_processes_delivering_one_path_leave_one_current_row(backend: str, db_url: str) -> None:
    """Two sessions enqueue different contents of one path at the same moment, 20 times: always exactly
    one current row (PostgreSQL serialises a path's enqueues with an advisory lock)."""
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    try:
        for round_ in range(20):
            path = f"/w/race{round_}.nii.gz"
            barrier = threading.Barrier(2)

            def deliver(content: str, path: str = path, barrier: threading.Barrier = barrier) -> None:
                with sessions() as own:
                    barrier.wait()
                    _deliver(own, path, content, T0)

            threads = [threading.Thread(target=deliver, args=(c,)) for c in ("a", "b")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with sessions() as check:
                assert len(_current(check, path)) == 1
    finally:
        engine.dispose()


# ---------------------------------------------------------------- PostgreSQL: a frozen peer


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("postgres").migrated_url()


@pytest.fixture
def peer(pg_url: str) -> Iterator[sa.Connection]:
    """A second session, as a frozen daemon would hold it: a transaction left open (rolled back after)."""
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    connection = engine.connect()
    yield connection
    connection.rollback()
    connection.close()
    engine.dispose()


def _expired_claims(session: Session, n: int) -> list[int]:
    ids = [_deliver(session, f"/w/e{i}.nii.gz", "a", T0)[0] for i in range(n)]
    claim_batch(session, worker_id="frozen", limit=n, lease_s=60, now=T0)
    return ids


@pytest.mark.postgres
def test_reclaim_skips_a_row_a_frozen_peer_holds_locked(pg_url: str, peer: sa.Connection) -> None:
    """The peer updated one of its claimed rows (``UPDATE mask_files SET model_id, status``, as
    ``record_scores`` does) and froze before committing. Reclaim takes back the others at once instead
    of waiting on that row lock (it waited for the whole freeze), and ``expired_claims`` names it."""
    engine = make_engine(pg_url)
    try:
        with make_session_factory(engine)() as session:
            ids = _expired_claims(session, 3)
            peer.execute(
                sa.text("UPDATE mask_files SET model_id = NULL, status = 'scored' WHERE id = :id"),
                {"id": ids[0]},
            )
            started = time.monotonic()
            assert reclaim_expired(session, now=T0 + timedelta(minutes=5), max_attempts=3) == 2
            assert time.monotonic() - started < 1.0
            assert expired_claims(session, now=T0 + timedelta(minutes=5)) == 1
            peer.rollback()  # the peer's session ended: its lock is gone, the claim comes back
            assert reclaim_expired(session, now=T0 + timedelta(minutes=5), max_attempts=3) == 1
            assert expired_claims(session, now=T0 + timedelta(minutes=5)) == 0
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_session_timeouts_are_set_on_every_session(pg_url: str) -> None:
    """Every session gets the configured timeouts (defaults from ``Settings``: 5 s, 1 min, 1 min)."""

    def shown(engine: sa.Engine) -> tuple[str, str, str]:
        with engine.connect() as connection:
            return tuple(  # type: ignore[return-value]
                connection.exec_driver_sql(f"SHOW {name}").scalar_one()
                for name in ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
            )

    configured = make_engine(
        pg_url, timeouts=SessionTimeouts(lock_s=1.5, statement_s=7, idle_in_transaction_s=0)
    )
    default = make_engine(pg_url)
    try:
        assert shown(configured) == ("1500ms", "7s", "0")
        assert shown(default) == ("5s", "1min", "1min")
        with configured.connect() as connection:  # and after the pool hands a connection out again
            connection.exec_driver_sql("SELECT 1")
        assert shown(configured) == ("1500ms", "7s", "0")
    finally:
        configured.dispose()
        default.dispose()
    with pytest.raises(ValueError, match="lock_s must be >= 0"):
        SessionTimeouts(lock_s=-1, statement_s=0, idle_in_transaction_s=0)


@pytest.mark.postgres
def test_a_lock_wait_ends_at_lock_timeout(pg_url: str, peer: sa.Connection) -> None:
    """A write that needs a row or path the frozen peer holds fails after ``lock_timeout`` with
    ``LockTimeout`` (a ``DatabaseUnavailable``: retried by the daemon, the intake for that file only), not
    after the freeze."""
    engine = make_engine(
        pg_url, timeouts=SessionTimeouts(lock_s=0.5, statement_s=30, idle_in_transaction_s=0)
    )
    try:
        with make_session_factory(engine)() as session:
            (file_id,) = _expired_claims(session, 1)
            peer.execute(sa.text("UPDATE mask_files SET attempts = 7 WHERE id = :id"), {"id": file_id})
            started = time.monotonic()
            with pytest.raises(LockTimeout, match="lock timeout"):  # a DatabaseUnavailable
                record_rejection(session, file_id, "corrupt", "x")
            assert 0.4 < time.monotonic() - started < 3.0
            # a peer frozen inside enqueue_file holds its path: another enqueue of it waits lock_timeout
            peer.rollback()
            peer.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('/w/held.nii.gz', 0))"))
            with pytest.raises(LockTimeout):
                _deliver(session, "/w/held.nii.gz", "a", T0)
            _deliver(session, "/w/other.nii.gz", "a", T0)  # other paths are not held up
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_an_idle_transaction_is_ended_and_its_locks_released(pg_url: str) -> None:
    """A session frozen inside a transaction is ended by the server after
    ``idle_in_transaction_session_timeout``: its row lock goes, and its late commit is a transient
    ``DatabaseUnavailable`` (the daemon retries and finds the file finished elsewhere)."""
    frozen_engine = make_engine(
        pg_url, timeouts=SessionTimeouts(lock_s=5, statement_s=30, idle_in_transaction_s=0.5)
    )
    other_engine = make_engine(pg_url)
    try:
        with make_session_factory(frozen_engine)() as frozen, make_session_factory(other_engine)() as other:
            (file_id,) = _expired_claims(other, 1)
            with pytest.raises(DatabaseUnavailable), write_transaction(frozen):
                frozen.execute(sa.update(MaskFile).where(MaskFile.id == file_id).values(attempts=9))
                time.sleep(1.5)  # frozen: idle in transaction past the timeout
            started = time.monotonic()
            assert reclaim_expired(other, now=T0 + timedelta(minutes=5)) == 1
            assert time.monotonic() - started < 1.0
            assert _status(other, file_id) == (FileStatus.PENDING, None, 1)  # the frozen update never landed
    finally:
        frozen_engine.dispose()
        other_engine.dispose()


# ---------------------------------------------------------------- SQLite: the write-ahead log


def test_sqlite_wal_is_cut_back_after_a_checkpoint(tmp_path: Path, sqlite_template: Path) -> None:
    """A 20 MB transaction grows the WAL to 20 MB; after the next checkpoint and write it is cut back to
    ``SQLITE_JOURNAL_SIZE_LIMIT_BYTES`` (without the pragma it kept 20 MB for good)."""
    path = tmp_path / "wal.db"
    path.write_bytes(sqlite_template.read_bytes())
    engine = make_engine(f"sqlite:///{path}")
    wal = Path(f"{path}-wal")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE scratch (blob BLOB)")
            for _ in range(20):
                connection.exec_driver_sql("INSERT INTO scratch VALUES (randomblob(1048576))")
        grown = wal.stat().st_size
        with engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM scratch")
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO scratch VALUES (x'00')")
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO scratch VALUES (x'01')")
        assert grown > 20 * 1024**2
        assert wal.stat().st_size <= SQLITE_JOURNAL_SIZE_LIMIT_BYTES, (grown, wal.stat().st_size)
    finally:
        engine.dispose()
    assert os.path.getsize(path) > 0
