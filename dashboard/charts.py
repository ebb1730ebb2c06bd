"""Altair (Vega-Lite) charts of the dashboard; pure functions of the store's DataFrames.

Times are drawn on a UTC scale. Segmenter versions are coloured consistently by their ``"name version"``
label; a dashed rule with a label marks where a version first appears in the range.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from dashboard.summaries import version_label

__all__ = [
    "METRIC_TITLES",
    "band_chart",
    "daily_median_boxplot",
    "flag_rate_bars",
    "rate_chart",
    "running_precision_chart",
    "scored_chart",
    "with_version",
]

#: Axis titles of the metrics.
METRIC_TITLES = {"pdsc": "pDSC", "phd_mm": "pHD (mm)"}
_HEIGHT = 240


def with_version(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``version`` column (``"name version"``) built from segmenter name and version."""
    labels = [
        version_label(n, v) for n, v in zip(frame["segmenter_name"], frame["segmenter_version"], strict=True)
    ]
    return frame.assign(version=labels)


def _colour(versions: Sequence[str], *, legend: bool = True) -> alt.Color:
    return alt.Color(
        "version:N",
        title="segmenter",
        scale=alt.Scale(domain=sorted(set(versions))),
        legend=alt.Legend(orient="right") if legend else None,
    )


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


def scored_chart(volume: pd.DataFrame, starts: pd.DataFrame, bucket: str) -> alt.LayerChart:
    """Masks scored per bucket, stacked by segmenter version, with version markers."""
    frame = with_version(volume)
    bars = (
        alt.Chart(frame)
        .mark_bar(width=alt.RelativeBandSize(0.85))
        .encode(
            x=_time_axis(bucket),
            y=alt.Y("sum(scored):Q", title="masks scored"),
            color=_colour(frame["version"]),
            tooltip=["bucket_start:T", "version:N", "scored:Q", "flagged:Q", "rejected:Q"],
        )
    )
    return alt.layer(bars, *_markers(starts)).properties(height=_HEIGHT)


def rate_chart(structure: pd.DataFrame, starts: pd.DataFrame, bucket: str) -> alt.LayerChart:
    """Flag rate of one structure per bucket and version (rows of ``structure_time_series``); no legend
    (the colours are those of ``scored_chart``)."""
    frame = with_version(structure)
    lines = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(size=14))
        .encode(
            x=_time_axis(bucket),
            y=alt.Y(
                "flag_rate:Q", title="flag rate", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
            ),
            color=_colour(frame["version"], legend=False),
            tooltip=[
                "bucket_start:T",
                "version:N",
                "scored:Q",
                "flagged:Q",
                alt.Tooltip("flag_rate:Q", format=".1%"),
            ],
        )
    )
    return alt.layer(lines, *_markers(starts)).properties(height=_HEIGHT)


def band_chart(structure: pd.DataFrame, starts: pd.DataFrame, bucket: str, metric: str) -> alt.LayerChart:
    """Median of ``metric`` (``pdsc`` or ``phd_mm``) with its inter-quartile band, per version; no legend."""
    frame = with_version(structure)
    frame = frame[frame[f"{metric}_n"] > 0]
    label = METRIC_TITLES[metric]
    base = alt.Chart(frame).encode(x=_time_axis(bucket), color=_colour(frame["version"], legend=False))
    scale = alt.Scale(zero=False)
    band = base.mark_area(opacity=0.25).encode(
        y=alt.Y(f"{metric}_p25:Q", title=label, scale=scale), y2=f"{metric}_p75:Q"
    )
    line = base.mark_line().encode(
        y=alt.Y(f"{metric}_median:Q", title=label, scale=scale),
        tooltip=[
            "bucket_start:T",
            "version:N",
            alt.Tooltip(f"{metric}_median:Q", format=".3g", title="median"),
            alt.Tooltip(f"{metric}_p25:Q", format=".3g", title="p25"),
            alt.Tooltip(f"{metric}_p75:Q", format=".3g", title="p75"),
            alt.Tooltip(f"{metric}_n:Q", title="n"),
        ],
    )
    return alt.layer(band, line, *_markers(starts)).properties(height=_HEIGHT)


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


def daily_median_boxplot(structure: pd.DataFrame, metric: str) -> alt.Chart:
    """Box plots of the daily medians of ``metric`` per structure and version (one point per day)."""
    frame = with_version(structure)
    frame = frame[frame[f"{metric}_n"] > 0]
    return (
        alt.Chart(frame)
        .mark_boxplot(extent="min-max")
        .encode(
            x=alt.X("structure:N", title=None, sort=["LV", "RV", "MYO"], axis=alt.Axis(labelAngle=0)),
            xOffset="version:N",
            y=alt.Y(
                f"{metric}_median:Q",
                title=f"daily median {METRIC_TITLES[metric]}",
                scale=alt.Scale(zero=False),
            ),
            color=_colour(frame["version"]),
        )
        .properties(height=_HEIGHT)
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
