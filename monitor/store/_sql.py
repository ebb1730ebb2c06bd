"""SQL pieces shared by the store's queries: the conditions of a ``FileFilter``, the column groups that
several queries read (labelled as the records' fields), and a file's latest review verdict. Private to
``monitor.store``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from monitor.qc.levels import FlagLevel
from monitor.store.models import MaskFile, Review, Segmenter, StructureScoreRow
from monitor.store.records import FileFilter, FileStatus

__all__ = ["FILE_IDENTITY", "STRUCTURE_SCORE", "file_conditions", "latest_verdict", "time_column"]


def _named(*columns: Any) -> tuple[sa.ColumnElement[Any], ...]:
    """Each column labelled with its own name."""
    return tuple(column.label(column.key) for column in columns)


#: Who and what a file is (``ClaimedFile``, ``AlertRecord``, the export); the query joins ``segmenters``.
FILE_IDENTITY: tuple[sa.ColumnElement[Any], ...] = (
    MaskFile.id.label("file_id"),
    *_named(
        MaskFile.path,
        MaskFile.content_hash,
        MaskFile.case_key,
        MaskFile.phase,
        MaskFile.site,
        MaskFile.scanner,
    ),
    MaskFile.image_path.label("image_path"),
    Segmenter.name.label("segmenter_name"),
    Segmenter.version.label("segmenter_version"),
)
#: One structure's stored scores (``StoredStructureScore``, the export).
STRUCTURE_SCORE: tuple[sa.ColumnElement[Any], ...] = _named(
    StructureScoreRow.structure,
    StructureScoreRow.pdsc,
    StructureScoreRow.phd_mm,
    StructureScoreRow.flag,
    StructureScoreRow.reasons,
    StructureScoreRow.mask_voxels,
    StructureScoreRow.pgt_voxels,
    StructureScoreRow.mask_volume_ml,
    StructureScoreRow.pdsc_3d,
    StructureScoreRow.phd_mm_3d,
    StructureScoreRow.pgt_volume_ml,
    StructureScoreRow.evidence,
    StructureScoreRow.p_failure,
    StructureScoreRow.edsc,
    StructureScoreRow.edsc_lo,
    StructureScoreRow.edsc_hi,
    StructureScoreRow.ehd_mm,
    StructureScoreRow.ehd_mm_lo,
    StructureScoreRow.ehd_mm_hi,
)


def latest_verdict(*, as_text: bool = False) -> sa.ScalarSelect[Any]:
    """The verdict of a file's latest review (correlated with ``mask_files``; NULL when unreviewed).

    An index lookup of ``reviews (file_id, reviewed_at)`` per file, so the plan does not hinge on table
    statistics. ``as_text`` reads it as plain text (for a DataFrame) instead of the enum.
    """
    verdict = sa.type_coerce(Review.verdict, sa.String()) if as_text else Review.verdict
    return (
        sa.select(verdict)
        .where(Review.file_id == MaskFile.id)
        .order_by(Review.reviewed_at.desc(), Review.id.desc())
        .limit(1)
        .scalar_subquery()
    )


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
