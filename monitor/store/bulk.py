"""Bulk import of finished files: ``bulk_insert_scored`` writes many scored or rejected files at once.

For imports, benchmarks and tests: Core ``executemany`` inserts of the rows ``enqueue_file``,
``claim_batch`` and ``record_scores`` would leave behind, in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.store._rows import MAX_REASON_LENGTH, require_text, segmenter_id, structure_rows
from monitor.store._tx import aware, write_transaction
from monitor.store.models import Artifact, MaskFile, Review, StructureScoreRow
from monitor.store.records import FileStatus, FinishedFile, ReviewVerdict

__all__ = ["bulk_insert_scored"]

log = logging.getLogger(__name__)


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
        segmenters = {key: segmenter_id(session, *key, when) for key, when in first_seen.items()}
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
            for row in structure_rows(file_id, item.score)
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
    require_text(path=item.path, content_hash=item.content_hash, case_key=item.case_key)
    require_text(segmenter_name=item.segmenter_name, segmenter_version=item.segmenter_version)
    if (item.score is None) == (item.rejection is None):
        raise ValueError(
            f"{item.path}: give a score or a rejection, not {'both' if item.score else 'neither'}"
        )
    if item.rejection is not None:
        require_text(reason=item.rejection[0])
        if len(item.rejection[0]) > MAX_REASON_LENGTH:
            raise ValueError(f"{item.path}: rejection reason must be <= {MAX_REASON_LENGTH} characters")
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
        require_text(reviewer=review.reviewer)
        aware(review.reviewed_at, "reviewed_at")


def _file_row(item: FinishedFile, segmenters: Mapping[tuple[str, str], int], model_id: int) -> dict[str, Any]:
    """The ``mask_files`` row of a finished file (what enqueue, claim and record_scores leave behind)."""
    return {
        "path": item.path,
        "content_hash": item.content_hash,
        "case_key": item.case_key,
        "phase": item.phase,
        "site": item.site,
        "scanner": item.scanner,
        "segmenter_id": segmenters[(item.segmenter_name, item.segmenter_version)],
        "attempts": 1,
        "worker_id": None,
        "lease_expires_at": None,
        "received_at": item.received_at,
        "started_at": item.received_at,
        **_outcome_columns(item, model_id),
    }


def _outcome_columns(item: FinishedFile, model_id: int) -> dict[str, Any]:
    """The ``mask_files`` columns of a finished file's outcome: its score (model, flag, geometry, image,
    calibration version) or its rejection; what a rescoring in place replaces."""
    score = item.score
    return {
        "image_path": item.image_path,
        "model_id": model_id if score is not None else None,
        "status": FileStatus.SCORED if score is not None else FileStatus.REJECTED,
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
        "image_used": bool(score.image_used) if score is not None else None,
        "image_reason": item.image_reason if score is not None and not score.image_used else None,
        "image_detail": item.image_detail if score is not None and not score.image_used else None,
        "calibration_version": score.calibration_version if score is not None else None,
    }


def _chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
