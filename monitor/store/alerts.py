"""The alert queue for the dashboard: flagged files, their count, and reviewed alerts with their
structure scores (for the precision of each flag type).

Which files: a ``FileFilter`` (levels default to the alert levels, suspicious and erroneous); times are
UTC, ranges half-open ``[start, end)`` on the scoring time.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.levels import FlagLevel
from monitor.store._frames import empty, fetch, finish, segmenter_names
from monitor.store._sql import FILE_IDENTITY, file_conditions, latest_verdict
from monitor.store._tx import read_transaction
from monitor.store.cases import structure_scores
from monitor.store.models import MaskFile, Review, Segmenter, StructureScoreRow
from monitor.store.records import AlertRecord, FileFilter, ReviewVerdict

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ALERTS",
    "ALERT_LEVELS",
    "REVIEWED_COLUMNS",
    "count_alerts",
    "list_alerts",
    "reviewed_alert_scores",
]

#: Flag levels listed as alerts by default.
ALERT_LEVELS: tuple[FlagLevel, ...] = (FlagLevel.SUSPICIOUS, FlagLevel.ERRONEOUS)
#: Every alert: files flagged suspicious or erroneous, any time, any segmenter, any review state.
ALERTS = FileFilter(levels=ALERT_LEVELS)
#: Columns of ``reviewed_alert_scores``.
REVIEWED_COLUMNS = [
    "file_id",
    "segmenter_name",
    "segmenter_version",
    "scored_at",
    "verdict",
    "structure",
    "flag",
    "reasons",
]


#: The fields of ``AlertRecord`` that come from ``FILE_IDENTITY``.
_ALERT_IDENTITY = ("file_id", "path", "case_key", "phase", "site", "segmenter_name", "segmenter_version")


def _alerts(filters: FileFilter) -> FileFilter:
    """``filters`` with the alert levels when it names none."""
    return filters if filters.levels is not None else replace(filters, levels=ALERT_LEVELS)


def list_alerts(
    session: Session,
    filters: FileFilter = ALERTS,
    *,
    limit: int = 50,
    offset: int = 0,
) -> list[AlertRecord]:
    """Flagged files, unreviewed first, then most severe, then most recent.

    Args:
        filters: which files (``FileFilter``): volume flag levels (None: suspicious and erroneous); with
            ``structure``, the levels of that structure's flag; segmenter / version; half-open range of
            scoring time; review state.
        limit, offset: page size (>= 1) and start.
    Returns: one page of alerts.
    Raises: ValueError for bad paging; DatabaseUnavailable.
    """
    if limit < 1 or offset < 0:
        raise ValueError(f"need limit >= 1 and offset >= 0, got limit={limit}, offset={offset}")
    conditions = file_conditions(_alerts(filters))
    has_review = sa.exists().where(Review.file_id == MaskFile.id)
    severity = sa.case(
        (MaskFile.flag == FlagLevel.ERRONEOUS, 2), (MaskFile.flag == FlagLevel.SUSPICIOUS, 1), else_=0
    )
    review_count = sa.select(sa.func.count(Review.id)).where(Review.file_id == MaskFile.id).scalar_subquery()
    with read_transaction(session):
        rows = session.execute(
            sa.select(
                *FILE_IDENTITY,
                MaskFile.flag.label("flag"),
                MaskFile.scored_at.label("scored_at"),
                latest_verdict().label("verdict"),
                review_count.label("reviews"),
            )
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .where(*conditions)
            .order_by(
                sa.case((has_review, 1), else_=0),
                severity.desc(),
                MaskFile.scored_at.desc(),
                MaskFile.id.desc(),
            )
            .limit(limit)
            .offset(offset)
        ).all()
        structures = structure_scores(session, [r.file_id for r in rows])
    alerts = []
    for r in rows:
        row = r._mapping
        scores = structures.get(r.file_id, ())
        alerts.append(
            AlertRecord(
                **{name: row[name] for name in _ALERT_IDENTITY},
                flag=FlagLevel(r.flag),
                flagged_structures=tuple(s.structure for s in scores if s.flag != FlagLevel.OK),
                structures=scores,
                scored_at=r.scored_at,
                review_verdict=ReviewVerdict(r.verdict) if r.verdict is not None else None,
                reviews=int(r.reviews),
            )
        )
    return alerts


def count_alerts(
    session: Session,
    filters: FileFilter = ALERTS,
) -> int:
    """How many files ``list_alerts`` would list with these filters (for paging)."""
    conditions = file_conditions(_alerts(filters))
    with read_transaction(session):
        count = session.scalar(
            sa.select(sa.func.count(MaskFile.id))
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .where(*conditions)
        )
    return int(count or 0)


def reviewed_alert_scores(
    session: Session,
    filters: FileFilter = ALERTS,
) -> pd.DataFrame:
    """Reviewed alerts with their latest verdict and their structure scores, for flag precision.

    One query, where ``list_alerts(reviewed=True)`` would build a record per file; a few thousand
    reviewed files take a fraction of a second.

    Args:
        filters: which files, as ``list_alerts`` (the review state is always "reviewed").
    Returns: one row per reviewed file flagged suspicious or erroneous and structure, with columns
        ``REVIEWED_COLUMNS``: ``file_id``, ``segmenter_name``, ``segmenter_version``, ``scored_at``
        (UTC), ``verdict`` (the latest), ``structure``, ``flag`` (the structure's), ``reasons``
        (tuple of text); sorted by file id, structure (LV, RV, MYO).
    Raises: DatabaseUnavailable.
    """
    import pandas as pd

    # per reviewed file: the latest verdict by an index lookup of reviews (file_id, reviewed_at), so the
    # plan does not hinge on table statistics (a window over all reviews joined back to the files made
    # PostgreSQL without ANALYZE statistics choose a nested loop over both: 3 s at 5,000 reviews)
    files = (
        sa.select(
            MaskFile.id.label("file_id"),
            MaskFile.segmenter_id.label("segmenter_id"),
            MaskFile.scored_at.label("scored_at"),
            latest_verdict(as_text=True).label("verdict"),
        )
        .where(*file_conditions(replace(_alerts(filters), reviewed=True)))
        .subquery("reviewed")
    )
    statement = sa.select(
        files.c.file_id,
        files.c.segmenter_id,
        files.c.scored_at,
        files.c.verdict,
        sa.type_coerce(StructureScoreRow.structure, sa.String()).label("structure"),
        sa.type_coerce(StructureScoreRow.flag, sa.String()).label("flag"),
        StructureScoreRow.reasons.label("reasons"),
    ).join(StructureScoreRow, StructureScoreRow.file_id == files.c.file_id)
    with read_transaction(session):
        out = fetch(session, statement)
        segmenters = segmenter_names(session)
    if out.empty:
        return empty(REVIEWED_COLUMNS)
    out["scored_at"] = pd.to_datetime(out["scored_at"], utc=True)
    out["reasons"] = [tuple(r or ()) for r in out["reasons"]]
    out = finish(out, ("segmenter",), segmenters, [*REVIEWED_COLUMNS, "_structure"])
    return out.sort_values(["file_id", "_structure"], ignore_index=True).reindex(columns=REVIEWED_COLUMNS)
