"""Estimated vs realized: per segmenter version, the calibrated eDSC/eHD beside the real Dice/HD of the
cases that have ground truth (written by ``cmr-monitor calibrate``/``evaluate --db`` or the demo).

A calibration that drifts from a site's reality shows here first: the estimates' error and interval
coverage per version and structure, next to the pseudo metrics' (pDSC, pHD), and a scatter of
estimate against realized value with each estimate's 90 % interval.
"""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.context import current
from dashboard.realized import estimate_scatter, realized_summary
from dashboard.summaries import utc_text, with_version
from monitor.store import FileFilter

ctx = current()
f = ctx.filters
st.title("Estimated vs realized")
st.caption(
    f"Scored {utc_text(f.start)} to {utc_text(f.end)} UTC; only files with realized (ground-truth) metrics."
)
frame = data.realized(ctx.url, FileFilter(start=f.start, end=f.end))
if frame.empty:
    st.info(
        "No scored file in this range has realized metrics. `cmr-monitor calibrate --db URL` and "
        "`cmr-monitor evaluate --db URL` record the real Dice and HD of the labelled cases they find in "
        "the database."
    )
    st.stop()
labels = sorted(set(with_version(frame)["version"]))
chosen = st.multiselect("Segmenter versions", labels, default=labels, key="realized_versions")
picked = with_version(frame)
picked = picked[picked["version"].isin(chosen)].drop(columns=["version"])
summary = realized_summary(picked)
st.subheader("Estimates against realized values")
st.dataframe(
    summary,
    hide_index=True,
    column_config={"coverage": st.column_config.NumberColumn("90 % interval coverage", format="percent")},
)
for real, title in (("dsc", "Dice"), ("hd_mm", "Hausdorff distance")):
    st.subheader(f"{title}: estimate vs realized")
    st.altair_chart(estimate_scatter(picked, real))
with st.expander("Rows"):
    st.dataframe(picked, hide_index=True)
