"""The WHERE conditions of a ``FileFilter`` on ``mask_files``. Private to ``monitor.store``.

The segmenter is matched through its id (``segmenter_id IN (...)``), so a query need not join
``segmenters``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from monitor.qc.levels import FlagLevel
from monitor.store.models import MaskFile, Review, Segmenter, StructureScoreRow
from monitor.store.records import FileFilter, FileStatus

__all__ = ["file_conditions", "time_column"]


def time_column(status: FileStatus) -> Any:
    """The time column of a range: ``scored_at`` for scored files, else ``rejected_at``."""
    return MaskFile.scored_at if status == FileStatus.SCORED else MaskFile.rejected_at


def file_conditions(
    filters: FileFilter, status: FileStatus = FileStatus.SCORED
) -> list[sa.ColumnElement[bool]]:
    """The conditions on ``mask_files`` of the files of ``status`` that ``filters`` keeps."""
    at = time_column(status)
    conditions: list[sa.ColumnElement[bool]] = [MaskFile.status == status]
    if filters.start is not None:
        conditions.append(at >= filters.start)
    if filters.end is not None:
        conditions.append(at < filters.end)
    segmenter = []
    if filters.segmenter_name is not None:
        segmenter.append(Segmenter.name == filters.segmenter_name)
    if filters.segmenter_version is not None:
        segmenter.append(Segmenter.version == filters.segmenter_version)
    if segmenter:
        conditions.append(MaskFile.segmenter_id.in_(sa.select(Segmenter.id).where(*segmenter)))
    if filters.levels is not None:
        conditions.append(_flag_condition(filters))
    if filters.reviewed is not None:
        has_review = sa.exists().where(Review.file_id == MaskFile.id)
        conditions.append(has_review if filters.reviewed else ~has_review)
    return conditions


def _flag_condition(filters: FileFilter) -> sa.ColumnElement[bool]:
    """The volume flag among ``levels``, or with ``structure`` that structure's flag."""
    wanted: list[FlagLevel] = list(filters.levels or ())
    if filters.structure is None:
        return MaskFile.flag.in_(wanted)
    return sa.exists().where(
        StructureScoreRow.file_id == MaskFile.id,
        StructureScoreRow.structure == filters.structure,
        StructureScoreRow.flag.in_(wanted),
    )
