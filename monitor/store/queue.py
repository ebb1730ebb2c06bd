"""The work queue: every statement that moves a file through ``pending`` and ``scoring``.

Enqueue a received file (once per path and content; the content now at a path decides its current row),
claim batches (several daemons may share one database), take back expired claims and those of dead
workers (skipping rows another session holds locked), release claims at shutdown, and read the queue's
state (known paths, workers holding files, counts for the gauges). Each function takes a ``Session``,
runs in one transaction of its own and returns plain values or records; finishing a file (scores or a
rejection) is ``monitor.store.repository``.

Typical worker loop::

    with session_factory() as session:
        for item in claim_batch(session, worker_id="host-1:0", limit=8, lease_s=300):
            try:
                score = scorer.score(load_mask(item.path))
            except InvalidMask as exc:
                record_rejection(session, item.file_id, exc.reason, exc.detail)
            else:
                record_scores(session, item.file_id, score, model_id=model_id, artifacts=paths)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.store._rows import reject_rows, require_text, written_id
from monitor.store._rows import segmenter_id as find_segmenter_id
from monitor.store._sql import FILE_IDENTITY
from monitor.store._tx import aware, dialect_insert, read_transaction, write_transaction
from monitor.store.models import MaskFile, Segmenter
from monitor.store.records import ClaimedFile, FileStatus

__all__ = [
    "REJECTION_CONTENT_CHANGED",
    "REJECTION_MISSING",
    "REJECTION_TOO_MANY_ATTEMPTS",
    "RETURNING_REASONS",
    "QueueState",
    "claim_batch",
    "enqueue_file",
    "expired_claims",
    "known_paths",
    "queue_state",
    "reclaim_expired",
    "release",
    "requeue_worker",
    "scoring_workers",
]

log = logging.getLogger(__name__)

#: Rejection reason given by ``reclaim_expired(max_attempts=...)`` to a file that kept losing its lease.
REJECTION_TOO_MANY_ATTEMPTS = "too_many_attempts"
#: The file vanished before it could be read or scored.
REJECTION_MISSING = "missing"
#: The file's bytes changed after it was received (its new content is a row of its own).
REJECTION_CONTENT_CHANGED = "content_changed"
#: Rejections that say nothing against a file's bytes: when the same content is delivered to the same
#: path again, ``enqueue_file`` queues its row again instead of leaving it rejected for good.
RETURNING_REASONS: frozenset[str] = frozenset({REJECTION_MISSING, REJECTION_CONTENT_CHANGED})


def enqueue_file(
    session: Session,
    *,
    path: str,
    content_hash: str,
    case_key: str,
    phase: str | None,
    segmenter_name: str,
    segmenter_version: str,
    site: str | None = None,
    scanner: str | None = None,
    image_path: str | None = None,
    received_at: datetime | None = None,
) -> tuple[int, bool]:
    """Record that a content was delivered to a path: queue it (status ``pending``) once per path and
    content, and make its row the path's current one.

    - New bytes at the path: a new row, queued. The same bytes at the same path are never two rows, even
      when two processes enqueue them at once (a unique constraint on (path, content_hash) with
      ``ON CONFLICT DO NOTHING``).
    - Bytes the path held before, whose row was rejected for a reason in ``RETURNING_REASONS``
      (``missing``: deleted while queued; ``content_changed``: replaced before it was scored): that row
      is queued again, with this call's identity and ``received_at``.
    - Otherwise (pending, scoring, scored, or rejected for what the bytes are): the row is left as it is.

    In every case the row of this content becomes the path's current row (``superseded_at`` NULL) and
    every other row of the path is marked superseded, so that after A -> B -> A the row of A is current.
    On PostgreSQL the path is locked for the transaction (an advisory lock), so that two daemons
    delivering different contents of one path at once leave one current row.

    Args:
        path: the mask file as the watcher saw it.
        content_hash: hash of its bytes (e.g. SHA-256 hex), at most 128 characters.
        case_key: case identifier parsed from the name or sidecar.
        phase: cardiac phase ("ED", "ES"), None when unknown.
        segmenter_name, segmenter_version: the model that produced the mask (created on first use).
        site, scanner, image_path: optional provenance from the sidecar.
        received_at: when the file arrived (timezone-aware); now when None.
    Returns: (file id, True when the content was queued for scoring by this call: a new row, or a
        returning content's row queued again; False when its row was already known).
    Raises: ValueError for an empty identifier or a naive timestamp; DatabaseUnavailable.
    """
    require_text(path=path, content_hash=content_hash, case_key=case_key)
    require_text(segmenter_name=segmenter_name, segmenter_version=segmenter_version)
    when = aware(received_at, "received_at")
    insert = dialect_insert(session)
    identity = {
        "case_key": case_key,
        "phase": phase,
        "site": site,
        "scanner": scanner,
        "image_path": image_path,
    }
    with write_transaction(session):
        _lock_path(session, path)
        segmenter_id = find_segmenter_id(session, segmenter_name, segmenter_version, when)
        stmt = (
            insert(MaskFile)
            .values(
                path=path,
                content_hash=content_hash,
                **identity,
                segmenter_id=segmenter_id,
                status=FileStatus.PENDING,
                attempts=0,
                received_at=when,
            )
            .on_conflict_do_nothing(index_elements=["path", "content_hash"])
            .returning(MaskFile.id)
        )
        file_id = session.scalar(stmt)
        queued = file_id is not None
        if file_id is None:
            known = session.execute(
                sa.select(MaskFile.id, MaskFile.status, MaskFile.rejection_reason).where(
                    MaskFile.path == path, MaskFile.content_hash == content_hash
                )
            ).one()
            file_id = known.id
            if known.status == FileStatus.REJECTED and known.rejection_reason in RETURNING_REASONS:
                _queue_again(session, file_id, identity, segmenter_id=segmenter_id, when=when)
                queued = True
        _make_current(session, path, written_id(file_id, "mask file"), when)
    return written_id(file_id, "mask file"), queued


def _lock_path(session: Session, path: str) -> None:
    """PostgreSQL: serialise the transactions that enqueue one path (SQLite's writes are serial anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(path, 0))))


def _queue_again(
    session: Session, file_id: int, identity: dict[str, str | None], *, segmenter_id: int, when: datetime
) -> None:
    """A returning content's rejected row back to ``pending``, as if received now (claims reset)."""
    session.execute(
        sa.update(MaskFile)
        .where(MaskFile.id == file_id)
        .values(
            **identity,
            segmenter_id=segmenter_id,
            status=FileStatus.PENDING,
            attempts=0,
            received_at=when,
            started_at=None,
            rejected_at=None,
            rejection_reason=None,
            rejection_detail=None,
            worker_id=None,
            lease_expires_at=None,
        ),
        execution_options={"synchronize_session": False},
    )
    log.info("content returned to its path; queued again", extra={"action": "requeued", "file_id": file_id})


def _make_current(session: Session, path: str, file_id: int, when: datetime) -> None:
    """Make ``file_id`` the current row of ``path``; its other rows are superseded at ``when``."""
    session.execute(
        sa.update(MaskFile)
        .where(MaskFile.path == path, MaskFile.id != file_id, MaskFile.superseded_at.is_(None))
        .values(superseded_at=when),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        sa.update(MaskFile)
        .where(MaskFile.id == file_id, MaskFile.superseded_at.is_not(None))
        .values(superseded_at=None),
        execution_options={"synchronize_session": False},
    )


def claim_batch(
    session: Session, *, worker_id: str, limit: int, lease_s: float, now: datetime | None = None
) -> list[ClaimedFile]:
    """Atomically move up to ``limit`` pending files, oldest first, to ``scoring`` for this worker.

    Several processes may claim from one database: PostgreSQL skips rows another claimer holds
    (``FOR UPDATE SKIP LOCKED``); SQLite serialises claims with an immediate write transaction. No file
    is handed out twice while its lease runs.

    Args:
        worker_id: who claims (e.g. "host:pid:thread"), stored for diagnosis.
        limit: most files to claim (>= 1).
        lease_s: seconds the worker may hold each file before ``reclaim_expired`` takes it back (> 0).
        now: the claim time (timezone-aware); now when None.
    Returns: the claimed files, oldest first; empty when nothing is pending.
    Raises: ValueError for a bad limit or lease; DatabaseUnavailable.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if not lease_s > 0:
        raise ValueError(f"lease_s must be > 0 seconds, got {lease_s}")
    require_text(worker_id=worker_id)
    when = aware(now, "now")
    lease_expires_at = when + timedelta(seconds=lease_s)
    with write_transaction(session):
        ids = session.scalars(
            sa.select(MaskFile.id)
            .where(MaskFile.status == FileStatus.PENDING)
            .order_by(MaskFile.received_at, MaskFile.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not ids:
            return []
        session.execute(
            sa.update(MaskFile)
            .where(MaskFile.id.in_(ids))
            .values(
                status=FileStatus.SCORING,
                worker_id=worker_id,
                started_at=when,
                lease_expires_at=lease_expires_at,
                attempts=MaskFile.attempts + 1,
            ),
            execution_options={"synchronize_session": False},
        )
        rows = session.execute(
            sa.select(*FILE_IDENTITY, MaskFile.attempts, MaskFile.received_at, MaskFile.lease_expires_at)
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .where(MaskFile.id.in_(ids))
            .order_by(MaskFile.received_at, MaskFile.id)
        ).all()
    return [ClaimedFile(**row._mapping) for row in rows]


def reclaim_expired(session: Session, now: datetime | None = None, *, max_attempts: int | None = None) -> int:
    """Put ``scoring`` files whose lease has expired (their worker died or hung) back to ``pending``.

    Rows that another session holds locked (a worker frozen in the middle of recording them) are skipped
    (``FOR UPDATE SKIP LOCKED``) rather than waited for: ``expired_claims`` counts what is left.

    Args:
        now: the time to compare leases with (timezone-aware); now when None.
        max_attempts: when given, an expired file already claimed this many times is rejected with
            reason ``"too_many_attempts"`` instead of being queued again (a file that kills its worker).
    Returns: how many files went back to pending.
    Raises: ValueError for max_attempts < 1 or a naive timestamp; DatabaseUnavailable.
    """
    requeued, _ = _take_back(
        session,
        lambda when: MaskFile.lease_expires_at < when,
        now=now,
        max_attempts=max_attempts,
        detail=f"lease expired on each of {max_attempts} or more claims",
        action="reclaim",
        message="expired leases reclaimed",
    )
    return requeued


def requeue_worker(
    session: Session, worker_id: str, *, max_attempts: int, now: datetime | None = None
) -> tuple[int, int]:
    """Take back every ``scoring`` file of a worker that is dead (or idle after a failed batch),
    without waiting for its leases.

    Like ``reclaim_expired`` for one worker: files go back to ``pending`` (the lost claim still counts),
    and a file already claimed ``max_attempts`` times is rejected with ``"too_many_attempts"`` instead
    (a file that kills its worker must not kill every worker in turn).

    Returns: (files requeued, files rejected).
    Raises: ValueError for max_attempts < 1; DatabaseUnavailable.
    """
    return _take_back(
        session,
        lambda _: MaskFile.worker_id == worker_id,
        now=now,
        max_attempts=max_attempts,
        detail=f"its worker died or failed on each of {max_attempts} or more claims",
        action="requeue_worker",
        message="claims of a worker taken back",
    )


def _take_back(
    session: Session,
    held_by: Callable[[datetime], sa.ColumnElement[bool]],
    *,
    now: datetime | None,
    max_attempts: int | None,
    detail: str,
    action: str,
    message: str,
) -> tuple[int, int]:
    """Put the ``scoring`` rows that ``held_by(now)`` selects back to pending in one transaction,
    rejecting those already claimed ``max_attempts`` times (``too_many_attempts``, with ``detail``).

    Returns: (requeued, rejected) row counts.
    """
    if max_attempts is not None and max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    when = aware(now, "now")
    with write_transaction(session):
        ids = session.scalars(
            sa.select(MaskFile.id)
            .where(MaskFile.status == FileStatus.SCORING, held_by(when))
            .with_for_update(skip_locked=True)
        ).all()
        rejected = requeued = 0
        if ids:
            held = sa.and_(MaskFile.id.in_(ids), MaskFile.status == FileStatus.SCORING)
            if max_attempts is not None:
                rejected = reject_rows(
                    session,
                    sa.and_(held, MaskFile.attempts >= max_attempts),
                    when=when,
                    reason=REJECTION_TOO_MANY_ATTEMPTS,
                    detail=detail,
                )
            requeued = session.execute(
                sa.update(MaskFile)
                .where(held)
                .values(status=FileStatus.PENDING, worker_id=None, lease_expires_at=None),
                execution_options={"synchronize_session": False},
            ).rowcount
    if requeued or rejected:
        log.warning(message, extra={"action": action, "requeued": requeued, "rejected": rejected})
    return requeued, rejected


def expired_claims(session: Session, now: datetime | None = None) -> int:
    """Files still ``scoring`` after their lease expired: right after ``reclaim_expired``, those that
    another session holds locked (a frozen worker in the middle of its transaction).

    Raises: ValueError for a naive timestamp; DatabaseUnavailable.
    """
    when = aware(now, "now")
    with read_transaction(session):
        count = session.scalar(
            sa.select(sa.func.count())
            .select_from(MaskFile)
            .where(MaskFile.status == FileStatus.SCORING, MaskFile.lease_expires_at < when)
        )
    return int(count or 0)


def release(session: Session, file_ids: Iterable[int], *, worker_id: str | None = None) -> int:
    """Give claimed files back to the queue unscored (graceful shutdown); the claim is not counted.

    Args:
        file_ids: files to release; those no longer ``scoring`` are left alone.
        worker_id: when given, only files claimed by this worker are released.
    Returns: how many files went back to pending.
    Raises: DatabaseUnavailable.
    """
    ids = sorted(set(file_ids))
    if not ids:
        return 0
    conditions = [MaskFile.id.in_(ids), MaskFile.status == FileStatus.SCORING]
    if worker_id is not None:
        conditions.append(MaskFile.worker_id == worker_id)
    with write_transaction(session):
        return session.execute(
            sa.update(MaskFile)
            .where(*conditions)
            .values(
                status=FileStatus.PENDING,
                worker_id=None,
                lease_expires_at=None,
                attempts=sa.case((MaskFile.attempts > 0, MaskFile.attempts - 1), else_=0),
            ),
            execution_options={"synchronize_session": False},
        ).rowcount


def known_paths(session: Session, under: str | None = None) -> dict[str, datetime]:
    """Every path the queue holds (any status), with the time its current content was received.

    A file whose status changed (``ctime``) after that time may hold another content (or the same one
    again after it was deleted) and is worth checking; ``ctime`` cannot be set back by a restore that
    keeps the old ``mtime``.

    Args:
        under: only paths that start with this prefix (a folder with its trailing separator).
    Returns: path -> ``received_at`` of its current row (UTC).
    Raises: DatabaseUnavailable.
    """
    stmt = (
        sa.select(MaskFile.path, sa.func.max(MaskFile.received_at))
        .where(MaskFile.superseded_at.is_(None))
        .group_by(MaskFile.path)
    )
    if under is not None:
        stmt = stmt.where(MaskFile.path.startswith(under, autoescape=True))
    with read_transaction(session):
        rows = session.execute(stmt).all()
    return {path: aware(when, "received_at") for path, when in rows}


def scoring_workers(session: Session) -> list[str]:
    """Worker ids that hold files in ``scoring``, sorted.

    Raises: DatabaseUnavailable.
    """
    with read_transaction(session):
        rows = session.scalars(
            sa.select(MaskFile.worker_id)
            .where(MaskFile.status == FileStatus.SCORING, MaskFile.worker_id.is_not(None))
            .distinct()
        ).all()
    return sorted(rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueState:
    """The work queue as the database sees it (every daemon's files), for the metrics gauges."""

    pending: int  #: files waiting to be claimed
    scoring: int  #: files claimed and not yet finished
    oldest_pending_received_at: datetime | None  #: when the oldest pending file was received (UTC)
    last_scored_at: datetime | None  #: when the latest file was scored, by any daemon (UTC)


def queue_state(session: Session) -> QueueState:
    """Counts of pending and scoring files, the oldest pending file's receipt and the latest score.

    Three index-backed reads (status + received_at; scored_at) in one read transaction.

    Raises: DatabaseUnavailable.
    """
    queued = (FileStatus.PENDING, FileStatus.SCORING)
    with read_transaction(session):
        counts = dict(
            session.execute(
                sa.select(MaskFile.status, sa.func.count())
                .where(MaskFile.status.in_(queued))
                .group_by(MaskFile.status)
            ).all()
        )
        oldest = session.scalar(
            sa.select(sa.func.min(MaskFile.received_at)).where(MaskFile.status == FileStatus.PENDING)
        )
        last = session.scalar(sa.select(sa.func.max(MaskFile.scored_at)))
    return QueueState(
        pending=int(counts.get(FileStatus.PENDING, 0)),
        scoring=int(counts.get(FileStatus.SCORING, 0)),
        oldest_pending_received_at=oldest,  # min/max keep the column's type: aware UTC
        last_scored_at=last,
    )
