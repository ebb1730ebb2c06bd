"""Queue queries the watch daemon needs beyond the repository (owned by the daemon; see docs/daemon.md).

Kept apart from ``repository.py`` so that the store's owner can fold them in (or replace them) in one
move. Same rules as the rest of the store: a ``Session`` in, plain values out, one transaction each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.store._tx import aware, read_transaction, write_transaction
from monitor.store.models import MaskFile, MonitorModel
from monitor.store.records import FileStatus
from monitor.store.repository import requeue_held

__all__ = [
    "QueueState",
    "known_paths",
    "last_scoring_model",
    "queue_state",
    "requeue_worker",
    "scoring_workers",
]

log = logging.getLogger(__name__)


def known_paths(session: Session, under: str | None = None) -> dict[str, datetime]:
    """Every path the queue holds (any status), with the time its latest version was received.

    Args:
        under: only paths that start with this prefix (a folder with its trailing separator).
    Returns: path -> latest ``received_at`` (UTC).
    Raises: DatabaseUnavailable.
    """
    stmt = sa.select(MaskFile.path, sa.func.max(MaskFile.received_at)).group_by(MaskFile.path)
    if under is not None:
        stmt = stmt.where(MaskFile.path.startswith(under, autoescape=True))
    with read_transaction(session):
        rows = session.execute(stmt).all()
    return {path: aware(when, "received_at") for path, when in rows}


def last_scoring_model(session: Session) -> tuple[int, str] | None:
    """The monitor model that scored the most recently scored file, as (id, checkpoint hash).

    Returns: None when no file has been scored yet.
    Raises: DatabaseUnavailable.
    """
    stmt = (
        sa.select(MonitorModel.id, MonitorModel.checkpoint_hash)
        .join(MaskFile, MaskFile.model_id == MonitorModel.id)
        .where(MaskFile.scored_at.is_not(None))
        .order_by(MaskFile.scored_at.desc(), MaskFile.id.desc())
        .limit(1)
    )
    with read_transaction(session):
        row = session.execute(stmt).first()
    return None if row is None else (int(row[0]), str(row[1]))


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
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    when = aware(now, "now")
    held = sa.and_(MaskFile.status == FileStatus.SCORING, MaskFile.worker_id == worker_id)
    with write_transaction(session):
        requeued, rejected = requeue_held(
            session,
            held,
            when=when,
            max_attempts=max_attempts,
            rejection_detail=f"its worker died or failed on each of {max_attempts} or more claims",
        )
    if requeued or rejected:
        log.warning(
            "claims of a worker taken back",
            extra={"action": "requeue_worker", "requeued": requeued, "rejected": rejected},
        )
    return requeued, rejected
