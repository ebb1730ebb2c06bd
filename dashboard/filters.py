"""The sidebar filters every page shares: date range, segmenter version, time bucket, refresh.

Rendered once per run by ``app.py`` (so their values survive page changes); the pages read the
resulting ``Filters``. Dates are UTC days; the range is turned into the half-open ``[start, end)`` the
store expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import streamlit as st

from dashboard.summaries import version_label
from monitor.store import FileFilter, StatusCounts

__all__ = ["DEFAULT_DAYS", "Filters", "bucket_for", "day_range", "default_filters", "sidebar_filters"]

#: Days shown by default, ending on the day of the latest score.
DEFAULT_DAYS = 28
_ALL = "All versions"
_BUCKETS = {"Auto": None, "Hour": "hour", "Day": "day"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """What the sidebar selects."""

    start: datetime  #: first instant shown (UTC, inclusive)
    end: datetime  #: end of the range (UTC, exclusive)
    segmenter_name: str | None  #: one segmenter, or None for all
    segmenter_version: str | None  #: one version, or None for all
    bucket: Literal["hour", "day"]  #: time-series bucket

    @property
    def days(self) -> float:
        """Length of the range in days."""
        return (self.end - self.start).total_seconds() / 86400.0

    def files(self, **conditions: Any) -> FileFilter:
        """The store's filter for this range and segmenter version, plus ``conditions`` (levels,
        structure, reviewed)."""
        return FileFilter(
            start=self.start,
            end=self.end,
            segmenter_name=self.segmenter_name,
            segmenter_version=self.segmenter_version,
            **conditions,
        )


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    """UTC ``[first 00:00, last + 1 day 00:00)`` (the days are swapped when given backwards)."""
    if last < first:
        first, last = last, first
    start = datetime.combine(first, time(0), tzinfo=UTC)
    return start, datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)


def bucket_for(choice: str | None, start: datetime, end: datetime) -> Literal["hour", "day"]:
    """``"hour"`` or ``"day"`` as chosen; ``None`` (auto) gives hours for ranges up to 3 days."""
    if choice in ("hour", "day"):
        return choice  # type: ignore[return-value]
    return "hour" if end - start <= timedelta(days=3) else "day"


def _last_day(counts: StatusCounts, today: date | None) -> date:
    """The day of the latest score, else ``today`` (UTC)."""
    if counts.last_scored_at is not None:
        return counts.last_scored_at.astimezone(UTC).date()
    return today or datetime.now(UTC).date()


def default_filters(counts: StatusCounts, *, today: date | None = None) -> Filters:
    """What the sidebar shows before anyone touches it: the ``DEFAULT_DAYS`` days up to the latest score,
    all segmenter versions, automatic bucket (the cache warmer prepares exactly this view)."""
    last = _last_day(counts, today)
    start, end = day_range(last - timedelta(days=DEFAULT_DAYS - 1), last)
    return Filters(
        start=start, end=end, segmenter_name=None, segmenter_version=None, bucket=bucket_for(None, start, end)
    )


def sidebar_filters(counts: StatusCounts, *, today: date | None = None) -> Filters:
    """Render the shared filters in the sidebar and return the selection.

    Args:
        counts: status counts (for the segmenter versions and the latest score).
        today: the default last day when nothing has been scored; today (UTC) when None.
    """
    last_day = _last_day(counts, today)
    with st.sidebar:
        st.subheader("Filters")
        picked = st.date_input(
            "Scored between (UTC days)",
            value=(last_day - timedelta(days=DEFAULT_DAYS - 1), last_day),
            key="filter_dates",
        )
        days = list(picked) if isinstance(picked, list | tuple) else [picked]
        first = days[0] if days else last_day
        last = days[-1] if days else last_day
        start, end = day_range(first, last)
        options = [_ALL, *(version_label(s.segmenter_name, s.segmenter_version) for s in counts.segmenters)]
        chosen = st.selectbox("Segmenter version", options, key="filter_segmenter")
        name = version = None
        for s in counts.segmenters:
            if chosen == version_label(s.segmenter_name, s.segmenter_version):
                name, version = s.segmenter_name, s.segmenter_version
        bucket_choice = st.radio(
            "Time bucket",
            list(_BUCKETS),
            horizontal=True,
            key="filter_bucket",
            help="Auto: hours up to 3 days",
        )
    return Filters(
        start=start,
        end=end,
        segmenter_name=name,
        segmenter_version=version,
        bucket=bucket_for(_BUCKETS.get(bucket_choice or "Auto"), start, end),
    )
