"""The "estimated vs realized" view's pure parts: per segmenter version and structure, how far the
calibrated estimates (eDSC, eHD) and the pseudo metrics (pDSC, pHD) are from the realized (real) Dice
and HD of the cases with ground truth, and the scatter charts of estimate against realized value.
"""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

from dashboard.summaries import with_version

__all__ = ["REALIZED_METRICS", "estimate_scatter", "realized_summary"]

#: realized column -> (estimate column, lower, upper, pseudo column, title).
REALIZED_METRICS = {
    "dsc": ("edsc", "edsc_lo", "edsc_hi", "pdsc", "Dice"),
    "hd_mm": ("ehd_mm", "ehd_mm_lo", "ehd_mm_hi", "phd_mm", "HD (mm)"),
}


def _r(a: pd.Series, b: pd.Series) -> float:
    keep = a.notna() & b.notna()
    if keep.sum() < 3 or a[keep].std() == 0 or b[keep].std() == 0:
        return math.nan
    return float(np.corrcoef(a[keep], b[keep])[0, 1])


def realized_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per version and structure: cases, mean estimate and mean realized value, r and MAE of the
    estimate and of the pseudo metric, and the share of realized values inside the 90 % interval.

    Args:
        frame: ``monitor.store.estimated_vs_realized`` rows.
    Returns: one row per (version, structure, metric); empty for an empty frame.
    """
    columns = [
        "version", "structure", "metric", "n", "mean_estimate", "mean_realized",
        "r_estimate", "mae_estimate", "coverage", "r_pseudo", "mae_pseudo",
    ]  # fmt: skip
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (version, structure), part in with_version(frame).groupby(["version", "structure"], sort=True):
        for real, (est, lo, hi, pseudo, title) in REALIZED_METRICS.items():
            known = part[part[real].notna() & part[est].notna()]
            inside = (known[real] >= known[lo]) & (known[real] <= known[hi])
            rows.append(
                {
                    "version": version,
                    "structure": structure,
                    "metric": title,
                    "n": len(known),
                    "mean_estimate": float(known[est].mean()) if len(known) else math.nan,
                    "mean_realized": float(known[real].mean()) if len(known) else math.nan,
                    "r_estimate": _r(known[est], known[real]),
                    "mae_estimate": float((known[est] - known[real]).abs().mean())
                    if len(known)
                    else math.nan,
                    "coverage": float(inside.mean()) if len(known) else math.nan,
                    "r_pseudo": _r(part[pseudo], part[real]),
                    "mae_pseudo": float((part[pseudo] - part[real]).abs().mean()),
                }
            )
    return pd.DataFrame(rows, columns=columns)


def estimate_scatter(frame: pd.DataFrame, real: str) -> alt.Chart:
    """Estimate (with its interval as a rule) against the realized value, one panel per structure;
    the diagonal is a perfect estimate."""
    est, lo, hi, _, title = REALIZED_METRICS[real]
    data = with_version(frame)[["version", "structure", "case_key", "phase", real, est, lo, hi]].dropna()
    top = float(max(data[real].max(), data[hi].max(), 1.0)) if not data.empty else 1.0
    base = alt.Chart(data).encode(
        x=alt.X(f"{real}:Q", title=f"realized {title}", scale=alt.Scale(domain=[0, top])),
        color=alt.Color("version:N", title="version"),
    )
    points = base.mark_circle(size=40).encode(
        y=alt.Y(f"{est}:Q", title=f"estimated {title}", scale=alt.Scale(domain=[0, top])),
        tooltip=["version", "case_key", "phase", real, est, lo, hi],
    )
    bars = base.mark_rule(opacity=0.3).encode(y=f"{lo}:Q", y2=f"{hi}:Q")
    diagonal = base.mark_line(color="grey", strokeDash=[4, 4]).encode(y=f"{real}:Q", color=alt.value("grey"))
    return (
        alt.layer(bars, points, diagonal)
        .properties(width=260, height=240)
        .facet(column=alt.Column("structure:N", title=None))
    )
