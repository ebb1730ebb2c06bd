"""Alerts: flagged masks, unreviewed first, then most severe, then most recent; select a row to open it.
The P(fail) column (the failure model's highest probability among the file's structures) and the lowest
eDSC (the calibrated estimate of the real Dice) sort the page.

Filters: flag level, structure, review state here; date range and segmenter version in the sidebar.
The case opens on the Case page with its file id (never a patient identifier) as query parameter.
"""

from __future__ import annotations

import math

import streamlit as st

from dashboard import data
from dashboard.context import current
from dashboard.queries import alerts_table
from dashboard.summaries import md_escape, utc_text
from monitor.qc.labels import STRUCTURES

PAGE_SIZE = 50
#: Column order on the page: what was flagged and why first, so that the reasons fit a laptop screen.
_SHOWN = ["file_id", "flag", "structures", "p_failure_pct", "edsc_min", "reasons", "review", "scored_at"]
_SHOWN += ["segmenter", "case", "phase", "site", "reviews"]
_REVIEWED = {"Unreviewed": False, "Reviewed": True, "All": None}

ctx = current()
f = ctx.filters
st.title("Alerts")
c1, c2, c3 = st.columns([2, 1, 1])
levels = c1.multiselect(
    "Flag level", ["erroneous", "suspicious"], default=["erroneous", "suspicious"], key="alerts_levels"
)
structure = c2.selectbox("Structure", ["Any", *(str(s) for s in STRUCTURES)], key="alerts_structure")
review_state = c3.selectbox("Review", list(_REVIEWED), index=2, key="alerts_reviewed")
if not levels:
    st.info("Choose at least one flag level.")
    st.stop()

files = f.files(
    levels=tuple(levels),
    structure=None if structure == "Any" else structure,
    reviewed=_REVIEWED[review_state],
)
total = data.alert_count(ctx.url, files)
pages = max(1, math.ceil(total / PAGE_SIZE))
top = st.columns([3, 1])
top[0].markdown(
    f"**{total:,} alerts** scored {utc_text(f.start)} to {utc_text(f.end)} UTC"
    + (md_escape(f" for {f.segmenter_name} {f.segmenter_version}") if f.segmenter_name else "")
)
page = int(top[1].number_input("Page", min_value=1, max_value=pages, value=1, step=1, key="alerts_page"))
page = min(page, pages)
found = data.alerts(ctx.url, files, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
if not found:
    st.success("No alerts match these filters.")
    st.stop()

table = alerts_table(found)
st.caption(f"Page {page} of {pages}. Select a row to open the case.")
event = st.dataframe(
    table,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="alerts_table",
    column_order=_SHOWN,
    column_config={
        "file_id": st.column_config.NumberColumn("file", format="%d", width="small"),
        "flag": st.column_config.TextColumn("flag", width="small"),
        "structures": st.column_config.TextColumn("structures", width="small"),
        "p_failure_pct": st.column_config.NumberColumn(
            "P(fail)",
            format="%.0f %%",
            width="small",
            help="the highest P(real Dice < 0.5 or real HD > 50 mm) of its structures (the failure model)",
        ),
        "edsc_min": st.column_config.NumberColumn(
            "lowest eDSC",
            format="%.2f",
            width="small",
            help="the lowest calibrated estimate of the real Dice among its structures; none without a calibration",
        ),
        "reasons": st.column_config.TextColumn("reasons", width="large"),
        "phase": st.column_config.TextColumn("phase", width="small"),
        "reviews": st.column_config.NumberColumn("reviews", format="%d", width="small"),
    },
)
rows = event.selection.rows if event is not None else []
if rows:
    st.switch_page("views/case.py", query_params={"file_id": str(int(table.iloc[rows[0]]["file_id"]))})
