"""dashboard/charts.py: the Vega-Lite specs the pages draw, on hand-made frames."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from dashboard.charts import NO_SITE, band_chart, histogram_chart, rate_chart, scored_chart, with_series

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def _structure() -> pd.DataFrame:
    rows = []
    for day in range(3):
        for version in ("1.0", "1.1"):
            for structure in ("LV", "RV", "MYO"):
                rows.append(
                    {
                        "bucket_start": T0 + pd.Timedelta(days=day),
                        "segmenter_name": "unet",
                        "segmenter_version": version,
                        "site": "site-A" if version == "1.0" else None,
                        "structure": structure,
                        "scored": 10,
                        "flagged": day,
                        "flag_rate": day / 10,
                        **{f"{m}_{q}": 0.5 for m in ("pdsc", "phd_mm") for q in ("p25", "median", "p75")},
                        "pdsc_n": 10 if day else 0,  # day 0: no defined pDSC
                        "phd_mm_n": 10,
                    }
                )
    return pd.DataFrame(rows)


STARTS = pd.DataFrame(
    {"version": ["unet 1.1"], "bucket_start": [T0 + pd.Timedelta(days=1)], "label": ["new: unet 1.1"]}
)


def _data(spec: dict) -> list[dict]:
    return next(iter(spec["datasets"].values()))


def test_with_series_labels_versions_and_sites() -> None:
    frame = _structure()
    assert set(with_series(frame, "segmenter")["series"]) == {"unet 1.0", "unet 1.1"}
    assert set(with_series(frame, "site")["series"]) == {"site-A", NO_SITE}
    with pytest.raises(ValueError, match="split must be"):
        with_series(frame, "scanner")


@pytest.mark.parametrize("split", ["segmenter", "site"])
def test_structure_panels_carry_the_version_markers(split: str) -> None:
    for chart in (
        rate_chart(_structure(), STARTS, "day", split),
        band_chart(_structure(), STARTS, "day", "pdsc", split),
    ):
        spec = chart.to_dict()
        assert spec["facet"]["column"]["field"] == "structure"
        rows = _data(spec)
        markers = [r for r in rows if r["mark"] == "marker"]
        assert sorted(r["structure"] for r in markers) == ["LV", "MYO", "RV"]  # one marker per panel
        assert {r["label"] for r in markers} == {"new: unet 1.1"}
    band_rows = [
        r for r in _data(band_chart(_structure(), STARTS, "day", "pdsc").to_dict()) if r["mark"] == "data"
    ]
    assert len(band_rows) == 2 * 2 * 3  # day 0 has no defined pDSC, so no band there


def test_charts_without_markers_and_hour_buckets() -> None:
    no_starts = STARTS.iloc[0:0]
    spec = band_chart(_structure(), no_starts, "hour", "phd_mm").to_dict()
    assert all(r["mark"] == "data" for r in _data(spec))
    volume = _structure().drop_duplicates(["bucket_start", "segmenter_version"]).assign(rejected=0)
    assert "layer" in scored_chart(volume, STARTS, "hour", "site").to_dict()


def test_histogram_chart_shares_of_defined_values() -> None:
    rows = []
    for version, files in (("1.0", [0, 6, 2]), ("1.1", [4, 1, 1])):
        for b, n in zip((-1, 0, 1), files, strict=True):
            rows.append(
                {
                    "segmenter_name": "unet",
                    "segmenter_version": version,
                    "structure": "LV",
                    "metric": "phd_mm",
                    "bin": b,
                    "bin_start": 2.0 * b if b >= 0 else math.nan,
                    "bin_end": (2.0 * (b + 1) if b == 0 else math.inf) if b >= 0 else math.nan,
                    "files": n,
                    "flagged": 0,
                }
            )
    spec = histogram_chart(pd.DataFrame(rows), "phd_mm").to_dict()
    data = _data(spec)
    assert all(r["bin"] >= 0 for r in data)  # the undefined bin is not drawn
    shares = {(r["version"], r["bin"]): r["share"] for r in data}
    assert shares[("unet 1.0", 0)] == pytest.approx(0.75)
    assert shares[("unet 1.1", 1)] == pytest.approx(0.5)
    last = next(r for r in data if r["bin"] == 1 and r["version"] == "unet 1.0")
    assert (last["bin_right"], last["bin_label"]) == (4.0, ">= 2")  # open-ended bin drawn one bin wide
    json.dumps(spec, allow_nan=False)  # plain JSON: no inf or nan left
