"""Realized metrics: the real Dice and HD (mm) of scored files that have ground truth, and the
"estimated vs realized" table the dashboard draws per segmenter version.

``record_realized`` writes (or replaces) a file's real metrics per structure, found by the file's id or
by its content hash (``calibrate`` and ``evaluate --db`` know the bytes, not the row);
``estimated_vs_realized`` joins them with the stored estimates (eDSC, eHD and their intervals, the
failure model's ``p_failure``) and pseudo metrics, one row per file and structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.labels import Structure
from monitor.qc.records import ESTIMATE_FIELDS
from monitor.store._sql import file_conditions
from monitor.store._tx import aware, dialect_insert, nan_to_none, read_transaction, write_transaction
from monitor.store.models import MaskFile, RealizedMetric, Segmenter, StructureScoreRow
from monitor.store.records import FileFilter, FileStatus

__all__ = [
    "REALIZED_COLUMNS",
    "REALIZED_SOURCES",
    "estimated_vs_realized",
    "file_ids_by_hash",
    "record_realized",
]

#: Where realized metrics come from.
REALIZED_SOURCES = ("calibrate", "evaluate", "demo")
#: Columns of ``estimated_vs_realized``.
REALIZED_COLUMNS = (
    "file_id",
    "segmenter_name",
    "segmenter_version",
    "case_key",
    "phase",
    "structure",
    "calibration_version",
    "pdsc",
    "phd_mm",
    *ESTIMATE_FIELDS,
    "p_failure",
    "dsc",
    "hd_mm",
    "source",
)


def file_ids_by_hash(session: Session, content_hashes: list[str]) -> dict[str, int]:
    """Content hash -> id of a scored file with those bytes (the latest, when several paths have them)."""
    if not content_hashes:
        return {}
    with read_transaction(session):
        rows = session.execute(
            sa.select(MaskFile.content_hash, sa.func.max(MaskFile.id))
            .where(MaskFile.content_hash.in_(content_hashes), MaskFile.status == FileStatus.SCORED)
            .group_by(MaskFile.content_hash)
        ).all()
    return {h: int(i) for h, i in rows}


def record_realized(
    session: Session,
    file_id: int,
    metrics: Mapping[Structure, tuple[float, float]],
    *,
    source: str,
    recorded_at: datetime | None = None,
) -> None:
    """Store (or replace) a file's real Dice and HD (mm) per structure in one transaction.

    Args:
        file_id: a scored file.
        metrics: structure -> (real Dice 0-1, real HD mm); nan is stored as NULL.
        source: one of ``REALIZED_SOURCES``.
        recorded_at: when (timezone-aware); now when None.
    Raises: ValueError for an unknown source.
    """
    if source not in REALIZED_SOURCES:
        raise ValueError(f"source must be one of {REALIZED_SOURCES}, got {source!r}")
    when = aware(recorded_at, "recorded_at")
    rows = [
        {
            "file_id": file_id,
            "structure": Structure(s),
            "dsc": nan_to_none(d),
            "hd_mm": nan_to_none(h),
            "source": source,
            "recorded_at": when,
        }
        for s, (d, h) in metrics.items()
    ]
    if not rows:
        return
    with write_transaction(session):
        insert = dialect_insert(session)(RealizedMetric).values(rows)
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["file_id", "structure"],
                set_={
                    "dsc": insert.excluded.dsc,
                    "hd_mm": insert.excluded.hd_mm,
                    "source": insert.excluded.source,
                    "recorded_at": insert.excluded.recorded_at,
                },
            )
        )


def estimated_vs_realized(session: Session, filters: FileFilter | None = None) -> pd.DataFrame:
    """Stored estimates beside the realized metrics, one row per file and structure with both.

    Returns: a frame with ``REALIZED_COLUMNS`` (NULL as nan), ordered by segmenter, version, file.
    """
    filters = filters or FileFilter()
    s, r = StructureScoreRow, RealizedMetric
    query = (
        sa.select(
            MaskFile.id.label("file_id"),
            Segmenter.name.label("segmenter_name"),
            Segmenter.version.label("segmenter_version"),
            MaskFile.case_key,
            MaskFile.phase,
            s.structure,
            MaskFile.calibration_version,
            s.pdsc,
            s.phd_mm,
            s.edsc,
            s.edsc_lo,
            s.edsc_hi,
            s.ehd_mm,
            s.ehd_mm_lo,
            s.ehd_mm_hi,
            s.p_failure,
            r.dsc,
            r.hd_mm,
            r.source,
        )
        .join(Segmenter, Segmenter.id == MaskFile.segmenter_id)
        .join(s, s.file_id == MaskFile.id)
        .join(r, (r.file_id == MaskFile.id) & (r.structure == s.structure))
        .where(*file_conditions(filters))
        .order_by(Segmenter.name, Segmenter.version, MaskFile.id, s.structure)
    )
    with read_transaction(session):
        rows = session.execute(query).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=list(REALIZED_COLUMNS))
    frame["structure"] = frame["structure"].map(lambda v: Structure(v).value if v is not None else v)
    numeric = list(REALIZED_COLUMNS[REALIZED_COLUMNS.index("pdsc") : REALIZED_COLUMNS.index("source")])
    frame[numeric] = frame[numeric].astype(float)
    return frame
