"""Altair (Vega-Lite) charts of the dashboard; pure functions of the store's DataFrames.

Times are drawn on a UTC scale. The time-series charts colour one line or bar per ``series``: the
segmenter version (``"name version"``) or the site, as the Overview is split (``with_series``); a dashed
rule with a label marks where a segmenter version first appears in the range.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from dashboard.summaries import with_version
from monitor.qc.labels import STRUCTURES

__all__ = [
    "METRIC_TITLES",
    "NO_SITE",
    "SPLITS",
    "band_chart",
    "flag_rate_bars",
    "histogram_chart",
    "rate_chart",
    "running_precision_chart",
    "scored_chart",
    "with_series",
]

#: Axis titles of the metrics.
METRIC_TITLES = {"pdsc": "pDSC", "phd_mm": "pHD (mm)"}
#: How the Overview can be split: store group key -> legend title.
SPLITS = {"segmenter": "segmenter", "site": "site"}
#: Label of files without a site.
NO_SITE = "(no site)"
_HEIGHT = 240
_BAND = ("n", "p25", "median", "p75")
#: Width (px) of one structure's panel.
_PANEL_WIDTH = 260


def with_series(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """``frame`` with a ``series`` column: the segmenter version label (``split="segmenter"``) or the
    site (``split="site"``; ``NO_SITE`` for files without one)."""
    if split == "segmenter":
        return frame.assign(series=with_version(frame)["version"])
    if split == "site":
        return frame.assign(series=[s if isinstance(s, str) and s else NO_SITE for s in frame["site"]])
    raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")


def _colour(
    values: Sequence[str],
    *,
    legend: bool = True,
    field: str = "version",
    title: str = "segmenter",
    orient: str = "right",
) -> alt.Color:
    """Colour by ``field``; a faceted chart takes ``orient="top"``: three panels fill a 1400 px
    screen, and a legend on their right is cut off."""
    return alt.Color(
        f"{field}:N",
        title=title,
        scale=alt.Scale(domain=sorted(set(values))),
        legend=alt.Legend(orient=orient) if legend else None,
    )


# Charts get only the columns they draw: Altair hashes a layer's data through its text repr, and the
# data travel to the browser, so narrow frames draw faster.


def _time_axis(bucket: str) -> alt.X:
    return alt.X(
        "bucket_start:T",
        timeUnit="utcyearmonthdatehours" if bucket == "hour" else "utcyearmonthdate",
        title=f"{bucket} (UTC)",
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format="%d %b %H:%M" if bucket == "hour" else "%d %b"),
    )


def _markers(starts: pd.DataFrame) -> list[alt.Chart]:
    """Dashed rules and labels where a version first appears (empty list when none)."""
    if starts.empty:
        return []
    base = alt.Chart(starts).encode(x=alt.X("bucket_start:T", scale=alt.Scale(type="utc")))
    rule = base.mark_rule(strokeDash=[4, 3], color="#555").encode(tooltip=["label:N"])
    text = base.mark_text(align="left", dx=4, dy=-4, baseline="top", color="#333").encode(
        y=alt.value(2), text="label:N"
    )
    return [rule, text]


def scored_chart(
    volume: pd.DataFrame, starts: pd.DataFrame, bucket: str, split: str = "segmenter"
) -> alt.LayerChart:
    """Masks scored per bucket, stacked by segmenter version (or site), with version markers."""
    frame = with_series(volume, split)[["bucket_start", "series", "scored", "flagged", "rejected"]]
    bars = (
        alt.Chart(frame)
        .mark_bar(width=alt.RelativeBandSize(0.85))
        .encode(
            x=_time_axis(bucket),
            y=alt.Y("sum(scored):Q", title="masks scored"),
            color=_colour(frame["series"], field="series", title=SPLITS[split]),
            tooltip=["bucket_start:T", "series:N", "scored:Q", "flagged:Q", "rejected:Q"],
        )
    )
    return alt.layer(bars, *_markers(starts)).properties(height=_HEIGHT)


def rate_chart(
    structure: pd.DataFrame, starts: pd.DataFrame, bucket: str, split: str = "segmenter"
) -> alt.FacetChart:
    """Flag rate per bucket and version or site, one panel per structure (rows of
    ``structure_time_series``); no legend (the colours are those of ``scored_chart``)."""
    frame = with_series(structure, split)[
        ["bucket_start", "series", "structure", "scored", "flagged", "flag_rate"]
    ]
    lines = (
        alt.Chart()
        .mark_line(point=alt.OverlayMarkDef(size=14))
        .encode(
            x=_time_axis(bucket),
            y=alt.Y(
                "flag_rate:Q", title="flag rate", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
            ),
            color=_colour(frame["series"], legend=False, field="series", title=SPLITS[split]),
            tooltip=[
                "bucket_start:T",
                "series:N",
                "scored:Q",
                "flagged:Q",
                alt.Tooltip("flag_rate:Q", format=".1%"),
            ],
        )
    )
    return _per_structure(frame, starts, [lines])


def band_chart(
    structure: pd.DataFrame, starts: pd.DataFrame, bucket: str, metric: str, split: str = "segmenter"
) -> alt.FacetChart:
    """Median of ``metric`` (``pdsc`` or ``phd_mm``) with its inter-quartile band, per version or site, one
    panel per structure; no legend."""
    frame = with_series(structure, split)
    columns = ["bucket_start", "series", "structure", *(f"{metric}_{q}" for q in _BAND)]
    frame = frame.loc[frame[f"{metric}_n"] > 0, columns]
    label = METRIC_TITLES[metric]
    base = alt.Chart().encode(
        x=_time_axis(bucket),
        color=_colour(frame["series"], legend=False, field="series", title=SPLITS[split]),
    )
    scale = alt.Scale(zero=False)
    band = base.mark_area(opacity=0.25).encode(
        y=alt.Y(f"{metric}_p25:Q", title=label, scale=scale), y2=f"{metric}_p75:Q"
    )
    line = base.mark_line().encode(
        y=alt.Y(f"{metric}_median:Q", title=label, scale=scale),
        tooltip=[
            "bucket_start:T",
            "series:N",
            alt.Tooltip(f"{metric}_median:Q", format=".3g", title="median"),
            alt.Tooltip(f"{metric}_p25:Q", format=".3g", title="p25"),
            alt.Tooltip(f"{metric}_p75:Q", format=".3g", title="p75"),
            alt.Tooltip(f"{metric}_n:Q", title="n"),
        ],
    )
    return _per_structure(frame, starts, [band, line])


def _per_structure(frame: pd.DataFrame, starts: pd.DataFrame, layers: list[alt.Chart]) -> alt.FacetChart:
    """``layers`` (charts without data) over ``frame``, one panel per structure (LV, RV, MYO), with the
    version markers in every panel.

    One faceted chart instead of three: Altair builds and validates each chart object in Python, which
    costs more than drawing it. The markers travel in the same data (rows with ``mark`` "marker"), since
    a faceted chart has one dataset.
    """
    data = frame.assign(mark="data")
    marker_layers = []
    if not starts.empty:
        structures = pd.DataFrame({"structure": [str(s) for s in STRUCTURES]})
        markers = starts[["bucket_start", "label"]].merge(structures, how="cross").assign(mark="marker")
        data = pd.concat([data, markers], ignore_index=True)
        base = (
            alt.Chart()
            .transform_filter(alt.datum.mark == "marker")
            .encode(x=alt.X("bucket_start:T", scale=alt.Scale(type="utc")))
        )
        marker_layers = [
            base.mark_rule(strokeDash=[4, 3], color="#555").encode(tooltip=["label:N"]),
            base.mark_text(align="left", dx=4, dy=-4, baseline="top", color="#333").encode(
                y=alt.value(2), text="label:N"
            ),
        ]
    drawn = [layer.transform_filter(alt.datum.mark == "data") for layer in layers]
    return (
        alt.layer(*drawn, *marker_layers, data=data)
        .properties(height=_HEIGHT, width=_PANEL_WIDTH)
        .facet(column=alt.Column("structure:N", title=None, sort=[str(s) for s in STRUCTURES]))
    )


def flag_rate_bars(rates: pd.DataFrame) -> alt.Chart:
    """Flag rate per structure, versions side by side (rows of ``summaries.structure_flag_rates``)."""
    return (
        alt.Chart(rates)
        .mark_bar()
        .encode(
            x=alt.X("structure:N", title=None, sort=["LV", "RV", "MYO"], axis=alt.Axis(labelAngle=0)),
            xOffset="version:N",
            y=alt.Y("flag_rate:Q", title="flag rate", axis=alt.Axis(format="%")),
            color=_colour(rates["version"]),
            tooltip=[
                "version:N",
                "structure:N",
                "scored:Q",
                "flagged:Q",
                alt.Tooltip("flag_rate:Q", format=".1%"),
            ],
        )
        .properties(height=_HEIGHT)
    )


def histogram_chart(histogram: pd.DataFrame, metric: str) -> alt.Chart:
    """Distribution of ``metric`` per structure: share of each version's files per bin, versions
    overlaid (rows of ``monitor.store.score_histogram`` for one metric or both).

    Shares are of the files with a defined value (bin -1, undefined, is left out). The open-ended last
    pHD bin is drawn one bin wide and labelled ``>= start`` in the tooltip.
    """
    frame = with_version(histogram[(histogram["metric"] == metric) & (histogram["bin"] >= 0)])
    totals = frame.groupby(["version", "structure"])["files"].transform("sum")
    width = (frame["bin_end"] - frame["bin_start"]).replace(float("inf"), float("nan"))
    step = float(width.dropna().max()) if width.notna().any() else 1.0
    finite_end = frame["bin_end"].where(frame["bin_end"] != float("inf"), frame["bin_start"] + step)
    frame = frame.assign(
        share=frame["files"] / totals.where(totals > 0),
        bin_right=finite_end,
        bin_label=[
            f">= {b:g}" if e == float("inf") else f"{b:g} to {e:g}"
            for b, e in zip(frame["bin_start"], frame["bin_end"], strict=True)
        ],
    )[["version", "structure", "bin", "bin_start", "bin_right", "bin_label", "files", "share"]]
    label = METRIC_TITLES[metric]
    return (
        alt.Chart(frame)
        .mark_bar(opacity=0.55, binSpacing=0)
        .encode(
            x=alt.X("bin_start:Q", title=label, bin="binned"),
            x2="bin_right:Q",
            y=alt.Y("share:Q", title="share of files", axis=alt.Axis(format="%"), stack=None),
            color=_colour(frame["version"], orient="top"),
            tooltip=[
                "version:N",
                "structure:N",
                alt.Tooltip("bin_label:N", title=label),
                "files:Q",
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .properties(height=_HEIGHT * 2 // 3, width=_PANEL_WIDTH)
        .facet(column=alt.Column("structure:N", title=None, sort=["LV", "RV", "MYO"]))
    )


def running_precision_chart(running: pd.DataFrame) -> alt.Chart:
    """Cumulative precision of each flag type over the scoring time of the reviewed files."""
    return (
        alt.Chart(running)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X(
                "scored_at:T",
                title="scored (UTC)",
                scale=alt.Scale(type="utc"),
                axis=alt.Axis(format="%d %b"),
            ),
            y=alt.Y("precision:Q", title="precision (confirmed / reviewed)", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("flag_type:N", title="flag type"),
            tooltip=["flag_type:N", "scored_at:T", "reviewed:Q", alt.Tooltip("precision:Q", format=".0%")],
        )
        .properties(height=_HEIGHT)
    )
