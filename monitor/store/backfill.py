"""The batch backfill's two statements: which files are already stored, and many finished files at once.

``known_files`` tells, for the paths of a batch, which contents (path, content hash) the database
already holds and in what state, so that a backfill run skips them (a second run adds nothing, a killed
run resumes where it stopped). ``record_finished`` writes scored and rejected files in one transaction
per call: Core ``executemany`` inserts of the rows that ``enqueue_file``, ``claim_batch`` and
``record_scores`` (or ``record_rejection``) would leave behind, idempotent on the unique
(path, content_hash): a content another writer stored meanwhile is left as it is and reported.
SQLite and PostgreSQL alike.

Example::

    stored = known_files(session, [str(p) for p in paths])       # {(path, hash): KnownFile}
    written = record_finished(session, finished, model_id=model_id, artifacts=write_artifacts)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.store._rows import segmenter_id, structure_rows
from monitor.store._tx import aware, dialect_insert, read_transaction, write_transaction
from monitor.store.bulk import _check_finished, _chunks, _file_row
from monitor.store.models import Artifact, MaskFile, MonitorModel, StructureScoreRow
from monitor.store.records import FileStatus, FinishedFile

__all__ = ["KnownFile", "RecordedBatch", "known_files", "record_finished"]

log = logging.getLogger(__name__)

#: Paths per ``IN (...)`` list (SQLite's default limit of bound parameters is 32,766).
_PATHS_PER_QUERY = 1000
#: Rows per ``executemany`` call.
_ROWS_PER_CALL = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownFile:
    """A content (path, content hash) the database already holds."""

    file_id: int  #: its row
    status: FileStatus  #: pending, scoring, scored or rejected
    checkpoint_hash: str | None  #: the monitor model that scored it; None unless scored


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedBatch:
    """What ``record_finished`` wrote."""

    file_ids: dict[int, int]  #: index in the batch -> new file id, for the files written
    already_stored: tuple[int, ...]  #: indexes of files whose (path, content_hash) was stored before


def known_files(session: Session, paths: Iterable[str]) -> dict[tuple[str, str], KnownFile]:
    """Every stored content of ``paths``: (path, content_hash) -> its row's id, status and model.

    Raises: DatabaseUnavailable.
    """
    wanted = sorted(set(paths))
    found: dict[tuple[str, str], KnownFile] = {}
    query = sa.select(
        MaskFile.id, MaskFile.path, MaskFile.content_hash, MaskFile.status, MonitorModel.checkpoint_hash
    ).outerjoin(MonitorModel, MonitorModel.id == MaskFile.model_id)
    with read_transaction(session):
        for chunk in _chunks(wanted, _PATHS_PER_QUERY):
            for row in session.execute(query.where(MaskFile.path.in_(chunk))):
                found[(row.path, row.content_hash)] = KnownFile(
                    file_id=row.id,
                    status=FileStatus(row.status),
                    checkpoint_hash=row.checkpoint_hash if row.status == FileStatus.SCORED else None,
                )
    return found


def record_finished(
    session: Session,
    files: Sequence[FinishedFile],
    *,
    model_id: int,
    artifacts: Callable[[int, int], dict[str, str]] | None = None,
    when: datetime | None = None,
) -> RecordedBatch:
    """Store many scored or rejected files in one transaction, skipping contents already stored.

    Each new row is its path's current row (``superseded_at`` NULL) and the path's other rows are
    marked superseded, as ``enqueue_file`` does; on PostgreSQL the paths are locked for the transaction
    (the advisory locks of ``enqueue_file``, taken in path order), so that a daemon delivering to one of
    them meanwhile still leaves one current row.

    Args:
        files: the finished files; each has a ``score`` or a ``rejection``, not both; their
            ``artifacts`` are ignored (see ``artifacts``).
        model_id: the monitor model of the scores (``register_model``).
        artifacts: called as ``artifacts(index, file_id)`` for each newly written scored file, inside
            the transaction; returns kind -> path of the artifacts it wrote ({} for none).
        when: when the new rows replace the paths' older rows (timezone-aware); now when None.
    Returns: the new ids by index in ``files``, and the indexes that were already stored.
    Raises: ValueError for a file ``bulk_insert_scored`` refuses, or a (path, content_hash) that
        repeats in ``files`` (then nothing is written); DatabaseUnavailable (nothing is written).
    """
    now = aware(when, "when")
    for item in files:
        _check_finished(item)
    keys = [(item.path, item.content_hash) for item in files]
    if len(set(keys)) != len(keys):
        raise ValueError("a (path, content_hash) repeats in the batch; nothing was written")
    if not files:
        return RecordedBatch(file_ids={}, already_stored=())
    files_table = MaskFile.__table__
    insert = dialect_insert(session)(files_table).on_conflict_do_nothing(
        index_elements=["path", "content_hash"]
    )
    index_of = {key: i for i, key in enumerate(keys)}
    with write_transaction(session):
        if session.get_bind().dialect.name == "postgresql":  # one statement, the paths in order
            session.execute(
                sa.text(
                    "SELECT pg_advisory_xact_lock(hashtextextended(p, 0)) FROM unnest(CAST(:paths AS text[])) AS p"
                ),
                {"paths": sorted({item.path for item in files})},
            )
        first_seen: dict[tuple[str, str], datetime] = {}
        for item in files:
            key = (item.segmenter_name, item.segmenter_version)
            first_seen[key] = min(first_seen.get(key, item.received_at), item.received_at)
        segmenters = {key: segmenter_id(session, *key, seen) for key, seen in first_seen.items()}
        file_ids: dict[int, int] = {}
        returning = insert.returning(files_table.c.id, files_table.c.path, files_table.c.content_hash)
        for chunk in _chunks(list(files), _ROWS_PER_CALL):
            rows = [_file_row(item, segmenters, model_id) for item in chunk]
            for row in session.execute(returning, rows):
                file_ids[index_of[(row.path, row.content_hash)]] = row.id
        scores = [
            row
            for i, file_id in file_ids.items()
            if (score := files[i].score) is not None
            for row in structure_rows(file_id, score)
        ]
        for chunk in _chunks(scores, _ROWS_PER_CALL):
            session.execute(sa.insert(StructureScoreRow.__table__), chunk)
        if artifacts is not None:
            written = [
                {"file_id": file_id, "kind": kind, "path": path}
                for i, file_id in file_ids.items()
                if files[i].score is not None
                for kind, path in artifacts(i, file_id).items()
            ]
            for chunk in _chunks(written, _ROWS_PER_CALL):
                session.execute(sa.insert(Artifact.__table__), chunk)
        new_ids = sorted(file_ids.values())
        new_paths = sorted({files[i].path for i in file_ids})
        for chunk in _chunks(new_paths, _PATHS_PER_QUERY):
            session.execute(
                sa.update(MaskFile)
                .where(
                    MaskFile.path.in_(chunk),
                    MaskFile.superseded_at.is_(None),
                    MaskFile.id.not_in(new_ids),
                )
                .values(superseded_at=now),
                execution_options={"synchronize_session": False},
            )
    already = tuple(i for i in range(len(files)) if i not in file_ids)
    log.info(
        "finished files recorded",
        extra={"action": "record_finished", "files": len(file_ids), "already_stored": len(already)},
    )
    return RecordedBatch(file_ids=file_ids, already_stored=already)
