"""dashboard/data.py: the range split at midnight (cached past days, live today) gives the numbers of
one query over the whole range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from dashboard import data
from monitor.store import FileFilter, make_engine, make_session_factory, score_histogram, volume_time_series
from tests.dashboard.conftest import Seeded


def test_histograms_of_two_ranges_add_up_to_the_whole(seeded: Seeded) -> None:
    s = seeded.summary
    cut = s.start + (s.end - s.start) / 2
    engine = make_engine(seeded.url)
    try:
        with make_session_factory(engine)() as session:
            whole = score_histogram(session, FileFilter(start=s.start, end=s.end))
            parts = [
                score_histogram(session, FileFilter(start=s.start, end=cut)),
                score_histogram(session, FileFilter(start=cut, end=s.end)),
            ]
            volume = volume_time_series(session, FileFilter(start=s.start, end=s.end), bucket="hour")
            halves = [
                volume_time_series(session, FileFilter(start=s.start, end=cut), bucket="hour"),
                volume_time_series(session, FileFilter(start=cut, end=s.end), bucket="hour"),
            ]
    finally:
        engine.dispose()
    summed = data._add_histograms(parts)
    pd.testing.assert_frame_equal(summed, whole, check_dtype=False)
    pd.testing.assert_frame_equal(data._concat(halves), volume, check_dtype=False)
    assert data._add_histograms([whole.iloc[0:0], whole]) is whole


def test_split_by_today_asks_past_and_live_parts() -> None:
    calls: list[tuple[str, object, object]] = []

    def past(url: str, files: FileFilter, *rest: object) -> pd.DataFrame:
        calls.append(("past", files.start, files.end))
        assert files.segmenter_name == "unet"  # the rest of the filter is kept
        return pd.DataFrame({"x": [1]})

    def live(url: str, files: FileFilter, *rest: object) -> pd.DataFrame:
        calls.append(("live", files.start, files.end))
        return pd.DataFrame({"x": [2]})

    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    week_ago, tomorrow = midnight - timedelta(days=7), midnight + timedelta(days=1)
    files = FileFilter(start=week_ago, end=tomorrow, segmenter_name="unet")
    out = data._split_by_today(past, live, "sqlite://", files, (), data._concat)
    assert out["x"].tolist() == [1, 2]
    assert calls == [("past", week_ago, midnight), ("live", midnight, tomorrow)]
    calls.clear()
    until_midnight = FileFilter(start=week_ago, end=midnight, segmenter_name="unet")
    assert data._split_by_today(past, live, "sqlite://", until_midnight, (), data._concat)["x"].tolist() == [
        1
    ]
    assert calls == [("past", week_ago, midnight)]


def test_combining_empty_parts() -> None:
    empty = pd.DataFrame({"files": pd.Series(dtype="int64"), "flagged": pd.Series(dtype="int64")})
    assert data._concat([empty, empty]) is empty
    assert data._add_histograms([empty, empty]) is empty
