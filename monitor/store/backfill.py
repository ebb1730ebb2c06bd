"""The batch backfill's two statements: which files are already stored, and many finished files at once.

``known_files`` tells, for the paths of a batch, which contents (path, content hash) the database
already holds, in what state and under which checkpoint and calibration they were scored, so that a
backfill run skips them (a second run adds nothing, a killed run resumes where it stopped) unless their
score is stale (``KnownFile.stale``). ``record_finished`` writes scored and rejected files in one
transaction per call: Core ``executemany`` inserts of the rows that ``enqueue_file``, ``claim_batch``
and ``record_scores`` (or ``record_rejection``) would leave behind, idempotent on the unique
(path, content_hash): a content another writer stored meanwhile is left as it is and reported.

A stale content (scored under another checkpoint or calibration version) that the caller rescored is
rescored in place: the database holds one row per (path, content_hash), so its row keeps its id (and
with it its reviews, realized metrics, received time and place in the path's history) and takes the new
score: model, calibration version, flag, ``scored_at``, image columns, timings; its structure scores
and artifact rows are replaced. Its clinical volumes (``volume_clinical``) are deleted when the
checkpoint changed (the pGT they hold is the old model's), kept when only the calibration changed.
SQLite and PostgreSQL alike.

Example::

    stored = known_files(session, [str(p) for p in paths])       # {(path, hash): KnownFile}
    written = record_finished(session, finished, model_id=model_id, artifacts=write_artifacts,
                              rescore={i for i, f in enumerate(finished) if is_stale(f)})
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.store._rows import segmenter_id, structure_rows
from monitor.store._tx import aware, dialect_insert, read_transaction, write_transaction
from monitor.store.bulk import _check_finished, _chunks, _file_row, _outcome_columns
from monitor.store.models import Artifact, MaskFile, MonitorModel, StructureScoreRow, VolumeClinicalRow
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
    calibration_version: str | None = None  #: the calibration of its estimates; None unless calibrated

    def stale(self, checkpoint_hash: str, calibration_version: str | None) -> bool:
        """Whether it was scored, but under another checkpoint or calibration version than these (no
        calibration is a version of its own: None). Pending, scoring and rejected rows are never stale."""
        return self.status == FileStatus.SCORED and (
            self.checkpoint_hash != checkpoint_hash or self.calibration_version != calibration_version
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedBatch:
    """What ``record_finished`` wrote."""

    file_ids: dict[int, int]  #: index in the batch -> new file id, for the files written
    already_stored: tuple[int, ...]  #: indexes of files whose (path, content_hash) was stored before
    #: index in the batch -> file id, for the stale rows rescored in place (not in ``already_stored``)
    rescored: dict[int, int] = field(default_factory=dict)


def known_files(session: Session, paths: Iterable[str]) -> dict[tuple[str, str], KnownFile]:
    """Every stored content of ``paths``: (path, content_hash) -> its row's id, status, model and
    calibration version.

    Raises: DatabaseUnavailable.
    """
    with read_transaction(session):
        return _known(session, paths)


def _known(session: Session, paths: Iterable[str]) -> dict[tuple[str, str], KnownFile]:
    """``known_files`` inside the caller's transaction."""
    found: dict[tuple[str, str], KnownFile] = {}
    query = sa.select(
        MaskFile.id,
        MaskFile.path,
        MaskFile.content_hash,
        MaskFile.status,
        MaskFile.calibration_version,
        MonitorModel.checkpoint_hash,
    ).outerjoin(MonitorModel, MonitorModel.id == MaskFile.model_id)
    for chunk in _chunks(sorted(set(paths)), _PATHS_PER_QUERY):
        for row in session.execute(query.where(MaskFile.path.in_(chunk))):
            scored = row.status == FileStatus.SCORED
            found[(row.path, row.content_hash)] = KnownFile(
                file_id=row.id,
                status=FileStatus(row.status),
                checkpoint_hash=row.checkpoint_hash if scored else None,
                calibration_version=row.calibration_version if scored else None,
            )
    return found


def record_finished(
    session: Session,
    files: Sequence[FinishedFile],
    *,
    model_id: int,
    artifacts: Callable[[int, int], dict[str, str]] | None = None,
    when: datetime | None = None,
    rescore: Collection[int] = (),
) -> RecordedBatch:
    """Store many scored or rejected files in one transaction, skipping contents already stored, or
    rescoring in place those of ``rescore`` whose stored score is stale (module docstring).

    Each new row is its path's current row (``superseded_at`` NULL) and the path's other rows are
    marked superseded, as ``enqueue_file`` does; on PostgreSQL the paths are locked for the transaction
    (the advisory locks of ``enqueue_file``, taken in path order), so that a daemon delivering to one of
    them meanwhile still leaves one current row.

    Args:
        files: the finished files; each has a ``score`` or a ``rejection``, not both; their
            ``artifacts`` are ignored (see ``artifacts``).
        model_id: the monitor model of the scores (``register_model``).
        artifacts: called as ``artifacts(index, file_id)`` for each newly written or rescored scored
            file, inside the transaction; returns kind -> path of the artifacts it wrote ({} for none).
        when: when the new rows replace the paths' older rows (timezone-aware); now when None.
        rescore: indexes of scored files that replace the stored score of their content when it is
            stale (``KnownFile.stale`` against ``model_id``'s checkpoint and the file's calibration
            version); a stored content that is not stale (rescored meanwhile, say) is left as it is.
    Returns: the new ids by index in ``files``, the rescored ones, and the indexes left as stored.
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
        stale = [i for i in sorted(set(rescore)) if i not in file_ids and files[i].score is not None]
        rescored = _rescore_in_place(session, files, stale, model_id) if stale else {}
        scores = [
            row
            for i, file_id in (file_ids | rescored).items()
            if (score := files[i].score) is not None
            for row in structure_rows(file_id, score)
        ]
        for chunk in _chunks(scores, _ROWS_PER_CALL):
            session.execute(sa.insert(StructureScoreRow.__table__), chunk)
        if artifacts is not None:
            written = [
                {"file_id": file_id, "kind": kind, "path": path}
                for i, file_id in (file_ids | rescored).items()
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
    already = tuple(i for i in range(len(files)) if i not in file_ids and i not in rescored)
    log.info(
        "finished files recorded",
        extra={
            "action": "record_finished",
            "files": len(file_ids),
            "rescored": len(rescored),
            "already_stored": len(already),
        },
    )
    return RecordedBatch(file_ids=file_ids, already_stored=already, rescored=rescored)


def _rescore_in_place(
    session: Session, files: Sequence[FinishedFile], indexes: Sequence[int], model_id: int
) -> dict[int, int]:
    """Give the stale stored rows of ``files[i]`` (``i`` in ``indexes``, each scored) their new score,
    inside the caller's transaction (module docstring); returns index -> file id of the rows rescored.
    The caller inserts their new structure scores and artifact rows."""
    checkpoint_hash = session.scalar(
        sa.select(MonitorModel.checkpoint_hash).where(MonitorModel.id == model_id)
    )
    if checkpoint_hash is None:
        raise ValueError(f"no monitor model with id {model_id}")
    known = _known(session, [files[i].path for i in indexes])
    rescored: dict[int, int] = {}
    new_model: list[int] = []
    for i in indexes:
        item, score = files[i], files[i].score
        stored = known.get((item.path, item.content_hash))
        if score is None or stored is None or not stored.stale(checkpoint_hash, score.calibration_version):
            continue
        rescored[i] = stored.file_id
        if stored.checkpoint_hash != checkpoint_hash:
            new_model.append(stored.file_id)
        session.execute(
            sa.update(MaskFile)
            .where(MaskFile.id == stored.file_id)
            .values(**_outcome_columns(item, model_id)),
            execution_options={"synchronize_session": False},
        )
    ids = sorted(rescored.values())
    for chunk in _chunks(ids, _PATHS_PER_QUERY):
        for table in (StructureScoreRow, Artifact):
            session.execute(sa.delete(table).where(table.file_id.in_(chunk)))
    for chunk in _chunks(sorted(new_model), _PATHS_PER_QUERY):
        session.execute(sa.delete(VolumeClinicalRow).where(VolumeClinicalRow.file_id.in_(chunk)))
    return rescored
