"""Clinical indices on the dashboard: pure transforms and Altair charts of the stored patient rows
(``monitor.store.patient_frame``) and of an evaluation's ``patients.csv`` (real errors, where ground
truth exists).

Units: EF in percent and its errors in percentage points, volumes in ml, mass in g.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from monitor.qc.clinical import VolumeIndices

__all__ = [
    "bland_altman_chart",
    "bland_altman_frame",
    "lvef_error_chart",
    "lvef_error_daily",
    "volume_table",
]

_HEIGHT = 260


def lvef_error_daily(patients: pd.DataFrame) -> pd.DataFrame:
    """Per segmenter version and UTC day: n, median and 90th percentile of the estimated |LVEF error|.

    Args:
        patients: ``patient_frame`` rows (complete cases with an estimate count; others are left out).
    Returns: columns ``version``, ``day``, ``n``, ``median``, ``p90`` (empty frame when nothing counts).
    """
    columns = ["version", "day", "n", "median", "p90"]
    if patients.empty:
        return pd.DataFrame(columns=columns)
    rows = patients[patients["complete"].astype(bool) & patients["est_error_lv_ef_pct"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.assign(
        version=rows["segmenter"] + " " + rows["segmenter_version"],
        day=pd.to_datetime(rows["updated_at"], utc=True).dt.floor("D"),
    )
    grouped = rows.groupby(["version", "day"])["est_error_lv_ef_pct"]
    out = pd.DataFrame(
        {"n": grouped.size(), "median": grouped.median(), "p90": grouped.quantile(0.9)}
    ).reset_index()
    return out[columns]


def lvef_error_chart(daily: pd.DataFrame, limit_pct: float) -> alt.LayerChart:
    """Daily median (line) and 90th percentile (dashed) of the estimated |LVEF error| per version, with
    the flag limit as a rule."""
    base = alt.Chart(daily).encode(
        x=alt.X("day:T", title="day (UTC)", scale=alt.Scale(type="utc")),
        color=alt.Color("version:N", title="segmenter"),
        tooltip=[
            "version",
            alt.Tooltip("day:T", format="%Y-%m-%d"),
            "n",
            alt.Tooltip("median:Q", format=".1f"),
            alt.Tooltip("p90:Q", format=".1f"),
        ],
    )
    median = base.mark_line(point=True).encode(y=alt.Y("median:Q", title="estimated |LVEF error| (points)"))
    p90 = base.mark_line(strokeDash=[4, 3], opacity=0.6).encode(y="p90:Q")
    rule = alt.Chart(pd.DataFrame({"limit": [limit_pct]})).mark_rule(color="red").encode(y="limit:Q")
    return alt.layer(median, p90, rule).properties(height=_HEIGHT)


def bland_altman_frame(patients: pd.DataFrame, index_column: str = "lv_ef_pct") -> pd.DataFrame:
    """Bland-Altman points of one index from an evaluation's ``patients.csv``.

    Args:
        patients: rows with ``segmenter``, ``<index_column>`` and ``gt_<index_column>`` (and the
            estimated error ``est_error_<index_column>`` when present).
        index_column: e.g. ``lv_ef_pct``, ``lv_edv_ml``.
    Returns: ``segmenter``, ``mean`` (of predicted and true), ``difference`` (predicted - true),
        ``estimated_error``; rows with a missing value dropped.
    Raises: ValueError when the columns are absent (not an evaluation's patients.csv).
    """
    needed = {"segmenter", index_column, f"gt_{index_column}"}
    if not needed <= set(patients.columns):
        raise ValueError(f"expected the columns {sorted(needed)} of an evaluation's patients.csv")
    pred = patients[index_column].astype(float)
    truth = patients[f"gt_{index_column}"].astype(float)
    estimate = patients.get(f"est_error_{index_column}", pd.Series(np.nan, index=patients.index)).astype(
        float
    )
    out = pd.DataFrame(
        {
            "segmenter": patients["segmenter"].astype(str),
            "mean": (pred + truth) / 2,
            "difference": pred - truth,
            "estimated_error": estimate,
        }
    )
    return out[np.isfinite(out["mean"]) & np.isfinite(out["difference"])].reset_index(drop=True)


def bland_altman_chart(points: pd.DataFrame, unit: str) -> alt.LayerChart:
    """Difference against mean, coloured by segmenter, with the bias and the 95 % limits of agreement."""
    diff = points["difference"].to_numpy(float)
    bias = float(np.mean(diff)) if diff.size else 0.0
    spread = 1.96 * float(np.std(diff)) if diff.size else 0.0
    dots = (
        alt.Chart(points)
        .mark_circle(size=30, opacity=0.7)
        .encode(
            x=alt.X("mean:Q", title=f"mean of predicted and true ({unit})"),
            y=alt.Y("difference:Q", title=f"predicted - true ({unit})"),
            color=alt.Color("segmenter:N"),
            tooltip=[
                "segmenter",
                alt.Tooltip("difference:Q", format=".1f"),
                alt.Tooltip("estimated_error:Q", format=".1f", title="estimated |error|"),
            ],
        )
    )
    lines = pd.DataFrame(
        {"y": [bias, bias - spread, bias + spread], "what": ["bias", "-1.96 SD", "+1.96 SD"]}
    )
    rules = alt.Chart(lines).mark_rule(color="grey", strokeDash=[4, 3]).encode(y="y:Q", tooltip=["what"])
    return alt.layer(dots, rules).properties(height=_HEIGHT)


def volume_table(indices: VolumeIndices) -> pd.DataFrame:
    """A file's volumes (ml) and LV mass (g): one row per quantity, mask beside pGT."""
    rows = [
        ("LV cavity (ml)", indices.lv_volume_ml, indices.pgt_lv_volume_ml),
        ("RV cavity (ml)", indices.rv_volume_ml, indices.pgt_rv_volume_ml),
        ("myocardium (ml)", indices.myo_volume_ml, indices.pgt_myo_volume_ml),
        ("LV mass (g)", indices.lv_mass_g, indices.pgt_lv_mass_g),
    ]
    frame = pd.DataFrame(rows, columns=["quantity", "mask", "pgt"])
    return frame.assign(difference=frame["mask"] - frame["pgt"])
