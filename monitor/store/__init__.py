"""Results database: SQLAlchemy 2 models, Alembic migrations, the work queue and the dashboard's queries.

Modules: ``engine`` (URLs, engines, sessions), ``models`` (ORM, private), ``records`` (the plain records
returned, and ``FileFilter``), ``queue`` (every work-queue operation), ``repository`` (scores,
rejections, models, reviews), ``bulk`` (imports), ``series`` (time series and histograms), ``alerts``,
``backfill`` (the batch backfill's known files and bulk writes), ``cases`` (one file, status counts), ``export``, ``migrate`` (Alembic as an API).

SQLite by default (one file, WAL mode), PostgreSQL in production (several daemons may share it). The
functions here are the only SQL in cmr-monitor; they take a ``Session`` and plain values or records and
return plain records (frozen dataclasses) or DataFrames, never ORM rows.

Example::

    from monitor.store import check_at_head, enqueue_file, make_engine, make_session_factory

    check_at_head(url)                      # refuse to run on an old schema
    sessions = make_session_factory(make_engine(url))
    with sessions() as session:
        file_id, created = enqueue_file(session, path=p, content_hash=h, case_key="patient101",
                                        phase="ED", segmenter_name="unet", segmenter_version="1.2")
"""

from monitor.store._rows import image_columns
from monitor.store.alerts import ALERT_LEVELS, ALERTS, count_alerts, list_alerts, reviewed_alert_scores
from monitor.store.backfill import KnownFile, RecordedBatch, known_files, record_finished
from monitor.store.bulk import bulk_insert_scored
from monitor.store.cases import get_case, status_counts
from monitor.store.clinical import (
    PATIENT_COLUMNS,
    StoredPatient,
    list_patients,
    patient_frame,
    record_volume_indices,
    update_patient,
)
from monitor.store.engine import (
    SessionTimeouts,
    make_engine,
    make_session_factory,
    normalise_url,
    open_session,
    safe_url,
)
from monitor.store.errors import DatabaseUnavailable, FileStateError, LockTimeout
from monitor.store.export import EXPORT_COLUMNS, EXPORT_FORMATS, export_frame, iter_export_rows, write_export
from monitor.store.migrate import check_at_head, current, downgrade, head_revision, upgrade
from monitor.store.queue import (
    REJECTION_CONTENT_CHANGED,
    REJECTION_MISSING,
    REJECTION_TOO_MANY_ATTEMPTS,
    RETURNING_REASONS,
    QueueState,
    claim_batch,
    enqueue_file,
    expired_claims,
    known_paths,
    queue_state,
    reclaim_expired,
    release,
    requeue_worker,
    scoring_workers,
)
from monitor.store.realized import (
    REALIZED_COLUMNS,
    REALIZED_SOURCES,
    estimated_vs_realized,
    file_ids_by_hash,
    record_realized,
)
from monitor.store.records import (
    ARTIFACT_INCONSISTENCY,
    ARTIFACT_PGT,
    AlertRecord,
    CaseRecord,
    ClaimedFile,
    FileFilter,
    FileStatus,
    FinishedFile,
    NewReview,
    ReviewRecord,
    ReviewVerdict,
    SegmenterCounts,
    StatusCounts,
    StoredCheck,
    StoredStructureScore,
)
from monitor.store.repository import (
    add_review,
    last_scoring_model,
    record_rejection,
    record_scores,
    register_model,
)
from monitor.store.series import score_histogram, series_columns, structure_time_series, volume_time_series

__all__ = [
    "ALERTS",
    "ALERT_LEVELS",
    "ARTIFACT_INCONSISTENCY",
    "ARTIFACT_PGT",
    "EXPORT_COLUMNS",
    "EXPORT_FORMATS",
    "PATIENT_COLUMNS",
    "REALIZED_COLUMNS",
    "REALIZED_SOURCES",
    "REJECTION_CONTENT_CHANGED",
    "REJECTION_MISSING",
    "REJECTION_TOO_MANY_ATTEMPTS",
    "RETURNING_REASONS",
    "AlertRecord",
    "CaseRecord",
    "ClaimedFile",
    "DatabaseUnavailable",
    "FileFilter",
    "FileStateError",
    "FileStatus",
    "FinishedFile",
    "KnownFile",
    "LockTimeout",
    "NewReview",
    "QueueState",
    "RecordedBatch",
    "ReviewRecord",
    "ReviewVerdict",
    "SegmenterCounts",
    "SessionTimeouts",
    "StatusCounts",
    "StoredCheck",
    "StoredPatient",
    "StoredStructureScore",
    "add_review",
    "bulk_insert_scored",
    "check_at_head",
    "claim_batch",
    "count_alerts",
    "current",
    "downgrade",
    "enqueue_file",
    "estimated_vs_realized",
    "expired_claims",
    "export_frame",
    "file_ids_by_hash",
    "get_case",
    "head_revision",
    "image_columns",
    "iter_export_rows",
    "known_files",
    "known_paths",
    "last_scoring_model",
    "list_alerts",
    "list_patients",
    "make_engine",
    "make_session_factory",
    "normalise_url",
    "open_session",
    "patient_frame",
    "queue_state",
    "reclaim_expired",
    "record_finished",
    "record_realized",
    "record_rejection",
    "record_scores",
    "record_volume_indices",
    "register_model",
    "release",
    "requeue_worker",
    "reviewed_alert_scores",
    "safe_url",
    "score_histogram",
    "scoring_workers",
    "series_columns",
    "status_counts",
    "structure_time_series",
    "update_patient",
    "upgrade",
    "volume_time_series",
    "write_export",
]
