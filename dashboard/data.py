"""Cached reads for the pages, and the dashboard's only write (a review).

Query results are cached per database URL and arguments for ``CACHE_TTL_S`` seconds
(``st.cache_data``), so a page reloads quickly and many viewers share one query; the engine and session
factory are created once per URL (``st.cache_resource``). Submitting a review clears the caches that
show reviews. Everything goes through ``monitor.store``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from dashboard import queries
from monitor.errors import StoreError
from monitor.io.nifti import load_image, load_mask
from monitor.qc.labels import get_label_map
from monitor.store import (
    ALERT_LEVELS,
    AlertRecord,
    CaseRecord,
    FileFilter,
    StatusCounts,
    add_review,
    check_at_head,
    count_alerts,
    estimated_vs_realized,
    get_case,
    list_alerts,
    make_engine,
    make_session_factory,
    score_histogram,
    status_counts,
    structure_time_series,
    volume_time_series,
)
from monitor.store.series import Bucket, GroupKey

__all__ = [
    "CACHE_TTL_S",
    "PAST_TTL_S",
    "VolumeKind",
    "alert_count",
    "alerts",
    "case",
    "clear_all",
    "histogram",
    "reviewed_alerts",
    "schema_problem",
    "session_factory",
    "start_cache_warmer",
    "status",
    "structure_series",
    "submit_review",
    "volume",
    "volume_series",
    "warm_default_views",
]

log = logging.getLogger(__name__)

#: Seconds a query result is reused before the database is asked again.
CACHE_TTL_S = 30
#: Seconds the time series of days before today are reused (they only change by deletion).
PAST_TTL_S = 3600
#: How a NIfTI file is read: a label mask (canonical labels), a binary map, or an MR image (float).
VolumeKind = Literal["labels", "map", "image"]


@st.cache_resource(show_spinner=False)
def session_factory(url: str) -> sessionmaker[Session]:
    """Session factory on the results database (one engine and pool per URL and process)."""
    return make_session_factory(make_engine(url))


@st.cache_data(ttl=60, show_spinner=False)
def schema_problem(url: str) -> str | None:
    """Why the dashboard cannot use the database (schema not at head, unreachable), or None."""
    try:
        check_at_head(url)
    except StoreError as exc:
        return str(exc)
    return None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def status(url: str) -> StatusCounts:
    """Files per status and flag level, overall and per segmenter version."""
    with session_factory(url)() as session:
        return status_counts(session)


def volume_series(
    url: str, bucket: Bucket, files: FileFilter, group_by: tuple[GroupKey, ...] = ("segmenter",)
) -> pd.DataFrame:
    """``monitor.store.volume_time_series`` (files scored, flag counts and rate per bucket and version,
    or site with ``group_by=("site",)``) of the range and segmenter of ``files``.

    The range is split at today's midnight (UTC): days before it are cached for ``PAST_TTL_S`` (files are
    scored at the time they are scored, so past buckets do not change), today for ``CACHE_TTL_S``.
    """
    return _volume(url, files, bucket, tuple(group_by))


def structure_series(
    url: str, bucket: Bucket, files: FileFilter, group_by: tuple[GroupKey, ...] = ("segmenter",)
) -> pd.DataFrame:
    """``monitor.store.structure_time_series`` (pDSC / pHD quantiles, flag rate per structure and bucket).

    Cached like ``volume_series``: days before today for ``PAST_TTL_S``, today for ``CACHE_TTL_S``.
    """
    return _structure(url, files, bucket, tuple(group_by))


def histogram(url: str, files: FileFilter) -> pd.DataFrame:
    """``monitor.store.score_histogram``: files per pDSC and pHD bin, per segmenter version and structure.

    Cached like ``volume_series``; bin counts add up, so the two parts are summed.
    """
    return _histogram(url, files)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Time series of consecutive ranges, one after the other (midnight ends every bucket)."""
    full = [f for f in frames if not f.empty]
    if not full:
        return frames[0]
    return pd.concat(full, ignore_index=True) if len(full) > 1 else full[0]


def _add_histograms(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Histograms of consecutive ranges, summed bin by bin (in the order of the first)."""
    full = [f for f in frames if not f.empty]
    if len(full) < 2:
        return full[0] if full else frames[0]
    counts = ["files", "flagged"]
    keys = [c for c in full[0].columns if c not in counts]
    both = pd.concat(full, ignore_index=True)
    summed = both.groupby(keys, sort=False, dropna=False)[counts].sum().reset_index()
    return summed.reindex(columns=list(full[0].columns))


def _split_by_today(
    past: Callable[..., pd.DataFrame],
    live: Callable[..., pd.DataFrame],
    url: str,
    files: FileFilter,
    rest: tuple[object, ...],
    combine: Callable[[list[pd.DataFrame]], pd.DataFrame],
) -> pd.DataFrame:
    """Query ``[start, midnight)`` with ``past`` and ``[midnight, end)`` with ``live``; ``combine`` them.

    Midnight (UTC) is a boundary of hour and day buckets alike, so no bucket is split.
    """
    cut = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = files.start, files.end
    parts = []
    if start is None or start < cut:
        parts.append(past(url, replace(files, end=cut if end is None or end > cut else end), *rest))
    if end is None or end > cut:
        parts.append(live(url, replace(files, start=cut if start is None or start < cut else start), *rest))
    return parts[0] if len(parts) == 1 else combine(parts)


def _split_cached(
    name: str,
    query: Callable[..., pd.DataFrame],
    options: tuple[str, ...],
    *,
    max_entries: int,
    combine: Callable[[list[pd.DataFrame]], pd.DataFrame],
) -> Callable[..., pd.DataFrame]:
    """A ``monitor.store`` query on a ``FileFilter``, cached in two parts split at today's midnight.

    Args:
        name: names the two caches (``_{name}_past`` for ``PAST_TTL_S``, ``_{name}_live`` for
            ``CACHE_TTL_S``).
        query: called as ``query(session, files, **options)``.
        options: names of the other keyword arguments of ``query``, in the order their values are passed.
        max_entries: results kept by each of the two caches.
        combine: joins the past and the live result (``_split_by_today``).
    Returns: ``f(url, files, *values)`` with the values of ``options`` (hashable: every argument is
        part of the cache key).
    """

    def cached(part: str, ttl_s: int) -> Callable[..., pd.DataFrame]:
        def run(*args: object) -> pd.DataFrame:
            url, files, *values = args
            with session_factory(url)() as session:  # type: ignore[arg-type]
                return query(session, files, **dict(zip(options, values, strict=True)))

        # st.cache_data keys a cache by the function's module, qualified name and source: without a name
        # of its own each part (and each series) would share one cache, replaced whenever the ttl differs
        run.__name__ = run.__qualname__ = f"_{name}_{part}"
        return st.cache_data(ttl=ttl_s, show_spinner=False, max_entries=max_entries)(run)

    past, live = cached("past", PAST_TTL_S), cached("live", CACHE_TTL_S)

    def split(url: str, files: FileFilter, *values: object) -> pd.DataFrame:
        return _split_by_today(past, live, url, files, values, combine)

    return split


_SERIES_OPTIONS = ("bucket", "group_by")
_volume = _split_cached("volume", volume_time_series, _SERIES_OPTIONS, max_entries=32, combine=_concat)
_structure = _split_cached(
    "structure", structure_time_series, _SERIES_OPTIONS, max_entries=32, combine=_concat
)
_histogram = _split_cached("histogram", score_histogram, (), max_entries=16, combine=_add_histograms)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def alerts(url: str, files: FileFilter, *, limit: int, offset: int) -> list[AlertRecord]:
    """One page of ``monitor.store.list_alerts``."""
    with session_factory(url)() as session:
        return list_alerts(session, files, limit=limit, offset=offset)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def alert_count(url: str, files: FileFilter) -> int:
    """``monitor.store.count_alerts`` with the same filter as ``alerts``."""
    with session_factory(url)() as session:
        return count_alerts(session, files)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def reviewed_alerts(url: str, files: FileFilter) -> pd.DataFrame:
    """Reviewed flagged files by flag type (``dashboard.queries.reviewed_alerts_frame``)."""
    with session_factory(url)() as session:
        return queries.reviewed_alerts_frame(session, files)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def realized(url: str, files: FileFilter) -> pd.DataFrame:
    """``monitor.store.estimated_vs_realized``: stored estimates beside realized metrics."""
    with session_factory(url)() as session:
        return estimated_vs_realized(session, files)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def case(url: str, file_id: int) -> CaseRecord | None:
    """``monitor.store.get_case``: one file with scores, artifacts and reviews; None when unknown."""
    with session_factory(url)() as session:
        return get_case(session, file_id)


@st.cache_data(ttl=300, max_entries=24, show_spinner=False)
def volume(path: str, mtime_ns: int, kind: VolumeKind, label_map: str = "acdc") -> np.ndarray:
    """A NIfTI volume as [z, y, x]: canonical labels (uint8), a boolean map, or the image (float32).

    ``path`` must already be resolved inside the configured folders (``dashboard.viewer.resolve_inside``);
    ``mtime_ns`` makes a rewritten file a new cache entry.

    Raises: InvalidMask when the file cannot be read.
    """
    del mtime_ns  # part of the cache key only
    if kind == "labels":
        return load_mask(Path(path), get_label_map(label_map)).labels
    data, _ = load_image(Path(path))
    return data > 0 if kind == "map" else data


def submit_review(url: str, file_id: int, *, verdict: str, reviewer: str, note: str | None) -> int:
    """Store a review (``monitor.store.add_review``, time now) and drop the cached results that show it.

    Returns: the review id.
    Raises: FileStateError when the file is not scored; ValueError for a bad verdict or empty reviewer.
    """
    with session_factory(url)() as session:
        review_id = add_review(session, file_id, verdict=verdict, reviewer=reviewer, note=note or None)
    for cached in (case, alerts, alert_count, reviewed_alerts):
        cached.clear()
    log.info("review stored", extra={"action": "review", "file_id": file_id, "verdict": verdict})
    return review_id


def clear_all() -> None:
    """Drop every cached query result (the Refresh button)."""
    st.cache_data.clear()


def warm_default_views(url: str) -> None:
    """Run the queries of every page's default view, so that the next visitor finds them cached."""
    from dashboard.filters import default_filters

    f = default_filters(status(url))
    files = f.files()
    for bucket in dict.fromkeys([f.bucket, "day"]):
        volume_series(url, bucket, files)
        structure_series(url, bucket, files)
    histogram(url, files)
    page = f.files(levels=ALERT_LEVELS)
    alert_count(url, page)
    alerts(url, page, limit=50, offset=0)
    reviewed_alerts(url, files)


@st.cache_resource(show_spinner=False)
def start_cache_warmer(url: str, every_s: float) -> threading.Event:
    """Start (once per URL and process) a thread that runs ``warm_default_views`` every ``every_s`` seconds.

    The long queries of a large database (the time series of 100,000 files take seconds) then run in the
    background instead of in a visitor's page load. Returns the event that stops the thread.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                warm_default_views(url)
            except Exception as exc:  # the pages report database problems; the warmer only retries
                log.warning(
                    "dashboard cache warm-up failed: %s", type(exc).__name__, extra={"action": "warm_cache"}
                )
            stop.wait(every_s)

    threading.Thread(target=loop, name="cmr-dashboard-cache-warmer", daemon=True).start()
    return stop
