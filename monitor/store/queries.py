"""Read queries for the dashboard and the CLI: time series, alert list, one case, status counts.

Quantiles are computed in pandas from the rows of the requested range, so the numbers are the same on
SQLite and PostgreSQL. All times are UTC; time ranges are half-open, ``[start, end)``, on the time the
file was scored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.labels import STRUCTURES, Structure
from monitor.records import FlagLevel
from monitor.store._tx import aware, none_to_nan, read_transaction
from monitor.store.models import Artifact, MaskFile, MonitorModel, Review, Segmenter, StructureScoreRow
from monitor.store.records import (
    AlertRecord,
    CaseRecord,
    FileStatus,
    ReviewRecord,
    ReviewVerdict,
    SegmenterCounts,
    StatusCounts,
    StoredStructureScore,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ALERT_LEVELS",
    "STRUCTURE_SERIES_COLUMNS",
    "VOLUME_SERIES_COLUMNS",
    "Bucket",
    "count_alerts",
    "get_case",
    "list_alerts",
    "status_counts",
    "structure_time_series",
    "volume_time_series",
]

Bucket = Literal["hour", "day"]
#: Flag levels listed as alerts by default.
ALERT_LEVELS: tuple[FlagLevel, ...] = (FlagLevel.SUSPICIOUS, FlagLevel.ERRONEOUS)
_SERIES_KEYS = ["bucket_start", "segmenter_name", "segmenter_version"]
#: Columns of ``volume_time_series``.
VOLUME_SERIES_COLUMNS = [
    *_SERIES_KEYS,
    "scored",
    "ok",
    "suspicious",
    "erroneous",
    "flagged",
    "flag_rate",
    "rejected",
]
_QUANTILES = {"p25": 0.25, "median": 0.5, "p75": 0.75}
#: Columns of ``structure_time_series``.
STRUCTURE_SERIES_COLUMNS = [
    *_SERIES_KEYS,
    "structure",
    "scored",
    "flagged",
    "flag_rate",
    *(f"{metric}_{q}" for metric in ("pdsc", "phd_mm") for q in ("n", *_QUANTILES)),
]
_FLOOR = {"hour": "h", "day": "D"}
_STRUCTURE_RANK = {s: i for i, s in enumerate(STRUCTURES)}


def volume_time_series(
    session: Session,
    *,
    bucket: Bucket = "day",
    start: datetime | None = None,
    end: datetime | None = None,
    segmenter_name: str | None = None,
    segmenter_version: str | None = None,
) -> pd.DataFrame:
    """Files scored, flag counts and flag rate per time bucket and segmenter version.

    Args:
        bucket: ``"hour"`` or ``"day"`` (UTC).
        start, end: half-open range ``[start, end)`` (timezone-aware); None leaves that side open.
        segmenter_name, segmenter_version: keep only this segmenter / version.
    Returns: one row per bucket and segmenter version with columns ``VOLUME_SERIES_COLUMNS``: counts
        of scored files by flag level, ``flagged`` (suspicious + erroneous), ``flag_rate`` (flagged /
        scored, nan when nothing was scored) and ``rejected`` (files rejected in that bucket); sorted
        by bucket, segmenter name, version.
    Raises: ValueError for an unknown bucket or naive timestamps; DatabaseUnavailable.
    """
    import pandas as pd

    freq = _bucket_freq(bucket)
    segmenter = _segmenter_filter(segmenter_name, segmenter_version)
    with read_transaction(session):
        scored = session.execute(
            sa.select(MaskFile.scored_at, Segmenter.name, Segmenter.version, MaskFile.flag)
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .where(MaskFile.status == FileStatus.SCORED, *segmenter, *_range(MaskFile.scored_at, start, end))
        ).all()
        rejected = session.execute(
            sa.select(MaskFile.rejected_at, Segmenter.name, Segmenter.version)
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .where(
                MaskFile.status == FileStatus.REJECTED, *segmenter, *_range(MaskFile.rejected_at, start, end)
            )
        ).all()
    levels = [str(level) for level in FlagLevel]
    frame = pd.DataFrame(scored, columns=["at", "segmenter_name", "segmenter_version", "flag"])
    frame["flag"] = frame["flag"].astype(str)
    by_flag = (
        _with_bucket(frame, freq)
        .groupby([*_SERIES_KEYS, "flag"])
        .size()
        .unstack("flag", fill_value=0)
        .reindex(columns=levels, fill_value=0)
    )
    rejects = pd.DataFrame(rejected, columns=["at", "segmenter_name", "segmenter_version"])
    by_rejected = _with_bucket(rejects, freq).groupby(_SERIES_KEYS).size().rename("rejected")
    out = by_flag.join(by_rejected, how="outer").fillna(0).astype("int64").reset_index()
    out["scored"] = out[levels].sum(axis=1)
    out["flagged"] = out["suspicious"] + out["erroneous"]
    out["flag_rate"] = out["flagged"] / out["scored"].where(out["scored"] > 0)
    out = out.reindex(columns=VOLUME_SERIES_COLUMNS)
    return out.sort_values(_SERIES_KEYS, ignore_index=True)


def structure_time_series(
    session: Session,
    *,
    bucket: Bucket = "day",
    start: datetime | None = None,
    end: datetime | None = None,
    segmenter_name: str | None = None,
    segmenter_version: str | None = None,
) -> pd.DataFrame:
    """pDSC and pHD quantiles and flag rate per time bucket, segmenter version and structure.

    Args: as ``volume_time_series``.
    Returns: one row per bucket, segmenter version and structure with columns
        ``STRUCTURE_SERIES_COLUMNS``: ``scored`` (files), ``flagged`` (structure flag not ok),
        ``flag_rate``, and for ``pdsc`` and ``phd_mm`` (mm) the number of defined values ``_n`` and
        the quantiles ``_p25``, ``_median``, ``_p75`` (linear interpolation; nan values are left out,
        nan when none is defined); sorted by bucket, segmenter, structure (LV, RV, MYO).
    Raises: ValueError for an unknown bucket or naive timestamps; DatabaseUnavailable.
    """
    import pandas as pd

    freq = _bucket_freq(bucket)
    with read_transaction(session):
        rows = session.execute(
            sa.select(
                MaskFile.scored_at,
                Segmenter.name,
                Segmenter.version,
                StructureScoreRow.structure,
                StructureScoreRow.flag,
                StructureScoreRow.pdsc,
                StructureScoreRow.phd_mm,
            )
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .join(StructureScoreRow, StructureScoreRow.file_id == MaskFile.id)
            .where(
                MaskFile.status == FileStatus.SCORED,
                *_segmenter_filter(segmenter_name, segmenter_version),
                *_range(MaskFile.scored_at, start, end),
            )
        ).all()
    frame = pd.DataFrame(
        rows, columns=["at", "segmenter_name", "segmenter_version", "structure", "flag", "pdsc", "phd_mm"]
    )
    frame["structure"] = frame["structure"].astype(str)
    frame["flagged"] = (frame["flag"].astype(str) != str(FlagLevel.OK)).astype("int64")
    frame[["pdsc", "phd_mm"]] = frame[["pdsc", "phd_mm"]].astype("float64")
    keys = [*_SERIES_KEYS, "structure"]
    grouped = _with_bucket(frame, freq).groupby(keys)
    parts: dict[str, Any] = {"scored": grouped.size(), "flagged": grouped["flagged"].sum()}
    for metric in ("pdsc", "phd_mm"):
        parts[f"{metric}_n"] = grouped[metric].count()
        for name, q in _QUANTILES.items():
            parts[f"{metric}_{name}"] = grouped[metric].quantile(q)
    out = pd.DataFrame(parts).reset_index()
    out["scored"] = out["scored"].astype("int64")
    out["flagged"] = out["flagged"].astype("int64")
    out["pdsc_n"] = out["pdsc_n"].astype("int64")
    out["phd_mm_n"] = out["phd_mm_n"].astype("int64")
    out["flag_rate"] = out["flagged"] / out["scored"].where(out["scored"] > 0)
    out["_rank"] = out["structure"].map({str(s): i for s, i in _STRUCTURE_RANK.items()})
    out = out.sort_values([*_SERIES_KEYS, "_rank"], ignore_index=True)
    return out.reindex(columns=STRUCTURE_SERIES_COLUMNS)


def list_alerts(
    session: Session,
    *,
    levels: Iterable[FlagLevel | str] = ALERT_LEVELS,
    structure: Structure | str | None = None,
    segmenter_name: str | None = None,
    segmenter_version: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    reviewed: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[AlertRecord]:
    """Flagged files, unreviewed first, then most severe, then most recent.

    Args:
        levels: volume flag levels to list (default suspicious and erroneous); with ``structure``, the
            levels of that structure's flag.
        structure: keep files where this structure is flagged at one of ``levels``.
        segmenter_name, segmenter_version: keep only this segmenter / version.
        start, end: half-open range of scoring time (timezone-aware).
        reviewed: True only reviewed files, False only unreviewed, None both.
        limit, offset: page size (>= 1) and start.
    Returns: one page of alerts.
    Raises: ValueError for bad paging, levels, structure or naive timestamps; DatabaseUnavailable.
    """
    if limit < 1 or offset < 0:
        raise ValueError(f"need limit >= 1 and offset >= 0, got limit={limit}, offset={offset}")
    conditions = _alert_conditions(levels, structure, segmenter_name, segmenter_version, start, end, reviewed)
    has_review = sa.exists().where(Review.file_id == MaskFile.id)
    severity = sa.case(
        (MaskFile.flag == FlagLevel.ERRONEOUS, 2), (MaskFile.flag == FlagLevel.SUSPICIOUS, 1), else_=0
    )
    latest_verdict = (
        sa.select(Review.verdict)
        .where(Review.file_id == MaskFile.id)
        .order_by(Review.reviewed_at.desc(), Review.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    review_count = sa.select(sa.func.count(Review.id)).where(Review.file_id == MaskFile.id).scalar_subquery()
    with read_transaction(session):
        rows = session.execute(
            sa.select(
                MaskFile.id,
                MaskFile.path,
                MaskFile.case_key,
                MaskFile.phase,
                MaskFile.site,
                Segmenter.name,
                Segmenter.version,
                MaskFile.flag,
                MaskFile.scored_at,
                latest_verdict,
                review_count,
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
        structures = _structure_scores(session, [r[0] for r in rows])
    alerts = []
    for r in rows:
        scores = structures.get(r[0], ())
        alerts.append(
            AlertRecord(
                file_id=r[0],
                path=r[1],
                case_key=r[2],
                phase=r[3],
                site=r[4],
                segmenter_name=r[5],
                segmenter_version=r[6],
                flag=FlagLevel(r[7]),
                flagged_structures=tuple(s.structure for s in scores if s.flag != FlagLevel.OK),
                reasons=tuple(reason for s in scores for reason in s.reasons),
                scored_at=r[8],
                review_verdict=ReviewVerdict(r[9]) if r[9] is not None else None,
                reviews=int(r[10]),
            )
        )
    return alerts


def count_alerts(
    session: Session,
    *,
    levels: Iterable[FlagLevel | str] = ALERT_LEVELS,
    structure: Structure | str | None = None,
    segmenter_name: str | None = None,
    segmenter_version: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    reviewed: bool | None = None,
) -> int:
    """How many files ``list_alerts`` would list with these filters (for paging)."""
    conditions = _alert_conditions(levels, structure, segmenter_name, segmenter_version, start, end, reviewed)
    with read_transaction(session):
        count = session.scalar(
            sa.select(sa.func.count(MaskFile.id))
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .where(*conditions)
        )
    return int(count or 0)


def get_case(session: Session, file_id: int) -> CaseRecord | None:
    """One file in full (identity, queue state, scores, artifacts, reviews); None when unknown.

    Raises: DatabaseUnavailable.
    """
    with read_transaction(session):
        row = session.execute(
            sa.select(MaskFile, Segmenter.name, Segmenter.version, MonitorModel.checkpoint_hash)
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .outerjoin(MonitorModel, MaskFile.model_id == MonitorModel.id)
            .where(MaskFile.id == file_id)
            .execution_options(populate_existing=True)
        ).first()
        if row is None:
            return None
        f, segmenter_name, segmenter_version, checkpoint_hash = row
        model_metadata = (
            session.scalar(sa.select(MonitorModel.metadata_json).where(MonitorModel.id == f.model_id))
            if f.model_id is not None
            else None
        )
        structures = _structure_scores(session, [file_id]).get(file_id, ())
        artifacts = dict(
            session.execute(
                sa.select(Artifact.kind, Artifact.path)
                .where(Artifact.file_id == file_id)
                .order_by(Artifact.kind)
            ).all()
        )
        reviews = tuple(
            ReviewRecord(
                review_id=r[0],
                file_id=file_id,
                verdict=ReviewVerdict(r[1]),
                reviewer=r[2],
                note=r[3],
                reviewed_at=r[4],
            )
            for r in session.execute(
                sa.select(Review.id, Review.verdict, Review.reviewer, Review.note, Review.reviewed_at)
                .where(Review.file_id == file_id)
                .order_by(Review.reviewed_at, Review.id)
            )
        )
        shape = (f.shape_z, f.shape_y, f.shape_x)
        spacing = (f.spacing_z_mm, f.spacing_y_mm, f.spacing_x_mm)
        record = CaseRecord(
            file_id=f.id,
            path=f.path,
            content_hash=f.content_hash,
            case_key=f.case_key,
            phase=f.phase,
            site=f.site,
            scanner=f.scanner,
            image_path=f.image_path,
            segmenter_name=segmenter_name,
            segmenter_version=segmenter_version,
            status=FileStatus(f.status),
            attempts=f.attempts,
            received_at=f.received_at,
            started_at=f.started_at,
            scored_at=f.scored_at,
            rejected_at=f.rejected_at,
            rejection_reason=f.rejection_reason,
            rejection_detail=f.rejection_detail,
            flag=FlagLevel(f.flag) if f.flag is not None else None,
            shape=shape if None not in shape else None,  # type: ignore[arg-type]
            spacing_mm=spacing if None not in spacing else None,  # type: ignore[arg-type]
            slices_scored=f.slices_scored,
            timings_s=dict(f.timings_s) if f.timings_s is not None else None,
            model_checkpoint_hash=checkpoint_hash,
            model_metadata=model_metadata,
            structures=structures,
            artifacts=artifacts,
            reviews=reviews,
        )
    return record


def status_counts(session: Session) -> StatusCounts:
    """Files per status and scored files per flag level, overall and per segmenter version, and the
    time of the last score.

    Raises: DatabaseUnavailable.
    """
    version = (Segmenter.name, Segmenter.version)
    with read_transaction(session):
        by_status = session.execute(
            sa.select(*version, MaskFile.status, sa.func.count(MaskFile.id))
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .group_by(*version, MaskFile.status)
        ).all()
        by_flag = session.execute(
            sa.select(*version, MaskFile.flag, sa.func.count(MaskFile.id))
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .where(MaskFile.status == FileStatus.SCORED)
            .group_by(*version, MaskFile.flag)
        ).all()
        last = session.execute(
            sa.select(*version, sa.func.max(MaskFile.scored_at))
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .group_by(*version)
        ).all()
    statuses: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {str(s): 0 for s in FileStatus})
    flags: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {str(f): 0 for f in FlagLevel})
    for name, ver, status, n in by_status:
        statuses[(name, ver)][str(status)] = int(n)
    for name, ver, flag, n in by_flag:
        if flag is not None:
            flags[(name, ver)][str(flag)] = int(n)
    last_scored = {(name, ver): when for name, ver, when in last}
    segmenters = tuple(
        SegmenterCounts(
            segmenter_name=name,
            segmenter_version=ver,
            by_status=statuses[(name, ver)],
            by_flag=flags[(name, ver)],
            last_scored_at=last_scored.get((name, ver)),
        )
        for name, ver in sorted(statuses)
    )
    known = [s.last_scored_at for s in segmenters if s.last_scored_at is not None]
    return StatusCounts(
        by_status={str(s): sum(c.by_status[str(s)] for c in segmenters) for s in FileStatus},
        by_flag={str(f): sum(c.by_flag[str(f)] for c in segmenters) for f in FlagLevel},
        last_scored_at=max(known) if known else None,
        segmenters=segmenters,
    )


def _structure_scores(
    session: Session, file_ids: Sequence[int]
) -> dict[int, tuple[StoredStructureScore, ...]]:
    """Structure scores of the files, in LV, RV, MYO order."""
    if not file_ids:
        return {}
    found: dict[int, list[StoredStructureScore]] = defaultdict(list)
    for r in session.execute(
        sa.select(
            StructureScoreRow.file_id,
            StructureScoreRow.structure,
            StructureScoreRow.pdsc,
            StructureScoreRow.phd_mm,
            StructureScoreRow.flag,
            StructureScoreRow.reasons,
            StructureScoreRow.mask_voxels,
            StructureScoreRow.pgt_voxels,
            StructureScoreRow.mask_volume_ml,
        ).where(StructureScoreRow.file_id.in_(file_ids))
    ):
        found[r[0]].append(
            StoredStructureScore(
                structure=Structure(r[1]),
                pdsc=none_to_nan(r[2]),
                phd_mm=none_to_nan(r[3]),
                flag=FlagLevel(r[4]),
                reasons=tuple(r[5] or ()),
                mask_voxels=int(r[6]),
                pgt_voxels=int(r[7]),
                mask_volume_ml=float(r[8]),
            )
        )
    return {
        file_id: tuple(sorted(scores, key=lambda s: _STRUCTURE_RANK[s.structure]))
        for file_id, scores in found.items()
    }


def _alert_conditions(
    levels: Iterable[FlagLevel | str],
    structure: Structure | str | None,
    segmenter_name: str | None,
    segmenter_version: str | None,
    start: datetime | None,
    end: datetime | None,
    reviewed: bool | None,
) -> list[sa.ColumnElement[bool]]:
    """WHERE conditions shared by ``list_alerts`` and ``count_alerts``."""
    wanted = sorted({FlagLevel(level) for level in levels}, key=lambda level: level.severity)
    if not wanted:
        raise ValueError("levels must name at least one flag level")
    conditions: list[sa.ColumnElement[bool]] = [MaskFile.status == FileStatus.SCORED]
    if structure is None:
        conditions.append(MaskFile.flag.in_(wanted))
    else:
        conditions.append(
            sa.exists().where(
                StructureScoreRow.file_id == MaskFile.id,
                StructureScoreRow.structure == Structure(structure),
                StructureScoreRow.flag.in_(wanted),
            )
        )
    conditions += _segmenter_filter(segmenter_name, segmenter_version)
    conditions += _range(MaskFile.scored_at, start, end)
    if reviewed is not None:
        has_review = sa.exists().where(Review.file_id == MaskFile.id)
        conditions.append(has_review if reviewed else ~has_review)
    return conditions


def _segmenter_filter(name: str | None, version: str | None) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if name is not None:
        conditions.append(Segmenter.name == name)
    if version is not None:
        conditions.append(Segmenter.version == version)
    return conditions


def _range(column: Any, start: datetime | None, end: datetime | None) -> list[sa.ColumnElement[bool]]:
    """``start <= column < end``, each side only when given."""
    conditions = []
    if start is not None:
        conditions.append(column >= aware(start, "start"))
    if end is not None:
        conditions.append(column < aware(end, "end"))
    return conditions


def _bucket_freq(bucket: str) -> str:
    try:
        return _FLOOR[bucket]
    except KeyError:
        raise ValueError(f"bucket must be 'hour' or 'day', got {bucket!r}") from None


def _with_bucket(frame: pd.DataFrame, freq: str) -> pd.DataFrame:
    """``frame`` with ``bucket_start``: its ``at`` column floored to the bucket, in UTC."""
    import pandas as pd

    return frame.assign(bucket_start=pd.to_datetime(frame["at"], utc=True).dt.floor(freq))
