"""The work queue and result writes: every statement that changes the results database.

Each function takes a ``Session`` and plain values or records, runs in one transaction of its own and
commits it (a read transaction left open by the caller is ended first). Nothing returned is an ORM row.

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

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.errors import StoreError
from monitor.records import VolumeScore
from monitor.store._tx import aware, dialect_insert, nan_to_none, write_transaction
from monitor.store.errors import FileStateError
from monitor.store.models import Artifact, MaskFile, MonitorModel, Review, Segmenter, StructureScoreRow
from monitor.store.records import ClaimedFile, FileStatus, FinishedFile, ReviewVerdict

__all__ = [
    "REJECTION_TOO_MANY_ATTEMPTS",
    "add_review",
    "bulk_insert_scored",
    "claim_batch",
    "enqueue_file",
    "reclaim_expired",
    "record_rejection",
    "record_scores",
    "register_model",
    "release",
    "requeue_held",
]

log = logging.getLogger(__name__)

#: Rejection reason given by ``reclaim_expired(max_attempts=...)`` to a file that kept losing its lease.
REJECTION_TOO_MANY_ATTEMPTS = "too_many_attempts"
_OPEN = (FileStatus.PENDING, FileStatus.SCORING)
_MAX_REASON_LENGTH = 64


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
    """Add a received mask file to the queue (status ``pending``), once per path and content.

    The same bytes at the same path are never enqueued twice, even by two processes at once (a unique
    constraint on (path, content_hash) with ``ON CONFLICT DO NOTHING``); changed bytes at the same path are
    a new file.

    Args:
        path: the mask file as the watcher saw it.
        content_hash: hash of its bytes (e.g. SHA-256 hex), at most 128 characters.
        case_key: case identifier parsed from the name or sidecar.
        phase: cardiac phase ("ED", "ES"), None when unknown.
        segmenter_name, segmenter_version: the model that produced the mask (created on first use).
        site, scanner, image_path: optional provenance from the sidecar.
        received_at: when the file arrived (timezone-aware); now when None.
    Returns: (file id, True if a row was created / False if this path and content were already known).
    Raises: ValueError for an empty identifier or a naive timestamp; DatabaseUnavailable.
    """
    _require_text(path=path, content_hash=content_hash, case_key=case_key)
    _require_text(segmenter_name=segmenter_name, segmenter_version=segmenter_version)
    when = aware(received_at, "received_at")
    insert = dialect_insert(session)
    with write_transaction(session):
        segmenter_id = _segmenter_id(session, segmenter_name, segmenter_version, when)
        stmt = (
            insert(MaskFile)
            .values(
                path=path,
                content_hash=content_hash,
                case_key=case_key,
                phase=phase,
                site=site,
                scanner=scanner,
                image_path=image_path,
                segmenter_id=segmenter_id,
                status=FileStatus.PENDING,
                attempts=0,
                received_at=when,
            )
            .on_conflict_do_nothing(index_elements=["path", "content_hash"])
            .returning(MaskFile.id)
        )
        file_id = session.scalar(stmt)
        created = file_id is not None
        if not created:
            file_id = session.scalar(
                sa.select(MaskFile.id).where(MaskFile.path == path, MaskFile.content_hash == content_hash)
            )
    return _found(file_id, "mask file"), created


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
    _require_text(worker_id=worker_id)
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
            sa.select(
                MaskFile.id,
                MaskFile.path,
                MaskFile.content_hash,
                MaskFile.case_key,
                MaskFile.phase,
                MaskFile.site,
                MaskFile.scanner,
                MaskFile.image_path,
                Segmenter.name,
                Segmenter.version,
                MaskFile.attempts,
                MaskFile.received_at,
                MaskFile.lease_expires_at,
            )
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .where(MaskFile.id.in_(ids))
            .order_by(MaskFile.received_at, MaskFile.id)
        ).all()
    return [
        ClaimedFile(
            file_id=r[0],
            path=r[1],
            content_hash=r[2],
            case_key=r[3],
            phase=r[4],
            site=r[5],
            scanner=r[6],
            image_path=r[7],
            segmenter_name=r[8],
            segmenter_version=r[9],
            attempts=r[10],
            received_at=r[11],
            lease_expires_at=r[12],
        )
        for r in rows
    ]


def requeue_held(
    session: Session,
    held: sa.ColumnElement[bool],
    *,
    when: datetime,
    max_attempts: int | None,
    rejection_detail: str,
) -> tuple[int, int]:
    """Put ``scoring`` rows matching ``held`` back to pending, rejecting those already claimed
    ``max_attempts`` times (``too_many_attempts``); run inside the caller's write transaction.

    Returns: (requeued, rejected) row counts.
    """
    rejected = 0
    if max_attempts is not None:
        rejected = _reject_rows(
            session,
            sa.and_(held, MaskFile.attempts >= max_attempts),
            when=when,
            reason=REJECTION_TOO_MANY_ATTEMPTS,
            detail=rejection_detail,
        )
    requeued = session.execute(
        sa.update(MaskFile)
        .where(held)
        .values(status=FileStatus.PENDING, worker_id=None, lease_expires_at=None),
        execution_options={"synchronize_session": False},
    ).rowcount
    return requeued, rejected


def reclaim_expired(session: Session, now: datetime | None = None, *, max_attempts: int | None = None) -> int:
    """Put ``scoring`` files whose lease has expired (their worker died or hung) back to ``pending``.

    Args:
        now: the time to compare leases with (timezone-aware); now when None.
        max_attempts: when given, an expired file already claimed this many times is rejected with
            reason ``"too_many_attempts"`` instead of being queued again (a file that kills its worker).
    Returns: how many files went back to pending.
    Raises: ValueError for max_attempts < 1 or a naive timestamp; DatabaseUnavailable.
    """
    if max_attempts is not None and max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    when = aware(now, "now")
    expired = sa.and_(MaskFile.status == FileStatus.SCORING, MaskFile.lease_expires_at < when)
    with write_transaction(session):
        requeued, rejected = requeue_held(
            session,
            expired,
            when=when,
            max_attempts=max_attempts,
            rejection_detail=f"lease expired on each of {max_attempts} or more claims",
        )
    if requeued or rejected:
        log.warning(
            "expired leases reclaimed",
            extra={"action": "reclaim", "requeued": requeued, "rejected": rejected},
        )
    return requeued


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


def record_scores(
    session: Session,
    file_id: int,
    score: VolumeScore,
    *,
    model_id: int,
    artifacts: Mapping[str, str],
    scored_at: datetime | None = None,
) -> None:
    """Store a file's scores in one transaction: status ``scored``, volume flag, shape and spacing,
    one row per structure, and the artifact paths.

    Args:
        file_id: a ``pending`` or ``scoring`` file.
        score: the scorer's output; nan metrics are stored as NULL.
        model_id: from ``register_model``.
        artifacts: kind -> path, e.g. ``{"pgt": ".../x_pgt.nii.gz", "inconsistency": ...}``.
        scored_at: when (timezone-aware); now when None.
    Raises: FileStateError when the file does not exist or is already scored or rejected (nothing is
        written); ValueError for duplicate structures; DatabaseUnavailable.
    """
    structures = [s.structure for s in score.structures]
    if len(set(structures)) != len(structures):
        raise ValueError(f"each structure may be scored once, got {[str(s) for s in structures]}")
    when = aware(scored_at, "scored_at")
    with write_transaction(session):
        updated = session.execute(
            sa.update(MaskFile)
            .where(MaskFile.id == file_id, MaskFile.status.in_(_OPEN))
            .values(
                status=FileStatus.SCORED,
                scored_at=when,
                flag=score.flag,
                model_id=model_id,
                shape_z=int(score.shape[0]),
                shape_y=int(score.shape[1]),
                shape_x=int(score.shape[2]),
                spacing_z_mm=float(score.spacing_mm[0]),
                spacing_y_mm=float(score.spacing_mm[1]),
                spacing_x_mm=float(score.spacing_mm[2]),
                slices_scored=int(score.slices_scored),
                timings_s={k: float(v) for k, v in score.timings_s.items()},
                worker_id=None,
                lease_expires_at=None,
            ),
            execution_options={"synchronize_session": False},
        ).rowcount
        if updated != 1:
            raise _state_error(session, file_id, "record scores")
        if score.structures:
            session.execute(sa.insert(StructureScoreRow), _structure_rows(file_id, score))
        if artifacts:
            session.execute(
                sa.insert(Artifact),
                [{"file_id": file_id, "kind": kind, "path": str(p)} for kind, p in artifacts.items()],
            )


def record_rejection(
    session: Session, file_id: int, reason: str, detail: str, *, rejected_at: datetime | None = None
) -> None:
    """Mark a file ``rejected`` for good, with a stable reason code and a detail message.

    Args:
        file_id: a ``pending`` or ``scoring`` file.
        reason: stable code such as ``"corrupt"`` or ``"labels_outside_map"`` (at most 64 characters).
        detail: one sentence for the operator.
        rejected_at: when (timezone-aware); now when None.
    Raises: FileStateError when the file does not exist or is already scored or rejected; ValueError for
        an empty or over-long reason; DatabaseUnavailable.
    """
    _require_text(reason=reason)
    if len(reason) > _MAX_REASON_LENGTH:
        raise ValueError(f"reason must be a short code (<= {_MAX_REASON_LENGTH} characters), got {reason!r}")
    when = aware(rejected_at, "rejected_at")
    with write_transaction(session):
        updated = _reject_rows(
            session,
            sa.and_(MaskFile.id == file_id, MaskFile.status.in_(_OPEN)),
            when=when,
            reason=reason,
            detail=detail,
        )
        if updated != 1:
            raise _state_error(session, file_id, "reject")


def _structure_rows(file_id: int, score: VolumeScore) -> list[dict[str, Any]]:
    """``structure_scores`` rows of one scored file (nan metrics as NULL)."""
    return [
        {
            "file_id": file_id,
            "structure": s.structure,
            "pdsc": nan_to_none(s.pdsc),
            "phd_mm": nan_to_none(s.phd_mm),
            "flag": s.flag,
            "reasons": list(s.reasons),
            "mask_voxels": int(s.mask_voxels),
            "pgt_voxels": int(s.pgt_voxels),
            "mask_volume_ml": float(s.mask_volume_ml),
        }
        for s in score.structures
    ]


def _reject_rows(
    session: Session, where: sa.ColumnElement[bool], *, when: datetime, reason: str, detail: str
) -> int:
    """Mark the file rows matching ``where`` rejected (releasing any claim); the number of rows."""
    return session.execute(
        sa.update(MaskFile)
        .where(where)
        .values(
            status=FileStatus.REJECTED,
            rejected_at=when,
            rejection_reason=reason,
            rejection_detail=detail,
            worker_id=None,
            lease_expires_at=None,
        ),
        execution_options={"synchronize_session": False},
    ).rowcount


def register_model(session: Session, checkpoint_hash: str, metadata: Mapping[str, Any]) -> int:
    """Return the id of the monitor model with this checkpoint hash, registering it on first use.

    Args:
        checkpoint_hash: hash of the checkpoint file (e.g. SHA-256 hex), at most 128 characters.
        metadata: JSON-serialisable description (training data, epochs, ...); kept from the first call.
    Raises: ValueError for an empty hash or metadata that is not JSON; DatabaseUnavailable.
    """
    _require_text(checkpoint_hash=checkpoint_hash)
    try:
        document = json.loads(json.dumps(dict(metadata), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model metadata must be JSON-serialisable: {exc}") from exc
    insert = dialect_insert(session)
    with write_transaction(session):
        model_id = session.scalar(
            insert(MonitorModel)
            .values(checkpoint_hash=checkpoint_hash, metadata_json=document, registered_at=aware(None, "now"))
            .on_conflict_do_nothing(index_elements=["checkpoint_hash"])
            .returning(MonitorModel.id)
        )
        if model_id is None:
            model_id = session.scalar(
                sa.select(MonitorModel.id).where(MonitorModel.checkpoint_hash == checkpoint_hash)
            )
    return _found(model_id, "monitor model")


def add_review(
    session: Session,
    file_id: int,
    *,
    verdict: ReviewVerdict | str,
    reviewer: str,
    note: str | None = None,
    reviewed_at: datetime | None = None,
) -> int:
    """Record a QA reviewer's verdict on a scored file; a file may be reviewed several times.

    Args:
        verdict: ``confirmed``, ``false_alarm`` or ``unsure``.
        reviewer: who reviewed (user name).
        note: optional free text.
        reviewed_at: when (timezone-aware); now when None.
    Returns: the review id.
    Raises: FileStateError when the file does not exist or is not scored; ValueError for an unknown
        verdict or empty reviewer; DatabaseUnavailable.
    """
    verdict = ReviewVerdict(verdict)
    _require_text(reviewer=reviewer)
    when = aware(reviewed_at, "reviewed_at")
    with write_transaction(session):
        status = session.scalar(sa.select(MaskFile.status).where(MaskFile.id == file_id))
        if status != FileStatus.SCORED:
            raise _state_error(session, file_id, "review")
        review_id = session.scalar(
            sa.insert(Review)
            .values(file_id=file_id, verdict=verdict, reviewer=reviewer, note=note, reviewed_at=when)
            .returning(Review.id)
        )
    return _found(review_id, "review")


def bulk_insert_scored(
    session: Session,
    files: Iterable[FinishedFile],
    *,
    model_id: int,
    chunk_size: int = 5000,
    analyze: bool = True,
) -> list[int]:
    """Store many files that were already scored or rejected, in one transaction, with Core
    ``executemany`` inserts: the file rows, their structure scores, artifacts and reviews.

    For imports, benchmarks and tests: 100,000 files take seconds, where ``enqueue_file`` plus
    ``record_scores`` per file take minutes. The rows are the ones those functions write (status
    ``scored`` or ``rejected``, one attempt, nan metrics as NULL); segmenters are created on first use.

    Args:
        files: the files; each has a ``score`` or a ``rejection``, not both.
        model_id: the monitor model of the scores (``register_model``).
        chunk_size: rows per ``executemany`` call (>= 1).
        analyze: on PostgreSQL, ``ANALYZE`` the written tables afterwards, as after any bulk load, so
            the planner knows the new rows now rather than after autovacuum's next round (without
            statistics it plans the dashboard's aggregates for empty tables: 2-3x slower). SQLite is
            left without statistics: the store's queries are planned for its heuristics.
    Returns: the new file ids, in the order of ``files``.
    Raises: ValueError for a file with both or neither of score and rejection, an empty identifier, a
        naive timestamp, a review of a rejected file, or a (path, content_hash) that is already stored
        or repeats in ``files`` (then nothing is written); DatabaseUnavailable.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    batch = list(files)
    for item in batch:
        _check_finished(item)
    files_table, scores_table = MaskFile.__table__, StructureScoreRow.__table__
    with write_transaction(session):
        first_seen: dict[tuple[str, str], datetime] = {}
        for item in batch:
            key = (item.segmenter_name, item.segmenter_version)
            first_seen[key] = min(first_seen.get(key, item.received_at), item.received_at)
        segmenters = {key: _segmenter_id(session, *key, when) for key, when in first_seen.items()}
        try:
            for chunk in _chunks(batch, chunk_size):
                session.execute(
                    sa.insert(files_table), [_file_row(item, segmenters, model_id) for item in chunk]
                )
        except sa.exc.IntegrityError as exc:
            raise ValueError(
                "a file of the batch is already stored or repeats in the batch (same path and "
                f"content hash); nothing was written: {exc.orig}"
            ) from exc
        # ids by the unique (path, content_hash): a plain executemany is several times faster than
        # INSERT ... RETURNING in parameter order, which SQLite can only do one row at a time
        found: dict[tuple[str, str], int] = {}
        key = sa.tuple_(files_table.c.path, files_table.c.content_hash)
        for chunk in _chunks(batch, min(chunk_size, 1000)):
            pairs = [(item.path, item.content_hash) for item in chunk]
            select_ids = sa.select(files_table.c.id, files_table.c.path, files_table.c.content_hash)
            for file_id, path, content_hash in session.execute(select_ids.where(key.in_(pairs))):
                found[(path, content_hash)] = file_id
        ids = [found[(item.path, item.content_hash)] for item in batch]
        scores = [
            row
            for file_id, item in zip(ids, batch, strict=True)
            if item.score is not None
            for row in _structure_rows(file_id, item.score)
        ]
        artifacts = [
            {"file_id": file_id, "kind": kind, "path": str(path)}
            for file_id, item in zip(ids, batch, strict=True)
            for kind, path in item.artifacts.items()
        ]
        reviews = [
            {
                "file_id": file_id,
                "verdict": ReviewVerdict(r.verdict),
                "reviewer": r.reviewer,
                "note": r.note,
                "reviewed_at": r.reviewed_at,
            }
            for file_id, item in zip(ids, batch, strict=True)
            for r in item.reviews
        ]
        for table, rows in (
            (scores_table, scores),
            (Artifact.__table__, artifacts),
            (Review.__table__, reviews),
        ):
            for chunk in _chunks(rows, chunk_size):
                session.execute(sa.insert(table), chunk)
    if analyze and session.get_bind().dialect.name == "postgresql":
        tables = ", ".join(t.name for t in (files_table, scores_table, Artifact.__table__, Review.__table__))
        with write_transaction(session):
            session.execute(sa.text(f"ANALYZE {tables}"))
    log.info("files inserted in bulk", extra={"action": "bulk_insert", "files": len(ids)})
    return ids


def _check_finished(item: FinishedFile) -> None:
    """Raise ValueError for a ``FinishedFile`` that ``bulk_insert_scored`` cannot store."""
    _require_text(path=item.path, content_hash=item.content_hash, case_key=item.case_key)
    _require_text(segmenter_name=item.segmenter_name, segmenter_version=item.segmenter_version)
    if (item.score is None) == (item.rejection is None):
        raise ValueError(
            f"{item.path}: give a score or a rejection, not {'both' if item.score else 'neither'}"
        )
    if item.rejection is not None:
        _require_text(reason=item.rejection[0])
        if len(item.rejection[0]) > _MAX_REASON_LENGTH:
            raise ValueError(f"{item.path}: rejection reason must be <= {_MAX_REASON_LENGTH} characters")
        if item.reviews:
            raise ValueError(f"{item.path}: a rejected file cannot be reviewed")
    if item.score is not None:
        structures = [s.structure for s in item.score.structures]
        if len(set(structures)) != len(structures):
            raise ValueError(
                f"{item.path}: each structure may be scored once, got {[str(s) for s in structures]}"
            )
    aware(item.received_at, "received_at")
    aware(item.done_at, "done_at")
    for review in item.reviews:
        _require_text(reviewer=review.reviewer)
        aware(review.reviewed_at, "reviewed_at")


def _file_row(item: FinishedFile, segmenters: Mapping[tuple[str, str], int], model_id: int) -> dict[str, Any]:
    """The ``mask_files`` row of a finished file (what enqueue, claim and record_scores leave behind)."""
    score = item.score
    return {
        "path": item.path,
        "content_hash": item.content_hash,
        "case_key": item.case_key,
        "phase": item.phase,
        "site": item.site,
        "scanner": item.scanner,
        "image_path": item.image_path,
        "segmenter_id": segmenters[(item.segmenter_name, item.segmenter_version)],
        "model_id": model_id if score is not None else None,
        "status": FileStatus.SCORED if score is not None else FileStatus.REJECTED,
        "attempts": 1,
        "worker_id": None,
        "lease_expires_at": None,
        "received_at": item.received_at,
        "started_at": item.received_at,
        "scored_at": item.done_at if score is not None else None,
        "rejected_at": item.done_at if score is None else None,
        "rejection_reason": item.rejection[0] if item.rejection else None,
        "rejection_detail": item.rejection[1] if item.rejection else None,
        "flag": score.flag if score is not None else None,
        "shape_z": int(score.shape[0]) if score is not None else None,
        "shape_y": int(score.shape[1]) if score is not None else None,
        "shape_x": int(score.shape[2]) if score is not None else None,
        "spacing_z_mm": float(score.spacing_mm[0]) if score is not None else None,
        "spacing_y_mm": float(score.spacing_mm[1]) if score is not None else None,
        "spacing_x_mm": float(score.spacing_mm[2]) if score is not None else None,
        "slices_scored": int(score.slices_scored) if score is not None else None,
        "timings_s": {k: float(v) for k, v in score.timings_s.items()} if score is not None else None,
    }


def _chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _segmenter_id(session: Session, name: str, version: str, when: datetime) -> int:
    """Id of the segmenter (name, version), created on first use (race-safe)."""
    where = (Segmenter.name == name, Segmenter.version == version)
    found = session.scalar(sa.select(Segmenter.id).where(*where))
    if found is not None:
        return found
    session.execute(
        dialect_insert(session)(Segmenter)
        .values(name=name, version=version, created_at=when)
        .on_conflict_do_nothing(index_elements=["name", "version"])
    )
    return _found(session.scalar(sa.select(Segmenter.id).where(*where)), "segmenter")


def _state_error(session: Session, file_id: int, action: str) -> FileStateError:
    """Explain why ``action`` is not possible on the file."""
    status = session.scalar(sa.select(MaskFile.status).where(MaskFile.id == file_id))
    if status is None:
        return FileStateError(file_id, None, f"cannot {action}: no file with id {file_id}")
    return FileStateError(file_id, str(status), f"cannot {action}: file {file_id} is {status}")


def _found(row_id: int | None, what: str) -> int:
    """The id a statement just wrote or found; a missing one means the database broke its promise."""
    if row_id is None:
        raise StoreError(f"{what} row vanished within its own transaction")
    return row_id


def _require_text(**values: str) -> None:
    """Raise ValueError naming the first empty value."""
    for name, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
