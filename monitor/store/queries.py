"""Read queries for the dashboard and the CLI: time series, score histograms, alert list, one case,
status counts.

The time series and histograms are aggregated in SQL (``GROUP BY`` a time bucket, the segmenter version
or site, and the structure), so a page reads one row per group rather than one per file. Quantiles are
computed by PostgreSQL (``percentile_cont``) and, on SQLite, which has no percentile function, by
numpy from each group's values, collected by the same query; both use linear interpolation between the
nearest ranks, so the numbers agree within float rounding. All times are UTC; time ranges are
half-open, ``[start, end)``, on the time the file was scored (or rejected).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.errors import StoreError
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
    import numpy as np
    import pandas as pd

__all__ = [
    "ALERT_LEVELS",
    "GROUP_KEYS",
    "HISTOGRAM_COLUMNS",
    "PDSC_BINS",
    "PHD_BINS",
    "PHD_BIN_MM",
    "REVIEWED_COLUMNS",
    "STRUCTURE_SERIES_COLUMNS",
    "VOLUME_SERIES_COLUMNS",
    "Bucket",
    "GroupKey",
    "count_alerts",
    "get_case",
    "list_alerts",
    "reviewed_alert_scores",
    "score_histogram",
    "series_columns",
    "status_counts",
    "structure_time_series",
    "volume_time_series",
]

Bucket = Literal["hour", "day"]
#: What a time series or histogram can be split by: segmenter version (name and version) and site.
GroupKey = Literal["segmenter", "site"]
#: The group keys, in the order their columns appear.
GROUP_KEYS: tuple[GroupKey, ...] = ("segmenter", "site")
#: Flag levels listed as alerts by default.
ALERT_LEVELS: tuple[FlagLevel, ...] = (FlagLevel.SUSPICIOUS, FlagLevel.ERRONEOUS)
#: Default histogram bins: pDSC in 20 bins of 0.05; pHD in 30 bins of 2 mm, then one bin >= 60 mm.
PDSC_BINS = 20
PHD_BIN_MM = 2.0
PHD_BINS = 30
_METRICS = ("pdsc", "phd_mm")
_QUANTILES = {"p25": 0.25, "median": 0.5, "p75": 0.75}
_VOLUME_VALUES = ["scored", "ok", "suspicious", "erroneous", "flagged", "flag_rate", "rejected"]
_STRUCTURE_VALUES = [
    "scored",
    "flagged",
    "flag_rate",
    *(f"{metric}_{q}" for metric in _METRICS for q in ("n", *_QUANTILES)),
]
_KEY_COLUMNS: dict[GroupKey, list[str]] = {
    "segmenter": ["segmenter_name", "segmenter_version"],
    "site": ["site"],
}
#: Columns of ``volume_time_series`` with the default grouping (by segmenter version).
VOLUME_SERIES_COLUMNS = ["bucket_start", "segmenter_name", "segmenter_version", *_VOLUME_VALUES]
#: Columns of ``structure_time_series`` with the default grouping.
STRUCTURE_SERIES_COLUMNS = [
    "bucket_start",
    "segmenter_name",
    "segmenter_version",
    "structure",
    *_STRUCTURE_VALUES,
]
#: Columns of ``score_histogram`` with the default grouping.
HISTOGRAM_COLUMNS = [
    "segmenter_name",
    "segmenter_version",
    "structure",
    "metric",
    "bin",
    "bin_start",
    "bin_end",
    "files",
    "flagged",
]
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
#: ``strftime`` formats of the SQLite buckets (the start of the bucket, as stored: naive UTC text).
_BUCKET_FORMATS = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}
_STRUCTURE_RANK = {s: i for i, s in enumerate(STRUCTURES)}


@dataclass(frozen=True, slots=True, kw_only=True)
class _FileFilter:
    """Which files a read query takes: every query's WHERE conditions on ``mask_files`` (``where``).

    The range applies to the time the file was scored, or rejected for rejected files; the segmenter is
    matched through its id (``segmenter_id IN (...)``), so a query need not join ``segmenters``.
    """

    status: FileStatus = FileStatus.SCORED  #: files of this status
    start: datetime | None = None  #: keep files timed at or after start (timezone-aware); None: open
    end: datetime | None = None  #: keep files timed before end (timezone-aware); None: open
    segmenter_name: str | None = None  #: keep only this segmenter; None: any
    segmenter_version: str | None = None  #: keep only this version; None: any
    levels: tuple[FlagLevel | str, ...] | None = None  #: keep these volume flag levels; None: any
    structure: Structure | str | None = None  #: with ``levels``: test this structure's flag instead
    reviewed: bool | None = None  #: True: reviewed files only; False: unreviewed only; None: both

    @property
    def at(self) -> Any:
        """The time column of the range: ``scored_at`` for scored files, else ``rejected_at``."""
        return MaskFile.scored_at if self.status == FileStatus.SCORED else MaskFile.rejected_at

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The WHERE conditions, each filter only when given.

        Raises: ValueError for empty or unknown levels, an unknown structure or naive timestamps.
        """
        flag = self._flag_conditions()  # checked first: bad levels are reported before bad times
        conditions: list[sa.ColumnElement[bool]] = [MaskFile.status == self.status]
        if self.start is not None:
            conditions.append(self.at >= aware(self.start, "start"))
        if self.end is not None:
            conditions.append(self.at < aware(self.end, "end"))
        segmenter = []
        if self.segmenter_name is not None:
            segmenter.append(Segmenter.name == self.segmenter_name)
        if self.segmenter_version is not None:
            segmenter.append(Segmenter.version == self.segmenter_version)
        if segmenter:
            conditions.append(MaskFile.segmenter_id.in_(sa.select(Segmenter.id).where(*segmenter)))
        conditions += flag
        if self.reviewed is not None:
            has_review = sa.exists().where(Review.file_id == MaskFile.id)
            conditions.append(has_review if self.reviewed else ~has_review)
        return conditions

    def _flag_conditions(self) -> list[sa.ColumnElement[bool]]:
        if self.levels is None:
            return []
        wanted = sorted({FlagLevel(level) for level in self.levels}, key=lambda level: level.severity)
        if not wanted:
            raise ValueError("levels must name at least one flag level")
        if self.structure is None:
            return [MaskFile.flag.in_(wanted)]
        return [
            sa.exists().where(
                StructureScoreRow.file_id == MaskFile.id,
                StructureScoreRow.structure == Structure(self.structure),
                StructureScoreRow.flag.in_(wanted),
            )
        ]


def volume_time_series(
    session: Session,
    *,
    bucket: Bucket | None = "day",
    start: datetime | None = None,
    end: datetime | None = None,
    segmenter_name: str | None = None,
    segmenter_version: str | None = None,
    group_by: Sequence[GroupKey] = ("segmenter",),
) -> pd.DataFrame:
    """Files scored, flag counts and flag rate per time bucket and segmenter version (or site).

    Counted in SQL (``GROUP BY`` the bucket and the group keys): one row per group is read.

    Args:
        bucket: ``"hour"`` or ``"day"`` (UTC); None for one bucket over the whole range
            (``bucket_start`` NaT).
        start, end: half-open range ``[start, end)`` (timezone-aware); None leaves that side open.
        segmenter_name, segmenter_version: keep only this segmenter / version.
        group_by: ``"segmenter"`` (columns ``segmenter_name``, ``segmenter_version``) and / or
            ``"site"`` (column ``site``; None for files without one); empty for one row per bucket.
    Returns: one row per bucket and group with columns ``series_columns("volume", group_by)``
        (``VOLUME_SERIES_COLUMNS`` by default): counts of scored files by flag level, ``flagged``
        (suspicious + erroneous), ``flag_rate`` (flagged / scored, nan when nothing was scored) and
        ``rejected`` (files rejected in that bucket); sorted by bucket, then the group keys.
    Raises: ValueError for an unknown bucket or group key, or naive timestamps; TypeError for a
        ``group_by`` string; DatabaseUnavailable.
    """
    import pandas as pd

    keys = _group_keys(group_by)
    names = _key_names(keys, bucket=bucket is not None)
    levels = [str(level) for level in FlagLevel]
    files = _FileFilter(
        start=start, end=end, segmenter_name=segmenter_name, segmenter_version=segmenter_version
    )
    with read_transaction(session):
        dialect = _dialect(session)
        scored = _file_source(dialect, files, bucket, keys)
        group = [scored.c[n] for n in names]
        flags = [sa.func.sum(sa.case((scored.c.flag == level, 1), else_=0)).label(level) for level in levels]
        by_flag = _fetch(session, sa.select(*group, *flags).select_from(scored).group_by(*group))
        rejected = _file_source(dialect, replace(files, status=FileStatus.REJECTED), bucket, keys)
        group = [rejected.c[n] for n in names]
        by_rejected = _fetch(
            session,
            sa.select(*group, sa.func.count().label("rejected")).select_from(rejected).group_by(*group),
        )
        segmenters = _segmenter_names(session) if "segmenter" in keys else {}
    columns = series_columns("volume", keys)
    if by_flag.empty and by_rejected.empty:
        return _empty(columns)
    if by_rejected.empty:
        out = by_flag.assign(rejected=0)
    elif by_flag.empty:
        out = by_rejected.assign(**dict.fromkeys(levels, 0))
    elif not names:  # one total row each (an aggregate without GROUP BY)
        out = pd.concat([by_flag, by_rejected], axis=1)
    else:
        out = pd.merge(by_flag, by_rejected, on=names, how="outer", sort=False)
    counts = [*levels, "rejected"]
    out[counts] = out[counts].fillna(0).astype("int64")
    out["scored"] = out[levels].sum(axis=1)
    out = out[(out["scored"] > 0) | (out["rejected"] > 0)]
    if out.empty:
        return _empty(columns)
    out["flagged"] = out[str(FlagLevel.SUSPICIOUS)] + out[str(FlagLevel.ERRONEOUS)]
    out["flag_rate"] = out["flagged"] / out["scored"].where(out["scored"] > 0)
    return _finish(out, keys, segmenters, columns)


def structure_time_series(
    session: Session,
    *,
    bucket: Bucket | None = "day",
    start: datetime | None = None,
    end: datetime | None = None,
    segmenter_name: str | None = None,
    segmenter_version: str | None = None,
    group_by: Sequence[GroupKey] = ("segmenter",),
) -> pd.DataFrame:
    """pDSC and pHD quantiles and flag rate per time bucket, segmenter version (or site) and structure.

    One aggregate query. PostgreSQL computes the quantiles in it (``percentile_cont(q) WITHIN GROUP
    (ORDER BY ...)``). SQLite has no percentile function: the query also collects each group's defined
    values (``group_concat`` of 17-digit text, which reads back as the same doubles) and numpy computes
    the quantiles with the same definition (linear interpolation between the two nearest ranks), so
    both databases agree within float rounding. No per-file row reaches Python.

    Args:
        bucket: ``"hour"`` or ``"day"`` (UTC); None for one bucket over the whole range
            (``bucket_start`` NaT): exact statistics of the range, e.g. per segmenter version.
        start, end, segmenter_name, segmenter_version, group_by: as ``volume_time_series``.
    Returns: one row per bucket, group and structure with columns
        ``series_columns("structure", group_by)`` (``STRUCTURE_SERIES_COLUMNS`` by default):
        ``scored`` (files), ``flagged`` (structure flag not ok), ``flag_rate``, and for ``pdsc`` and
        ``phd_mm`` (mm) the number of defined values ``_n`` and the quantiles ``_p25``, ``_median``,
        ``_p75`` (nan values are left out; nan when none is defined); sorted by bucket, group keys,
        structure (LV, RV, MYO).
    Raises: ValueError for an unknown bucket or group key, or naive timestamps; TypeError for a
        ``group_by`` string; DatabaseUnavailable.
    """
    keys = _group_keys(group_by)
    names = _key_names(keys, bucket=bucket is not None)
    files = _FileFilter(
        start=start, end=end, segmenter_name=segmenter_name, segmenter_version=segmenter_version
    )
    with read_transaction(session):
        dialect = _dialect(session)
        if dialect == "postgresql":
            out = _structure_groups_postgresql(session, _score_source(dialect, files, bucket, keys), names)
        else:
            out = _structure_groups_sqlite(session, _file_source(dialect, files, bucket, keys), names)
        segmenters = _segmenter_names(session) if "segmenter" in keys else {}
    columns = series_columns("structure", keys)
    if out.empty:
        return _empty(columns)
    counts = ["scored", "flagged", "pdsc_n", "phd_mm_n"]
    out[counts] = out[counts].astype("int64")
    out["flag_rate"] = out["flagged"] / out["scored"].where(out["scored"] > 0)
    return _finish(out, keys, segmenters, columns)


def _structure_groups_postgresql(session: Session, source: sa.Subquery, names: list[str]) -> pd.DataFrame:
    """Counts and quantiles per group and structure in one query (``percentile_cont``)."""
    group = [source.c[n] for n in [*names, "structure"]]
    return _fetch(
        session,
        sa.select(
            *group,
            sa.func.count().label("scored"),
            sa.func.sum(source.c.flagged).label("flagged"),
            sa.func.count(source.c.pdsc).label("pdsc_n"),
            sa.func.count(source.c.phd_mm).label("phd_mm_n"),
            *(
                sa.func.percentile_cont(q).within_group(source.c[metric]).label(f"{metric}_{name}")
                for metric in _METRICS
                for name, q in _QUANTILES.items()
            ),
        ).group_by(*group),
    )


def _structure_groups_sqlite(session: Session, files: sa.Subquery, names: list[str]) -> pd.DataFrame:
    """Counts and value lists per group and structure, one row per group (the structures side by side:
    one outer join of ``structure_scores`` per structure, so SQLite groups one row per file instead of
    one per structure, about a third faster); quantiles computed by numpy from the lists."""
    import pandas as pd

    group = [files.c[n] for n in names]
    joined: sa.FromClause = files
    aggregates: list[sa.ColumnElement[Any]] = []
    for structure in STRUCTURES:
        rows = StructureScoreRow.__table__.alias(f"scores_{structure}")
        joined = joined.outerjoin(rows, sa.and_(rows.c.file_id == files.c.id, rows.c.structure == structure))
        aggregates += [
            sa.func.count(rows.c.id).label(f"{structure}:scored"),
            sa.func.sum(sa.case((rows.c.flag != FlagLevel.OK, 1), else_=0)).label(f"{structure}:flagged"),
            sa.func.count(rows.c.pdsc).label(f"{structure}:pdsc_n"),
            sa.func.count(rows.c.phd_mm).label(f"{structure}:phd_mm_n"),
            _value_list(rows.c.pdsc).label(f"{structure}:pdsc_values"),
            _value_list(rows.c.phd_mm).label(f"{structure}:phd_mm_values"),
        ]
    wide = _fetch(session, sa.select(*group, *aggregates).select_from(joined).group_by(*group))
    parts = []
    for structure in STRUCTURES:
        part = wide[names].assign(structure=str(structure))
        for value in ("scored", "flagged", "pdsc_n", "phd_mm_n"):
            part[value] = wide[f"{structure}:{value}"].fillna(0).astype("int64")
        for metric in _METRICS:
            quantiles = _list_quantiles(
                wide[f"{structure}:{metric}_values"], part[f"{metric}_n"].to_numpy(), metric
            )
            for j, name in enumerate(_QUANTILES):
                part[f"{metric}_{name}"] = quantiles[:, j]
        parts.append(part[part["scored"] > 0])  # in SQL, a group without that structure has no row
    return pd.concat(parts, ignore_index=True)


def score_histogram(
    session: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    segmenter_name: str | None = None,
    segmenter_version: str | None = None,
    group_by: Sequence[GroupKey] = ("segmenter",),
    pdsc_bins: int = PDSC_BINS,
    phd_bin_mm: float = PHD_BIN_MM,
    phd_bins: int = PHD_BINS,
) -> pd.DataFrame:
    """Exact distribution of the per-file pDSC and pHD in a range: files (and flagged files) per fixed
    bin, per group and structure.

    One aggregate query counts files per group, structure, pDSC bin and pHD bin; each histogram is its
    sum over the other metric's bins. Both databases compute a value's bin with the same double
    arithmetic, ``floor(pdsc * pdsc_bins)`` and ``floor(phd_mm / phd_bin_mm)``, so they agree exactly.
    Files whose metric is undefined (NULL, nan in the records: an empty structure) are counted in bin
    -1, so each metric's bins add up to the files scored, and ``flagged / files`` over all bins is the
    structure's flag rate.

    Args:
        start, end, segmenter_name, segmenter_version, group_by: as ``volume_time_series``.
        pdsc_bins: equal bins over pDSC [0, 1]; 1.0 falls in the last one.
        phd_bin_mm: width of the pHD bins, mm (> 0).
        phd_bins: pHD bins of that width from 0 mm; larger values fall in one more, open-ended bin
            (``bin_end`` inf).
    Returns: one row per group, structure, metric (``pdsc``, ``phd_mm``) and bin, empty bins included,
        with columns ``series_columns("histogram", group_by)`` (``HISTOGRAM_COLUMNS`` by default):
        ``bin`` (-1 for undefined values, then 0, 1, ...), ``bin_start``, ``bin_end`` (``[bin_start,
        bin_end)``, unitless for pDSC, mm for pHD; nan for bin -1), ``files`` and ``flagged`` (files
        whose flag for that structure is not ok); sorted by group keys, structure (LV, RV, MYO),
        metric, bin.
    Raises: ValueError for bad bins, an unknown group key or naive timestamps; TypeError for a
        ``group_by`` string; DatabaseUnavailable.
    """
    import pandas as pd

    keys = _group_keys(group_by)
    if pdsc_bins < 1 or phd_bins < 1 or not phd_bin_mm > 0:
        raise ValueError(
            "need pdsc_bins >= 1, phd_bins >= 1 and phd_bin_mm > 0, "
            f"got {pdsc_bins}, {phd_bins} and {phd_bin_mm}"
        )
    edges = {
        "pdsc": [i / pdsc_bins for i in range(pdsc_bins)] + [1.0],
        "phd_mm": [i * phd_bin_mm for i in range(phd_bins + 1)] + [math.inf],
    }
    names = [*_key_names(keys, bucket=False), "structure"]
    files = _FileFilter(
        start=start, end=end, segmenter_name=segmenter_name, segmenter_version=segmenter_version
    )
    with read_transaction(session):
        dialect = _dialect(session)
        source = _score_source(dialect, files, None, keys)
        binned = sa.select(
            *(source.c[n] for n in names),
            source.c.flagged,
            _bin_index(dialect, source.c.pdsc * float(pdsc_bins), source.c.pdsc, pdsc_bins - 1).label(
                "pdsc_bin"
            ),
            _bin_index(dialect, source.c.phd_mm / float(phd_bin_mm), source.c.phd_mm, phd_bins).label(
                "phd_mm_bin"
            ),
        ).subquery("binned")
        group = [binned.c[n] for n in [*names, "pdsc_bin", "phd_mm_bin"]]
        joint = _fetch(
            session,
            sa.select(
                *group, sa.func.count().label("files"), sa.func.sum(binned.c.flagged).label("flagged")
            ).group_by(*group),
        )
        segmenters = _segmenter_names(session) if "segmenter" in keys else {}
    columns = series_columns("histogram", keys)
    if joint.empty:
        return _empty(columns)
    parts = []
    groups = joint[names].drop_duplicates()
    for metric, bounds in edges.items():
        counts = (
            joint.assign(bin=joint[f"{metric}_bin"].fillna(-1).astype("int64"))
            .groupby([*names, "bin"], sort=False, dropna=False)[["files", "flagged"]]
            .sum()
            .reset_index()
        )
        full = groups.merge(pd.DataFrame({"bin": range(-1, len(bounds) - 1)}), how="cross")
        full = full.merge(counts, on=[*names, "bin"], how="left")
        full[["files", "flagged"]] = full[["files", "flagged"]].fillna(0).astype("int64")
        full["metric"] = metric
        full["bin_start"] = [bounds[b] if b >= 0 else math.nan for b in full["bin"]]
        full["bin_end"] = [bounds[b + 1] if b >= 0 else math.nan for b in full["bin"]]
        parts.append(full)
    out = pd.concat(parts, ignore_index=True)
    out["_metric"] = out["metric"].map({m: i for i, m in enumerate(_METRICS)})
    return _finish(out, keys, segmenters, columns, then=["_metric", "bin"])


def series_columns(
    kind: Literal["volume", "structure", "histogram"], group_by: Sequence[GroupKey] = ("segmenter",)
) -> list[str]:
    """Columns of ``volume_time_series``, ``structure_time_series`` or ``score_histogram`` for a grouping.

    Raises: ValueError for an unknown kind or group key; TypeError for a ``group_by`` string.
    """
    key_columns = [c for key in _group_keys(group_by) for c in _KEY_COLUMNS[key]]
    if kind == "volume":
        return ["bucket_start", *key_columns, *_VOLUME_VALUES]
    if kind == "structure":
        return ["bucket_start", *key_columns, "structure", *_STRUCTURE_VALUES]
    if kind == "histogram":
        return [*key_columns, "structure", "metric", "bin", "bin_start", "bin_end", "files", "flagged"]
    raise ValueError(f"kind must be 'volume', 'structure' or 'histogram', got {kind!r}")


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
    conditions = _FileFilter(
        start=start,
        end=end,
        segmenter_name=segmenter_name,
        segmenter_version=segmenter_version,
        levels=tuple(levels),
        structure=structure,
        reviewed=reviewed,
    ).where()
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
    conditions = _FileFilter(
        start=start,
        end=end,
        segmenter_name=segmenter_name,
        segmenter_version=segmenter_version,
        levels=tuple(levels),
        structure=structure,
        reviewed=reviewed,
    ).where()
    with read_transaction(session):
        count = session.scalar(
            sa.select(sa.func.count(MaskFile.id))
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .where(*conditions)
        )
    return int(count or 0)


def reviewed_alert_scores(
    session: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    segmenter_name: str | None = None,
    segmenter_version: str | None = None,
) -> pd.DataFrame:
    """Reviewed alerts with their latest verdict and their structure scores, for flag precision.

    One query, where ``list_alerts(reviewed=True)`` would build a record per file; a few thousand
    reviewed files take a fraction of a second.

    Args:
        start, end: half-open range of scoring time (timezone-aware); None leaves that side open.
        segmenter_name, segmenter_version: keep only this segmenter / version.
    Returns: one row per reviewed file flagged suspicious or erroneous and structure, with columns
        ``REVIEWED_COLUMNS``: ``file_id``, ``segmenter_name``, ``segmenter_version``, ``scored_at``
        (UTC), ``verdict`` (the latest), ``structure``, ``flag`` (the structure's), ``reasons``
        (tuple of text); sorted by file id, structure (LV, RV, MYO).
    Raises: ValueError for naive timestamps; DatabaseUnavailable.
    """
    import pandas as pd

    # per reviewed file: the latest verdict by an index lookup of reviews (file_id, reviewed_at), so the
    # plan does not hinge on table statistics (a window over all reviews joined back to the files made
    # PostgreSQL without ANALYZE statistics choose a nested loop over both: 3 s at 5,000 reviews)
    latest = (
        sa.select(sa.type_coerce(Review.verdict, sa.String()))
        .where(Review.file_id == MaskFile.id)
        .order_by(Review.reviewed_at.desc(), Review.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    files = (
        sa.select(
            MaskFile.id.label("file_id"),
            MaskFile.segmenter_id.label("segmenter_id"),
            MaskFile.scored_at.label("scored_at"),
            latest.label("verdict"),
        )
        .where(
            *_FileFilter(
                start=start,
                end=end,
                segmenter_name=segmenter_name,
                segmenter_version=segmenter_version,
                levels=ALERT_LEVELS,
                reviewed=True,
            ).where()
        )
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
        out = _fetch(session, statement)
        segmenters = _segmenter_names(session)
    if out.empty:
        return _empty(REVIEWED_COLUMNS)
    out["scored_at"] = pd.to_datetime(out["scored_at"], utc=True)
    out["reasons"] = [tuple(r or ()) for r in out["reasons"]]
    out = _finish(out, ("segmenter",), segmenters, [*REVIEWED_COLUMNS, "_structure"])
    return out.sort_values(["file_id", "_structure"], ignore_index=True).reindex(columns=REVIEWED_COLUMNS)


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
    with read_transaction(session):
        rows = session.execute(
            sa.select(
                MaskFile.segmenter_id,
                sa.type_coerce(MaskFile.status, sa.String()),
                sa.type_coerce(MaskFile.flag, sa.String()),
                sa.func.count(),
                sa.func.max(MaskFile.scored_at),
            ).group_by(MaskFile.segmenter_id, MaskFile.status, MaskFile.flag)
        ).all()
        names = _segmenter_names(session)
    statuses: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {str(s): 0 for s in FileStatus})
    flags: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {str(f): 0 for f in FlagLevel})
    last_scored: dict[tuple[str, str], datetime] = {}
    for segmenter_id, status, flag, n, last in rows:  # one scan: (segmenter, status, flag) groups
        version = names[segmenter_id]
        statuses[version][status] += int(n)
        if status == FileStatus.SCORED and flag is not None:
            flags[version][flag] += int(n)
        if last is not None and (version not in last_scored or last > last_scored[version]):
            last_scored[version] = last
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


def _group_keys(group_by: Sequence[GroupKey]) -> tuple[GroupKey, ...]:
    """The group keys in column order (segmenter, site), checked."""
    if isinstance(group_by, str):
        raise TypeError(f"group_by must be a sequence of group keys such as ('site',), got {group_by!r}")
    unknown = [key for key in group_by if key not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"group_by keys must be among {GROUP_KEYS}, got {list(group_by)}")
    return tuple(key for key in GROUP_KEYS if key in group_by)


def _key_names(keys: Sequence[GroupKey], *, bucket: bool) -> list[str]:
    """Group columns of the SQL sources, in order: ``bucket``, ``segmenter_id``, ``site``."""
    return [
        *(["bucket"] if bucket else []),
        *(["segmenter_id"] if "segmenter" in keys else []),
        *(["site"] if "site" in keys else []),
    ]


def _source_keys(
    dialect: str, bucket: Bucket | None, at: Any, keys: Sequence[GroupKey]
) -> list[sa.ColumnElement[Any]]:
    """The group columns of a source (see ``_key_names``), labelled."""
    columns: list[sa.ColumnElement[Any]] = []
    if bucket is not None:
        columns.append(_bucket_start(dialect, bucket, at).label("bucket"))
    if "segmenter" in keys:
        columns.append(MaskFile.segmenter_id.label("segmenter_id"))
    if "site" in keys:
        columns.append(MaskFile.site.label("site"))
    return columns


def _bucket_start(dialect: str, bucket: Bucket, at: Any) -> sa.ColumnElement[Any]:
    """Start of the UTC hour or day of the timestamp column ``at``.

    SQLite: ``strftime`` of the stored naive UTC text (text out, parsed by pandas). PostgreSQL:
    ``date_trunc`` of the time in UTC (``timezone('UTC', at)``), so the session's TimeZone setting
    cannot move the day boundaries.
    Raises: ValueError for an unknown bucket.
    """
    if bucket not in _BUCKET_FORMATS:
        raise ValueError(f"bucket must be 'hour', 'day' or None, got {bucket!r}")
    if dialect == "postgresql":
        return sa.func.date_trunc(bucket, sa.func.timezone("UTC", at), type_=sa.DateTime())
    return sa.func.strftime(_BUCKET_FORMATS[bucket], at, type_=sa.String())


def _file_source(
    dialect: str, files: _FileFilter, bucket: Bucket | None, keys: Sequence[GroupKey]
) -> sa.Subquery:
    """The files of ``files``: group columns (bucket of ``files.at``), ``id`` and the volume flag (text)."""
    return (
        sa.select(
            *_source_keys(dialect, bucket, files.at, keys),
            MaskFile.id.label("id"),
            sa.type_coerce(MaskFile.flag, sa.String()).label("flag"),
        )
        .where(*files.where())
        .subquery("files")
    )


def _score_source(
    dialect: str, files: _FileFilter, bucket: Bucket | None, keys: Sequence[GroupKey]
) -> sa.Subquery:
    """Structure scores of the files of ``files`` (scored files): group columns, ``structure`` (text),
    ``flagged`` (1 when the structure's flag is not ok, else 0) and the metrics (NULL when undefined)."""
    return (
        sa.select(
            *_source_keys(dialect, bucket, files.at, keys),
            sa.type_coerce(StructureScoreRow.structure, sa.String()).label("structure"),
            sa.case((StructureScoreRow.flag != FlagLevel.OK, 1), else_=0).label("flagged"),
            StructureScoreRow.pdsc.label("pdsc"),
            StructureScoreRow.phd_mm.label("phd_mm"),
        )
        .select_from(MaskFile)
        .join(StructureScoreRow, StructureScoreRow.file_id == MaskFile.id)
        .where(*files.where())
        .subquery("scores")
    )


def _bin_index(dialect: str, scaled: Any, value: Any, last: int) -> sa.ColumnElement[Any]:
    """``floor(scaled)`` clamped to ``[0, last]``; NULL when ``value`` is NULL.

    ``scaled`` is >= 0 where the floor is taken, so SQLite's truncating ``CAST(... AS INTEGER)`` is a
    floor there (SQLite may be built without ``floor``); PostgreSQL's CAST rounds, so it gets ``floor``.
    """
    floor = (
        sa.cast(sa.func.floor(scaled), sa.Integer())
        if dialect == "postgresql"
        else sa.cast(scaled, sa.Integer())
    )
    return sa.case(
        (value.is_(None), sa.null()),
        (scaled <= 0, 0),
        (scaled >= last, last),
        else_=floor,
    )


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _fetch(session: Session, statement: sa.Select[Any]) -> pd.DataFrame:
    """Rows of a Core select as a DataFrame, one column per selected label.

    Runs on the session's connection (Core execution, no ORM row loading) and hands pandas plain
    columns: building a frame from SQLAlchemy ``Row`` objects is several times slower.
    """
    import pandas as pd

    result = session.connection().execute(statement)
    names = list(result.keys())
    columns = list(zip(*result.all(), strict=True)) or [()] * len(names)
    return pd.DataFrame(dict(zip(names, columns, strict=True)), columns=names)


def _segmenter_names(session: Session) -> dict[int, tuple[str, str]]:
    """Segmenter id -> (name, version)."""
    rows = session.execute(sa.select(Segmenter.id, Segmenter.name, Segmenter.version))
    return {row[0]: (row[1], row[2]) for row in rows}


def _value_list(value: Any) -> sa.ColumnElement[str]:
    """SQLite aggregate: the group's defined values as comma-separated text that parses back to the
    same doubles (``printf('%.17g')``; plain text conversion keeps only 15 digits). NULL values are
    left out (``printf`` would print them as 0); NULL when the group has none."""
    text = sa.case((value.is_(None), sa.null()), else_=sa.func.printf("%.17g", value))
    return sa.func.group_concat(text, ",", type_=sa.String())


def _list_quantiles(lists: pd.Series, counts: np.ndarray, metric: str) -> np.ndarray:
    """Quantiles (``_QUANTILES``) of each row's value list (``_value_list``) of ``counts[i]`` values.

    Returns: float [rows, 3]; nan for a row without values.
    Raises: StoreError when the lists do not hold as many values as counted.
    """
    import numpy as np
    import pandas as pd

    expected = int(counts.sum())
    texts = [text for text in lists if isinstance(text, str) and text]
    values = np.empty(0)
    if texts:  # pandas' C parser reads the 17-digit text back to the same doubles, 5x faster than numpy
        parsed = pd.read_csv(
            io.StringIO(",".join(texts)), header=None, names=["v"], lineterminator=",", dtype=np.float64
        )
        values = parsed["v"].to_numpy()
    if len(values) != expected:
        raise StoreError(f"{metric}: the value lists hold {len(values)} values, {expected} were counted")
    return _segment_quantiles(values, counts, list(_QUANTILES.values()))


def _segment_quantiles(values: np.ndarray, counts: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of consecutive segments of ``values``, as PostgreSQL's ``percentile_cont``.

    For the sorted values ``v[0 .. n-1]`` of a segment and ``p = q (n - 1)``, the quantile is
    ``v[floor p] + (v[ceil p] - v[floor p]) (p - floor p)`` (numpy's "linear" method).

    Args:
        values: float [sum(counts)], no nan; segment i is the next ``counts[i]`` values.
        counts: int [segments], >= 0.
        qs: quantiles in [0, 1].
    Returns: float [segments, len(qs)]; nan for an empty segment.
    """
    import numpy as np

    starts = np.cumsum(counts) - counts
    ordered = np.empty_like(values)
    for first, n in zip(starts.tolist(), counts.tolist(), strict=True):
        ordered[first : first + n] = np.sort(values[first : first + n])
    out = np.full((len(counts), len(qs)), np.nan)
    present = counts > 0
    n, first = counts[present], starts[present]
    for j, q in enumerate(qs):
        position = q * (n - 1)
        low = np.floor(position).astype(np.int64)
        high = np.ceil(position).astype(np.int64)
        a, b = ordered[first + low], ordered[first + high]
        out[present, j] = np.where(low == high, a, a + (b - a) * (position - low))
    return out


def _finish(
    out: pd.DataFrame,
    keys: Sequence[GroupKey],
    segmenters: dict[int, tuple[str, str]],
    columns: list[str],
    *,
    then: Sequence[str] = (),
) -> pd.DataFrame:
    """Name the groups (bucket start in UTC, segmenter name and version), sort and order the columns."""
    import pandas as pd

    if "bucket" in out:
        out["bucket_start"] = pd.to_datetime(out["bucket"], utc=True)
    elif "bucket_start" in columns:
        out["bucket_start"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    if "segmenter" in keys:
        named = [segmenters[i] for i in out["segmenter_id"]]
        out["segmenter_name"] = [n for n, _ in named]
        out["segmenter_version"] = [v for _, v in named]
    order = [c for c in ("bucket_start", "segmenter_name", "segmenter_version", "site") if c in columns]
    if "structure" in out:
        out["_structure"] = out["structure"].map({str(s): i for s, i in _STRUCTURE_RANK.items()})
        order.append("_structure")
    out = out.sort_values([*order, *then], ignore_index=True, na_position="last", kind="stable")
    return out.reindex(columns=columns)


def _empty(columns: list[str]) -> pd.DataFrame:
    """An empty result with the columns and dtypes of a non-empty one."""
    import pandas as pd

    text = {"segmenter_name", "segmenter_version", "site", "structure", "metric"}
    counts = {
        "scored",
        "ok",
        "suspicious",
        "erroneous",
        "flagged",
        "rejected",
        "pdsc_n",
        "phd_mm_n",
        "bin",
        "files",
    }

    def dtype(column: str) -> str:
        if column == "bucket_start":
            return "datetime64[ns, UTC]"
        return "object" if column in text else "int64" if column in counts else "float64"

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in columns})
