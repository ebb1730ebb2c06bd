"""Time series and score histograms for the dashboard: counts, flag rates and pDSC / pHD quantiles per
time bucket, segmenter version (or site) and structure.

Aggregated in SQL (``GROUP BY`` a time bucket, the segmenter version or site, and the structure), so a
page reads one row per group rather than one per file. Quantiles are computed by PostgreSQL
(``percentile_cont``) and, on SQLite, which has no percentile function, by numpy from each group's
values, collected by the same query; both use linear interpolation between the nearest ranks, so the
numbers agree within float rounding. All times are UTC; ranges (``FileFilter``) are half-open,
``[start, end)``, on the time the file was scored (or rejected).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.labels import STRUCTURES
from monitor.qc.levels import FlagLevel
from monitor.store._aggregate import (
    GROUP_KEYS,
    QUANTILES,
    Bucket,
    GroupKey,
    bin_index,
    file_source,
    group_keys,
    key_names,
    list_quantiles,
    score_source,
    value_list,
)
from monitor.store._frames import dialect, empty, fetch, finish, segmenter_names
from monitor.store._tx import read_transaction
from monitor.store.models import StructureScoreRow
from monitor.store.records import FileFilter, FileStatus

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "GROUP_KEYS",
    "HISTOGRAM_COLUMNS",
    "PDSC_BINS",
    "PHD_BINS",
    "PHD_BIN_MM",
    "STRUCTURE_SERIES_COLUMNS",
    "VOLUME_SERIES_COLUMNS",
    "Bucket",
    "GroupKey",
    "score_histogram",
    "series_columns",
    "structure_time_series",
    "volume_time_series",
]

#: Default histogram bins: pDSC in 20 bins of 0.05; pHD in 30 bins of 2 mm, then one bin >= 60 mm.
PDSC_BINS = 20
PHD_BIN_MM = 2.0
PHD_BINS = 30
_METRICS = ("pdsc", "phd_mm")
_VOLUME_VALUES = ["scored", "ok", "suspicious", "erroneous", "flagged", "flag_rate", "rejected"]
_STRUCTURE_VALUES = [
    "scored",
    "flagged",
    "flag_rate",
    *(f"{metric}_{q}" for metric in _METRICS for q in ("n", *QUANTILES)),
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
_METRICS = ("pdsc", "phd_mm")
_ALL_FILES = FileFilter()


def _scope(filters: FileFilter) -> FileFilter:
    """``filters`` checked for what a series takes: a time range and a segmenter version.

    Raises: ValueError when it also sets levels, a structure or a review state.
    """
    if not filters.scope_only:
        raise ValueError(
            "time series and histograms take a time range and a segmenter version only, "
            f"not levels, a structure or a review state: {filters}"
        )
    return filters


def volume_time_series(
    session: Session,
    filters: FileFilter = _ALL_FILES,
    *,
    bucket: Bucket | None = "day",
    group_by: Sequence[GroupKey] = ("segmenter",),
) -> pd.DataFrame:
    """Files scored, flag counts and flag rate per time bucket and segmenter version (or site).

    Counted in SQL (``GROUP BY`` the bucket and the group keys): one row per group is read.

    Args:
        bucket: ``"hour"`` or ``"day"`` (UTC); None for one bucket over the whole range
            (``bucket_start`` NaT).
        filters: the time range ``[start, end)`` and the segmenter / version (``FileFilter``); levels, a
            structure or a review state are refused.
        group_by: ``"segmenter"`` (columns ``segmenter_name``, ``segmenter_version``) and / or
            ``"site"`` (column ``site``; None for files without one); empty for one row per bucket.
    Returns: one row per bucket and group with columns ``series_columns("volume", group_by)``
        (``VOLUME_SERIES_COLUMNS`` by default): counts of scored files by flag level, ``flagged``
        (suspicious + erroneous), ``flag_rate`` (flagged / scored, nan when nothing was scored) and
        ``rejected`` (files rejected in that bucket); sorted by bucket, then the group keys.
    Raises: ValueError for an unknown bucket or group key, or a filter beyond range and segmenter;
        TypeError for a
        ``group_by`` string; DatabaseUnavailable.
    """
    import pandas as pd

    keys = group_keys(group_by)
    names = key_names(keys, bucket=bucket is not None)
    levels = [str(level) for level in FlagLevel]
    files = _scope(filters)
    with read_transaction(session):
        backend = dialect(session)
        scored = file_source(backend, files, bucket, keys)
        group = [scored.c[n] for n in names]
        flags = [sa.func.sum(sa.case((scored.c.flag == level, 1), else_=0)).label(level) for level in levels]
        by_flag = fetch(session, sa.select(*group, *flags).select_from(scored).group_by(*group))
        rejected = file_source(backend, files, bucket, keys, status=FileStatus.REJECTED)
        group = [rejected.c[n] for n in names]
        by_rejected = fetch(
            session,
            sa.select(*group, sa.func.count().label("rejected")).select_from(rejected).group_by(*group),
        )
        segmenters = segmenter_names(session) if "segmenter" in keys else {}
    columns = series_columns("volume", keys)
    if by_flag.empty and by_rejected.empty:
        return empty(columns)
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
        return empty(columns)
    out["flagged"] = out[str(FlagLevel.SUSPICIOUS)] + out[str(FlagLevel.ERRONEOUS)]
    out["flag_rate"] = out["flagged"] / out["scored"].where(out["scored"] > 0)
    return finish(out, keys, segmenters, columns)


def structure_time_series(
    session: Session,
    filters: FileFilter = _ALL_FILES,
    *,
    bucket: Bucket | None = "day",
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
        filters, group_by: as ``volume_time_series``.
    Returns: one row per bucket, group and structure with columns
        ``series_columns("structure", group_by)`` (``STRUCTURE_SERIES_COLUMNS`` by default):
        ``scored`` (files), ``flagged`` (structure flag not ok), ``flag_rate``, and for ``pdsc`` and
        ``phd_mm`` (mm) the number of defined values ``_n`` and the quantiles ``_p25``, ``_median``,
        ``_p75`` (nan values are left out; nan when none is defined); sorted by bucket, group keys,
        structure (LV, RV, MYO).
    Raises: ValueError for an unknown bucket or group key, or a filter beyond range and segmenter;
        TypeError for a
        ``group_by`` string; DatabaseUnavailable.
    """
    keys = group_keys(group_by)
    names = key_names(keys, bucket=bucket is not None)
    files = _scope(filters)
    with read_transaction(session):
        backend = dialect(session)
        if backend == "postgresql":
            out = _structure_groups_postgresql(session, score_source(backend, files, bucket, keys), names)
        else:
            out = _structure_groups_sqlite(session, file_source(backend, files, bucket, keys), names)
        segmenters = segmenter_names(session) if "segmenter" in keys else {}
    columns = series_columns("structure", keys)
    if out.empty:
        return empty(columns)
    counts = ["scored", "flagged", "pdsc_n", "phd_mm_n"]
    out[counts] = out[counts].astype("int64")
    out["flag_rate"] = out["flagged"] / out["scored"].where(out["scored"] > 0)
    return finish(out, keys, segmenters, columns)


def _structure_groups_postgresql(session: Session, source: sa.Subquery, names: list[str]) -> pd.DataFrame:
    """Counts and quantiles per group and structure in one query (``percentile_cont``)."""
    group = [source.c[n] for n in [*names, "structure"]]
    return fetch(
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
                for name, q in QUANTILES.items()
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
            value_list(rows.c.pdsc).label(f"{structure}:pdsc_values"),
            value_list(rows.c.phd_mm).label(f"{structure}:phd_mm_values"),
        ]
    wide = fetch(session, sa.select(*group, *aggregates).select_from(joined).group_by(*group))
    parts = []
    for structure in STRUCTURES:
        part = wide[names].assign(structure=str(structure))
        for value in ("scored", "flagged", "pdsc_n", "phd_mm_n"):
            part[value] = wide[f"{structure}:{value}"].fillna(0).astype("int64")
        for metric in _METRICS:
            quantiles = list_quantiles(
                wide[f"{structure}:{metric}_values"], part[f"{metric}_n"].to_numpy(), metric
            )
            for j, name in enumerate(QUANTILES):
                part[f"{metric}_{name}"] = quantiles[:, j]
        parts.append(part[part["scored"] > 0])  # in SQL, a group without that structure has no row
    return pd.concat(parts, ignore_index=True)


def score_histogram(
    session: Session,
    filters: FileFilter = _ALL_FILES,
    *,
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
        filters, group_by: as ``volume_time_series``.
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
    Raises: ValueError for bad bins, an unknown group key, or a filter beyond range and segmenter;
        TypeError for a ``group_by`` string; DatabaseUnavailable.
    """
    import pandas as pd

    keys = group_keys(group_by)
    if pdsc_bins < 1 or phd_bins < 1 or not phd_bin_mm > 0:
        raise ValueError(
            "need pdsc_bins >= 1, phd_bins >= 1 and phd_bin_mm > 0, "
            f"got {pdsc_bins}, {phd_bins} and {phd_bin_mm}"
        )
    edges = {
        "pdsc": [i / pdsc_bins for i in range(pdsc_bins)] + [1.0],
        "phd_mm": [i * phd_bin_mm for i in range(phd_bins + 1)] + [math.inf],
    }
    names = [*key_names(keys, bucket=False), "structure"]
    files = _scope(filters)
    with read_transaction(session):
        backend = dialect(session)
        source = score_source(backend, files, None, keys)
        binned = sa.select(
            *(source.c[n] for n in names),
            source.c.flagged,
            bin_index(backend, source.c.pdsc * float(pdsc_bins), source.c.pdsc, pdsc_bins - 1).label(
                "pdsc_bin"
            ),
            bin_index(backend, source.c.phd_mm / float(phd_bin_mm), source.c.phd_mm, phd_bins).label(
                "phd_mm_bin"
            ),
        ).subquery("binned")
        group = [binned.c[n] for n in [*names, "pdsc_bin", "phd_mm_bin"]]
        joint = fetch(
            session,
            sa.select(
                *group, sa.func.count().label("files"), sa.func.sum(binned.c.flagged).label("flagged")
            ).group_by(*group),
        )
        segmenters = segmenter_names(session) if "segmenter" in keys else {}
    columns = series_columns("histogram", keys)
    if joint.empty:
        return empty(columns)
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
    return finish(out, keys, segmenters, columns, then=["_metric", "bin"])


def series_columns(
    kind: Literal["volume", "structure", "histogram"], group_by: Sequence[GroupKey] = ("segmenter",)
) -> list[str]:
    """Columns of ``volume_time_series``, ``structure_time_series`` or ``score_histogram`` for a grouping.

    Raises: ValueError for an unknown kind or group key; TypeError for a ``group_by`` string.
    """
    key_columns = [c for key in group_keys(group_by) for c in _KEY_COLUMNS[key]]
    if kind == "volume":
        return ["bucket_start", *key_columns, *_VOLUME_VALUES]
    if kind == "structure":
        return ["bucket_start", *key_columns, "structure", *_STRUCTURE_VALUES]
    if kind == "histogram":
        return [*key_columns, "structure", "metric", "bin", "bin_start", "bin_end", "files", "flagged"]
    raise ValueError(f"kind must be 'volume', 'structure' or 'histogram', got {kind!r}")
