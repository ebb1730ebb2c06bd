"""Segmenter versions side by side: flag rates, exact score distributions, and each flag type's precision.

The distributions are histograms of the per-file pDSC and pHD of the range (``monitor.store``'s
``score_histogram``: fixed bins, counted in SQL), as shares of each version's files.

Precision is confirmed / reviewed files per flag type (latest verdict of each file; ``unsure`` counts as
reviewed), from the reviews entered on the Case page. The date range comes from the sidebar.
"""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data
from dashboard.context import current
from dashboard.summaries import (
    flag_type_precision,
    histogram_flag_rates,
    md_escape,
    running_precision,
    utc_text,
    version_summary,
    with_version,
)
from monitor.store import FileFilter
from monitor.store.series import PDSC_BINS, PHD_BIN_MM, PHD_BINS

ctx = current()
f = ctx.filters
st.title("Segmenter versions")
st.caption(f"Scored {utc_text(f.start)} to {utc_text(f.end)} UTC.")
all_versions = FileFilter(start=f.start, end=f.end)
volume = data.volume_series(ctx.url, "day", all_versions)
histogram = data.histogram(ctx.url, all_versions)
summary = version_summary(volume)
labels = list(summary["version"]) if not summary.empty else []
if not labels:
    st.info("Nothing was scored in this range. Widen the date range in the sidebar.")
    st.stop()

c1, c2 = st.columns(2)
baseline = c1.selectbox("Baseline", labels, index=max(len(labels) - 2, 0), key="versions_baseline")
candidate = c2.selectbox("Candidate", labels, index=len(labels) - 1, key="versions_candidate")
chosen = list(dict.fromkeys([baseline, candidate]))

for column, label in zip(st.columns(len(chosen)), chosen, strict=True):
    row = summary[summary["version"] == label].iloc[0]
    with column:
        st.markdown(f"**{md_escape(label)}**")
        m = st.columns(3)
        m[0].metric("Scored", f"{int(row['scored']):,}")
        m[1].metric("Flag rate", f"{row['flag_rate']:.1%}" if row["scored"] else "–")
        m[2].metric("Erroneous", f"{int(row['erroneous']):,}")
        st.caption(
            f"First scored {utc_text(row['first_scored'])}, last {utc_text(row['last_scored'])} (day buckets, UTC)"
        )

versioned = with_version(histogram)
picked = versioned[versioned["version"].isin(chosen)]
st.subheader("Flag rate per structure")
rates = histogram_flag_rates(picked)
st.altair_chart(charts.flag_rate_bars(rates), width="stretch")

st.subheader("Score distributions")
st.caption(
    f"Share of each version's files per bin of pDSC ({1 / PDSC_BINS:g} wide) and pHD ({PHD_BIN_MM:g} mm "
    f"wide; the last bin holds everything from {PHD_BIN_MM * PHD_BINS:g} mm), over every scored file of "
    "the range. Undefined values (empty structures) are left out; the histogram table counts them in bin -1."
)
for metric in ("pdsc", "phd_mm"):
    st.altair_chart(charts.histogram_chart(picked, metric))

st.subheader("Flag precision from reviews")
reviewed = data.reviewed_alerts(ctx.url, all_versions)
if reviewed.empty:
    st.info("No flagged file in this range has been reviewed yet.")
else:
    overall = flag_type_precision(reviewed)
    st.altair_chart(charts.running_precision_chart(running_precision(reviewed)), width="stretch")
    percent = st.column_config.NumberColumn("precision", format="percent")
    st.markdown("**All versions**")
    st.dataframe(overall, hide_index=True, column_config={"precision": percent})
    per_version = flag_type_precision(reviewed[reviewed["version"].isin(chosen)], by_version=True)
    st.markdown("**Chosen versions**")
    st.dataframe(per_version, hide_index=True, column_config={"precision": percent})

st.subheader("Tables")
st.dataframe(
    summary[summary["version"].isin(chosen)],
    hide_index=True,
    column_config={
        "flag_rate": st.column_config.NumberColumn("flag rate", format="percent"),
        "first_scored": st.column_config.DatetimeColumn("first day", format="YYYY-MM-DD", timezone="UTC"),
        "last_scored": st.column_config.DatetimeColumn("last day", format="YYYY-MM-DD", timezone="UTC"),
    },
)
st.dataframe(
    rates,
    hide_index=True,
    column_config={"flag_rate": st.column_config.NumberColumn("flag rate", format="percent")},
)
with st.expander("Histogram table"):
    st.dataframe(picked.drop(columns=["version"]), hide_index=True)
