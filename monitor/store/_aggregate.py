"""SQL building blocks of the time series and histograms: group keys, time buckets, file and score
sources, bins, and the quantiles SQLite cannot compute. Private to ``monitor.store``."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from monitor.errors import StoreError
from monitor.qc.levels import FlagLevel
from monitor.store._sql import file_conditions, time_column
from monitor.store.models import MaskFile, StructureScoreRow
from monitor.store.records import FileFilter, FileStatus

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "GROUP_KEYS",
    "QUANTILES",
    "Bucket",
    "GroupKey",
    "bin_index",
    "file_source",
    "group_keys",
    "key_names",
    "list_quantiles",
    "score_source",
    "segment_quantiles",
    "value_list",
]

Bucket = Literal["hour", "day"]
#: What a time series or histogram can be split by: segmenter version (name and version) and site.
GroupKey = Literal["segmenter", "site"]
#: The group keys, in the order their columns appear.
GROUP_KEYS: tuple[GroupKey, ...] = ("segmenter", "site")
#: Quantiles of pDSC and pHD in the structure series: name -> q.
QUANTILES = {"p25": 0.25, "median": 0.5, "p75": 0.75}
#: ``strftime`` formats of the SQLite buckets (the start of the bucket, as stored: naive UTC text).
BUCKET_FORMATS = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}


def group_keys(group_by: Sequence[GroupKey]) -> tuple[GroupKey, ...]:
    """The group keys in column order (segmenter, site), checked."""
    if isinstance(group_by, str):
        raise TypeError(f"group_by must be a sequence of group keys such as ('site',), got {group_by!r}")
    unknown = [key for key in group_by if key not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"group_by keys must be among {GROUP_KEYS}, got {list(group_by)}")
    return tuple(key for key in GROUP_KEYS if key in group_by)


def key_names(keys: Sequence[GroupKey], *, bucket: bool) -> list[str]:
    """Group columns of the SQL sources, in order: ``bucket``, ``segmenter_id``, ``site``."""
    return [
        *(["bucket"] if bucket else []),
        *(["segmenter_id"] if "segmenter" in keys else []),
        *(["site"] if "site" in keys else []),
    ]


def source_keys(
    dialect: str, bucket: Bucket | None, at: Any, keys: Sequence[GroupKey]
) -> list[sa.ColumnElement[Any]]:
    """The group columns of a source (see ``key_names``), labelled."""
    columns: list[sa.ColumnElement[Any]] = []
    if bucket is not None:
        columns.append(bucket_start(dialect, bucket, at).label("bucket"))
    if "segmenter" in keys:
        columns.append(MaskFile.segmenter_id.label("segmenter_id"))
    if "site" in keys:
        columns.append(MaskFile.site.label("site"))
    return columns


def bucket_start(dialect: str, bucket: Bucket, at: Any) -> sa.ColumnElement[Any]:
    """Start of the UTC hour or day of the timestamp column ``at``.

    SQLite: ``strftime`` of the stored naive UTC text (text out, parsed by pandas). PostgreSQL:
    ``date_trunc`` of the time in UTC (``timezone('UTC', at)``), so the session's TimeZone setting
    cannot move the day boundaries.
    Raises: ValueError for an unknown bucket.
    """
    if bucket not in BUCKET_FORMATS:
        raise ValueError(f"bucket must be 'hour', 'day' or None, got {bucket!r}")
    if dialect == "postgresql":
        return sa.func.date_trunc(bucket, sa.func.timezone("UTC", at), type_=sa.DateTime())
    return sa.func.strftime(BUCKET_FORMATS[bucket], at, type_=sa.String())


def file_source(
    dialect: str,
    files: FileFilter,
    bucket: Bucket | None,
    keys: Sequence[GroupKey],
    status: FileStatus = FileStatus.SCORED,
) -> sa.Subquery:
    """The files of ``status`` that ``files`` keeps: group columns (bucket of their scoring or rejection
    time), ``id`` and the volume flag (text)."""
    return (
        sa.select(
            *source_keys(dialect, bucket, time_column(status), keys),
            MaskFile.id.label("id"),
            sa.type_coerce(MaskFile.flag, sa.String()).label("flag"),
        )
        .where(*file_conditions(files, status))
        .subquery("files")
    )


def score_source(
    dialect: str, files: FileFilter, bucket: Bucket | None, keys: Sequence[GroupKey]
) -> sa.Subquery:
    """Structure scores of the files of ``files`` (scored files): group columns, ``structure`` (text),
    ``flagged`` (1 when the structure's flag is not ok, else 0) and the metrics (NULL when undefined)."""
    return (
        sa.select(
            *source_keys(dialect, bucket, time_column(FileStatus.SCORED), keys),
            sa.type_coerce(StructureScoreRow.structure, sa.String()).label("structure"),
            sa.case((StructureScoreRow.flag != FlagLevel.OK, 1), else_=0).label("flagged"),
            StructureScoreRow.pdsc.label("pdsc"),
            StructureScoreRow.phd_mm.label("phd_mm"),
        )
        .select_from(MaskFile)
        .join(StructureScoreRow, StructureScoreRow.file_id == MaskFile.id)
        .where(*file_conditions(files))
        .subquery("scores")
    )


def bin_index(dialect: str, scaled: Any, value: Any, last: int) -> sa.ColumnElement[Any]:
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


def value_list(value: Any) -> sa.ColumnElement[str]:
    """SQLite aggregate: the group's defined values as comma-separated text that parses back to the
    same doubles (``printf('%.17g')``; plain text conversion keeps only 15 digits). NULL values are
    left out (``printf`` would print them as 0); NULL when the group has none."""
    text = sa.case((value.is_(None), sa.null()), else_=sa.func.printf("%.17g", value))
    return sa.func.group_concat(text, ",", type_=sa.String())


def list_quantiles(lists: pd.Series, counts: np.ndarray, metric: str) -> np.ndarray:
    """Quantiles (``QUANTILES``) of each row's value list (``value_list``) of ``counts[i]`` values.

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
    return segment_quantiles(values, counts, list(QUANTILES.values()))


def segment_quantiles(values: np.ndarray, counts: np.ndarray, qs: Sequence[float]) -> np.ndarray:
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
