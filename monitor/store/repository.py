"""Results: every statement that finishes a file or records what scored it and what a reviewer said.

``record_scores`` (status ``scored``, structure rows, artifacts), ``record_rejection`` (status
``rejected`` with a reason code), ``register_model`` (the autoencoder checkpoint), ``add_review`` and
``last_scoring_model``. Each function takes a ``Session`` and plain values or records, runs in one
transaction of its own and commits it (a read transaction left open by the caller is ended first).
Nothing returned is an ORM row. The queue itself is ``monitor.store.queue``; bulk imports are
``monitor.store.bulk``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.io.images import ImagePairing
from monitor.qc.records import VolumeScore
from monitor.store._rows import (
    MAX_REASON_LENGTH,
    OPEN,
    image_columns,
    reject_rows,
    require_text,
    state_error,
    structure_rows,
    written_id,
)
from monitor.store._tx import aware, dialect_insert, read_transaction, write_transaction
from monitor.store.models import Artifact, MaskFile, MonitorModel, Review, StructureScoreRow
from monitor.store.records import FileStatus, ReviewVerdict

__all__ = ["add_review", "last_scoring_model", "record_rejection", "record_scores", "register_model"]


def record_scores(
    session: Session,
    file_id: int,
    score: VolumeScore,
    *,
    model_id: int,
    artifacts: Mapping[str, str],
    scored_at: datetime | None = None,
    image: ImagePairing | None = None,
) -> None:
    """Store a file's scores in one transaction: status ``scored``, volume flag, shape and spacing,
    whether an MR image was used (and which, or why not), one row per structure with its evidence, and
    the artifact paths.

    Args:
        file_id: a ``pending`` or ``scoring`` file.
        score: the scorer's output; nan metrics are stored as NULL.
        model_id: from ``register_model``.
        artifacts: kind -> path, e.g. ``{"pgt": ".../x_pgt.nii.gz", "inconsistency": ...}``.
        scored_at: when (timezone-aware); now when None.
        image: the MR image pairing of ``monitor.io.images`` (its path replaces ``image_path`` when one
            was found); ``image_used`` itself is ``score.image_used``.
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
            .where(MaskFile.id == file_id, MaskFile.status.in_(OPEN))
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
                **image_columns(score, image),
                worker_id=None,
                lease_expires_at=None,
                # only when a calibration ran: the same statement as before the column existed
                **({"calibration_version": score.calibration_version} if score.calibration_version else {}),
            ),
            execution_options={"synchronize_session": False},
        ).rowcount
        if updated != 1:
            raise state_error(session, file_id, "record scores")
        # one multi-row INSERT each, not executemany: psycopg pipelines an executemany, and PostgreSQL
        # (15) does not end a session that freezes after one (idle_in_transaction_session_timeout)
        if score.structures:
            session.execute(sa.insert(StructureScoreRow).values(structure_rows(file_id, score)))
        if artifacts:
            session.execute(
                sa.insert(Artifact).values(
                    [{"file_id": file_id, "kind": kind, "path": str(p)} for kind, p in artifacts.items()]
                )
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
    require_text(reason=reason)
    if len(reason) > MAX_REASON_LENGTH:
        raise ValueError(f"reason must be a short code (<= {MAX_REASON_LENGTH} characters), got {reason!r}")
    when = aware(rejected_at, "rejected_at")
    with write_transaction(session):
        updated = reject_rows(
            session,
            sa.and_(MaskFile.id == file_id, MaskFile.status.in_(OPEN)),
            when=when,
            reason=reason,
            detail=detail,
        )
        if updated != 1:
            raise state_error(session, file_id, "reject")


def register_model(session: Session, checkpoint_hash: str, metadata: Mapping[str, Any]) -> int:
    """Return the id of the monitor model with this checkpoint hash, registering it on first use.

    Args:
        checkpoint_hash: hash of the checkpoint file (e.g. SHA-256 hex), at most 128 characters.
        metadata: JSON-serialisable description (training data, epochs, ...); kept from the first call.
    Raises: ValueError for an empty hash or metadata that is not JSON; DatabaseUnavailable.
    """
    require_text(checkpoint_hash=checkpoint_hash)
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
    return written_id(model_id, "monitor model")


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
    require_text(reviewer=reviewer)
    when = aware(reviewed_at, "reviewed_at")
    with write_transaction(session):
        status = session.scalar(sa.select(MaskFile.status).where(MaskFile.id == file_id))
        if status != FileStatus.SCORED:
            raise state_error(session, file_id, "review")
        review_id = session.scalar(
            sa.insert(Review)
            .values(file_id=file_id, verdict=verdict, reviewer=reviewer, note=note, reviewed_at=when)
            .returning(Review.id)
        )
    return written_id(review_id, "review")
