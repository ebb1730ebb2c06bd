"""dashboard.summaries and dashboard.queries table builders on hand-made frames."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from dashboard.filters import bucket_for, day_range
from dashboard.summaries import (
    flag_type,
    flag_type_precision,
    histogram_flag_rates,
    md_escape,
    running_precision,
    site_summary,
    structure_flag_rates,
    utc_text,
    version_starts,
    version_summary,
)
from monitor.qc.flags import flag_structure
from monitor.qc.labels import Structure

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def _volume(rows: list[tuple[int, str, int, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "bucket_start": T0 + pd.Timedelta(days=d),
                "segmenter_name": "unet",
                "segmenter_version": v,
                "scored": ok + sus + err,
                "ok": ok,
                "suspicious": sus,
                "erroneous": err,
                "flagged": sus + err,
                "flag_rate": (sus + err) / (ok + sus + err) if ok + sus + err else math.nan,
                "rejected": rej,
            }
            for d, v, ok, sus, err, rej in rows
        ]
    )


def test_version_summary_and_starts() -> None:
    volume = _volume([(0, "1", 8, 2, 0, 1), (1, "1", 9, 1, 0, 0), (1, "2", 5, 3, 2, 0), (2, "2", 0, 0, 0, 2)])
    summary = version_summary(volume).set_index("version")
    assert summary.loc["unet 1", "scored"] == 20 and summary.loc["unet 1", "flag_rate"] == pytest.approx(0.15)
    assert summary.loc["unet 2", "scored"] == 10 and summary.loc["unet 2", "rejected"] == 2
    assert summary.loc["unet 2", "first_scored"] == T0 + pd.Timedelta(days=1)
    assert summary.loc["unet 2", "last_scored"] == T0 + pd.Timedelta(
        days=1
    )  # the reject-only day is not a score
    starts = version_starts(volume)
    assert starts.to_dict("records") == [
        {"version": "unet 2", "bucket_start": T0 + pd.Timedelta(days=1), "label": "new: unet 2"}
    ]
    assert version_summary(volume.iloc[0:0]).empty and version_starts(volume.iloc[0:0]).empty


def test_structure_flag_rates_in_structure_order() -> None:
    frame = pd.DataFrame(
        [
            {"segmenter_name": "u", "segmenter_version": "1", "structure": s, "scored": 10, "flagged": f}
            for s, f in (("MYO", 1), ("LV", 2), ("RV", 0), ("LV", 3))
        ]
    )
    rates = structure_flag_rates(frame)
    assert rates["structure"].tolist() == ["LV", "RV", "MYO"]
    assert rates["flag_rate"].tolist() == pytest.approx([0.25, 0.0, 0.1])


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"mask_voxels": 0, "pgt_voxels": 5, "pdsc": 0.0, "phd_mm": math.nan}, {"LV missing"}),
        ({"mask_voxels": 5, "pgt_voxels": 0, "pdsc": 0.0, "phd_mm": math.nan}, {"LV vanished from pGT"}),
        ({"mask_voxels": 5, "pgt_voxels": 5, "pdsc": 0.3, "phd_mm": 80.0}, {"LV pHD high", "LV pDSC low"}),
    ],
    ids=["missing", "vanished", "both-thresholds"],
)
def test_flag_type_of_every_reason_code_of_the_flags(kwargs: dict, expected: set[str]) -> None:
    _, codes = flag_structure(**kwargs)
    assert {flag_type(Structure.LV, code) for code in codes} == expected


def test_flag_type_of_an_unknown_code_names_it() -> None:
    assert flag_type("RV", "ring_open") == "RV ring_open"  # a code written by a newer version


def _reviewed() -> pd.DataFrame:
    rows = [
        (1, "u 1", "LV missing", "confirmed"),
        (2, "u 1", "LV missing", "confirmed"),
        (3, "u 2", "LV missing", "false_alarm"),
        (4, "u 2", "RV pHD high", "unsure"),
        (5, "u 2", "RV pHD high", "confirmed"),
    ]
    return pd.DataFrame(
        [
            {
                "file_id": i,
                "version": v,
                "scored_at": T0 + pd.Timedelta(hours=i),
                "flag_type": t,
                "verdict": verdict,
            }
            for i, v, t, verdict in rows
        ]
    )


def test_flag_type_precision() -> None:
    table = flag_type_precision(_reviewed()).set_index("flag_type")
    assert table.loc["LV missing"].tolist()[:4] == [3, 2, 1, 0]
    assert table.loc["LV missing", "precision"] == pytest.approx(2 / 3)
    assert table.loc["RV pHD high", "precision"] == pytest.approx(1 / 2)  # unsure counts as reviewed
    per_version = flag_type_precision(_reviewed(), by_version=True)
    assert per_version.set_index(["version", "flag_type"]).loc[("u 2", "LV missing"), "precision"] == 0.0
    assert flag_type_precision(_reviewed().iloc[0:0]).empty


def test_running_precision_is_cumulative() -> None:
    running = running_precision(_reviewed())
    lv = running[running["flag_type"] == "LV missing"]
    assert lv["reviewed"].tolist() == [1, 2, 3]
    assert lv["precision"].tolist() == pytest.approx([1.0, 1.0, 2 / 3])


def test_md_escape_neutralises_markdown_from_file_names() -> None:
    assert md_escape("patient_01 [x](http://e.vil) :red[y] **z**") == (
        r"patient\_01 \[x\]\(http\://e\.vil\) \:red\[y\] \*\*z\*\*"
    )
    assert md_escape("plain 12") == "plain 12"


def test_utc_text() -> None:
    assert utc_text(datetime(2026, 3, 1, 12, 5, tzinfo=UTC)) == "2026-03-01 12:05"
    assert utc_text(pd.Timestamp("2026-03-01 13:05", tz="Europe/Berlin")) == "2026-03-01 12:05"
    assert utc_text(None) == "" and utc_text(pd.NaT) == ""


def test_day_range_and_bucket() -> None:
    start, end = day_range(datetime(2026, 3, 5).date(), datetime(2026, 3, 1).date())
    assert (start, end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC))
    assert bucket_for(None, start, start + pd.Timedelta(days=3)) == "hour"
    assert bucket_for(None, start, end) == "day"
    assert bucket_for("hour", start, end) == "hour"


def test_site_summary_most_scored_first() -> None:
    volume = _volume([(0, "1", 8, 2, 0, 1), (0, "1", 3, 0, 1, 0), (1, "1", 0, 0, 0, 2)]).assign(
        site=["site-B", None, "site-B"]
    )
    summary = site_summary(volume)
    assert summary["site"].tolist() == ["site-B", "(no site)"]
    assert summary["scored"].tolist() == [10, 4]
    assert summary["rejected"].tolist() == [3, 0]
    assert summary["flag_rate"].tolist() == pytest.approx([0.2, 0.25])
    assert site_summary(volume.iloc[0:0]).empty


def test_histogram_flag_rates_count_every_bin() -> None:
    rows = [
        # version, structure, metric, bin, files, flagged
        ("1", "LV", "pdsc", -1, 2, 2),  # undefined pDSC: still scored files
        ("1", "LV", "pdsc", 0, 3, 1),
        ("1", "LV", "pdsc", 19, 5, 0),
        ("1", "LV", "phd_mm", 3, 10, 3),  # the other metric's bins hold the same files again
        ("2", "RV", "pdsc", 4, 4, 4),
    ]
    histogram = pd.DataFrame(
        [
            {"segmenter_name": "unet", "segmenter_version": v, "structure": s, "metric": m, "bin": b}
            | {"files": n, "flagged": f}
            for v, s, m, b, n, f in rows
        ]
    )
    rates = histogram_flag_rates(histogram).set_index(["version", "structure"])
    assert rates.loc[("unet 1", "LV"), "scored"] == 10
    assert rates.loc[("unet 1", "LV"), "flag_rate"] == pytest.approx(0.3)
    assert rates.loc[("unet 2", "RV"), "flag_rate"] == 1.0
