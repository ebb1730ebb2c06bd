"""Pure pandas transforms behind the dashboard's tables and charts (no Streamlit, no database).

Inputs are the DataFrames of ``monitor.store`` (``volume_time_series``, ``structure_time_series``,
``score_histogram``) and the frame of reviewed alerts built by ``dashboard.queries.reviewed_alerts_frame``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

import pandas as pd

from monitor.qc.labels import STRUCTURES
from monitor.qc.reasons import reason_title

__all__ = [
    "FLAG_TYPE_COLUMNS",
    "PRECISION_COLUMNS",
    "VERSION_SUMMARY_COLUMNS",
    "flag_type",
    "flag_type_precision",
    "histogram_flag_rates",
    "interval_text",
    "md_escape",
    "percent",
    "percent_text",
    "running_precision",
    "site_summary",
    "structure_flag_rates",
    "utc_text",
    "version_label",
    "version_starts",
    "version_summary",
    "with_version",
]

#: Columns of ``version_summary``.
VERSION_SUMMARY_COLUMNS = [
    "version",
    "first_scored",
    "last_scored",
    "scored",
    "ok",
    "suspicious",
    "erroneous",
    "flag_rate",
    "rejected",
]
#: Columns of the frame ``flag_type_precision`` and ``running_precision`` read (one row per reviewed
#: file and flag type).
FLAG_TYPE_COLUMNS = ["file_id", "version", "scored_at", "flag_type", "verdict"]
#: Columns of ``flag_type_precision``.
PRECISION_COLUMNS = ["flag_type", "reviewed", "confirmed", "false_alarm", "unsure", "precision"]


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md_escape(text: str) -> str:
    """``text`` with Markdown (and Streamlit's ``:directive[...]``) syntax escaped, for names that come from
    file names or sidecars (case keys, segmenter names) shown in Markdown elements."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def version_label(name: str, version: str) -> str:
    """How a segmenter version is shown: ``"name version"``."""
    return f"{name} {version}"


def with_version(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``version`` column (``"name version"``) built from segmenter name and version."""
    labels = [
        version_label(n, v) for n, v in zip(frame["segmenter_name"], frame["segmenter_version"], strict=True)
    ]
    return frame.assign(version=labels)


def version_summary(volume: pd.DataFrame) -> pd.DataFrame:
    """Totals per segmenter version over the rows of ``volume_time_series``.

    Returns: columns ``VERSION_SUMMARY_COLUMNS``; ``flag_rate`` is flagged / scored (nan without scores),
        ``first_scored`` / ``last_scored`` the first and last bucket with a scored file; sorted by
        ``first_scored``.
    """
    if volume.empty:
        return pd.DataFrame(columns=VERSION_SUMMARY_COLUMNS)
    frame = with_version(volume)
    scored_rows = frame[frame["scored"] > 0]
    sums = frame.groupby("version")[["scored", "ok", "suspicious", "erroneous", "rejected"]].sum()
    sums["flag_rate"] = (sums["suspicious"] + sums["erroneous"]) / sums["scored"].where(sums["scored"] > 0)
    sums["first_scored"] = scored_rows.groupby("version")["bucket_start"].min()
    sums["last_scored"] = scored_rows.groupby("version")["bucket_start"].max()
    out = sums.reset_index().sort_values(["first_scored", "version"], na_position="last", ignore_index=True)
    return out.reindex(columns=VERSION_SUMMARY_COLUMNS)


def site_summary(volume: pd.DataFrame) -> pd.DataFrame:
    """Totals per site over the rows of ``volume_time_series(group_by=("site",))``.

    Returns: columns ``site`` (``"(no site)"`` for files without one), ``scored``, ``ok``, ``suspicious``,
        ``erroneous``, ``flag_rate`` (nan without scores), ``rejected``; most scored first.
    """
    columns = ["site", "scored", "ok", "suspicious", "erroneous", "flag_rate", "rejected"]
    if volume.empty:
        return pd.DataFrame(columns=columns)
    frame = volume.assign(site=[s if isinstance(s, str) and s else "(no site)" for s in volume["site"]])
    sums = frame.groupby("site")[["scored", "ok", "suspicious", "erroneous", "rejected"]].sum()
    sums["flag_rate"] = (sums["suspicious"] + sums["erroneous"]) / sums["scored"].where(sums["scored"] > 0)
    out = sums.reset_index().sort_values(["scored", "site"], ascending=[False, True], ignore_index=True)
    return out.reindex(columns=columns)


def version_starts(volume: pd.DataFrame) -> pd.DataFrame:
    """Where a segmenter version first appears inside the shown range (for chart markers).

    A version whose first scored bucket is the first bucket of the range was already running, so it gets
    no marker.

    Returns: columns ``version``, ``bucket_start``, ``label`` (``"name version"``, ``"new: ..."`` text).
    """
    columns = ["version", "bucket_start", "label"]
    scored = volume[volume["scored"] > 0] if not volume.empty else volume
    if scored.empty:
        return pd.DataFrame(columns=columns)
    first = with_version(scored).groupby("version")["bucket_start"].min().reset_index()
    first = first[first["bucket_start"] > scored["bucket_start"].min()]
    first["label"] = "new: " + first["version"]
    return first.sort_values("bucket_start", ignore_index=True).reindex(columns=columns)


def structure_flag_rates(structure: pd.DataFrame) -> pd.DataFrame:
    """Flag rate per segmenter version and structure over the rows of ``structure_time_series``.

    Returns: columns ``version``, ``structure``, ``scored``, ``flagged``, ``flag_rate``; structures in
        LV, RV, MYO order.
    """
    columns = ["version", "structure", "scored", "flagged", "flag_rate"]
    if structure.empty:
        return pd.DataFrame(columns=columns)
    frame = with_version(structure)
    sums = frame.groupby(["version", "structure"])[["scored", "flagged"]].sum().reset_index()
    sums["flag_rate"] = sums["flagged"] / sums["scored"].where(sums["scored"] > 0)
    rank = {str(s): i for i, s in enumerate(STRUCTURES)}
    sums["_rank"] = sums["structure"].map(rank)
    return sums.sort_values(["version", "_rank"], ignore_index=True).reindex(columns=columns)


def histogram_flag_rates(histogram: pd.DataFrame) -> pd.DataFrame:
    """Flag rate per segmenter version and structure from ``monitor.store.score_histogram``: its pDSC
    bins, the undefined bin (-1) included, add up to every scored file of the range.

    Returns: as ``structure_flag_rates``.
    """
    pdsc = histogram[histogram["metric"] == "pdsc"].rename(columns={"files": "scored"})
    return structure_flag_rates(pdsc)


def flag_type(structure: str, code: str) -> str:
    """The flag type of one reason code of one structure: ``"LV missing"``, ``"RV pHD high"``, ...

    Returns: ``"<structure> <title of the code>"`` (``monitor.qc.reasons``); an unknown code (written by a
        newer version) is its own title.
    """
    return f"{structure} {reason_title(code)}"


def flag_type_precision(reviewed: pd.DataFrame, *, by_version: bool = False) -> pd.DataFrame:
    """Precision of each flag type from the reviews: confirmed / reviewed files.

    Args:
        reviewed: one row per reviewed file and flag type (``FLAG_TYPE_COLUMNS``), verdict the latest.
        by_version: one row per version and flag type (column ``version`` first).
    Returns: columns ``PRECISION_COLUMNS`` (``version`` first when ``by_version``); ``reviewed`` counts
        every verdict, unsure included; sorted by reviewed files, most first.
    """
    keys = ["version", "flag_type"] if by_version else ["flag_type"]
    columns = [*keys, *PRECISION_COLUMNS[1:]]
    if reviewed.empty:
        return pd.DataFrame(columns=columns)
    counts = (
        reviewed.groupby([*keys, "verdict"])
        .size()
        .unstack("verdict", fill_value=0)
        .reindex(columns=["confirmed", "false_alarm", "unsure"], fill_value=0)
    )
    counts["reviewed"] = counts.sum(axis=1)
    counts["precision"] = counts["confirmed"] / counts["reviewed"]
    out = counts.reset_index()
    out = out.sort_values(["reviewed", *keys], ascending=[False, *([True] * len(keys))], ignore_index=True)
    return out.reindex(columns=columns)


def running_precision(reviewed: pd.DataFrame, *, top: int = 6) -> pd.DataFrame:
    """Cumulative precision of the ``top`` most reviewed flag types, files in order of scoring time.

    Returns: columns ``flag_type``, ``scored_at``, ``reviewed`` (cumulative), ``precision``
        (cumulative confirmed / cumulative reviewed).
    """
    columns = ["flag_type", "scored_at", "reviewed", "precision"]
    if reviewed.empty:
        return pd.DataFrame(columns=columns)
    keep = reviewed["flag_type"].value_counts().head(top).index
    frame = reviewed[reviewed["flag_type"].isin(keep)].sort_values(["flag_type", "scored_at", "file_id"])
    grouped = frame.groupby("flag_type")
    out = frame.assign(
        reviewed=grouped.cumcount() + 1,
        confirmed=(frame["verdict"] == "confirmed").astype(int).groupby(frame["flag_type"]).cumsum(),
    )
    out["precision"] = out["confirmed"] / out["reviewed"]
    return out.reindex(columns=columns).reset_index(drop=True)


def utc_text(value: datetime | pd.Timestamp | None) -> str:
    """``YYYY-MM-DD HH:MM`` in UTC (naive values are taken as UTC), or an empty string for None / NaT."""
    if value is None or pd.isna(value):
        return ""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M")


def percent(p: float | None) -> float:
    """A probability (0-1) in percent (0-100), for tables a reviewer sorts; nan when None or nan."""
    return math.nan if p is None or math.isnan(p) else 100.0 * float(p)


def percent_text(p: float | None) -> str:
    """A probability (0-1) as ``"83 %"`` (whole percents), or an empty string when None or nan."""
    value = percent(p)
    return "" if math.isnan(value) else f"{value:.0f} %"


def interval_text(value: float, lo: float, hi: float, *, digits: int = 2, unit: str = "") -> str:
    """An estimate with its interval, ``"0.83 (0.71-0.90)"``, or with a unit ``"12.4 mm (7.9-21.0)"``
    (``digits`` decimals); ``"–"`` when the estimate is nan (no calibration, or the structure missing)."""
    if math.isnan(value):
        return "–"
    text = f"{value:.{digits}f}" + (f" {unit}" if unit else "")
    return text if math.isnan(lo) or math.isnan(hi) else f"{text} ({lo:.{digits}f}-{hi:.{digits}f})"
