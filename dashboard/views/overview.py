"""Overview: masks scored, flag rate per structure, pDSC and pHD medians with inter-quartile bands over time.

Split by segmenter version (default) or by site, with a marker where a new segmenter version appears;
charts first, tables second.
"""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data
from dashboard.context import current
from dashboard.summaries import md_escape, site_summary, utc_text, version_starts, version_summary

_SPLITS = {"Segmenter version": "segmenter", "Site": "site"}

ctx = current()
f = ctx.filters
st.title("Overview")
st.caption(
    f"Scored {utc_text(f.start)} to {utc_text(f.end)} UTC, per {f.bucket}"
    + (
        md_escape(f", {f.segmenter_name} {f.segmenter_version}")
        if f.segmenter_name
        else ", all segmenter versions"
    )
)
split_label = st.radio("Split by", list(_SPLITS), horizontal=True, key="overview_split")
split = _SPLITS.get(split_label or "", "segmenter")
files = f.files()
volume = data.volume_series(ctx.url, f.bucket, files)
by_split = volume if split == "segmenter" else data.volume_series(ctx.url, f.bucket, files, group_by=(split,))
structure = data.structure_series(ctx.url, f.bucket, files, group_by=(split,))

scored = int(volume["scored"].sum())
flagged = int(volume["flagged"].sum())
erroneous = int(volume["erroneous"].sum())
rejected = int(volume["rejected"].sum())
waiting = ctx.counts.by_status.get("pending", 0) + ctx.counts.by_status.get("scoring", 0)
cols = st.columns(5)
cols[0].metric("Masks scored", f"{scored:,}")
cols[1].metric("Flagged", f"{flagged:,}", help="suspicious or erroneous")
cols[2].metric("Flag rate", f"{flagged / scored:.1%}" if scored else "–")
cols[3].metric("Erroneous", f"{erroneous:,}")
cols[4].metric("Rejected", f"{rejected:,}", help="files refused as unreadable or invalid, in this range")
st.caption(
    f"Queue now: {waiting:,} waiting or being scored. Last score: {utc_text(ctx.counts.last_scored_at) or 'never'} UTC."
)

if scored == 0 and rejected == 0:
    st.info("Nothing was scored in this range. Widen the date range in the sidebar.")
    st.stop()

starts = version_starts(volume)
per = "segmenter version" if split == "segmenter" else "site"
st.subheader(f"Masks scored per {f.bucket}, by {per}")
st.altair_chart(charts.scored_chart(by_split, starts, f.bucket, split), width="stretch")

st.subheader("Flag rate per structure")
st.altair_chart(charts.rate_chart(structure, starts, f.bucket, split))

for metric, title in (("pdsc", "pDSC"), ("phd_mm", "pHD (mm)")):
    st.subheader(f"{title}: median and inter-quartile range")
    st.altair_chart(charts.band_chart(structure, starts, f.bucket, metric, split))

st.subheader("Per segmenter version")
summary = version_summary(volume)
st.dataframe(
    summary,
    hide_index=True,
    column_config={
        "flag_rate": st.column_config.NumberColumn("flag rate", format="percent"),
        "first_scored": st.column_config.DatetimeColumn(
            "first bucket", format="YYYY-MM-DD HH:mm", timezone="UTC"
        ),
        "last_scored": st.column_config.DatetimeColumn(
            "last bucket", format="YYYY-MM-DD HH:mm", timezone="UTC"
        ),
    },
)
if not starts.empty:
    st.caption(
        "New in this range: "
        + ", ".join(f"{md_escape(r.version)} from {utc_text(r.bucket_start)}" for r in starts.itertuples())
    )
if split == "site":
    st.subheader("Per site")
    st.dataframe(
        site_summary(by_split),
        hide_index=True,
        column_config={"flag_rate": st.column_config.NumberColumn("flag rate", format="percent")},
    )
with st.expander("Time series tables"):
    st.dataframe(by_split, hide_index=True)
    st.dataframe(structure, hide_index=True)
