"""Clinical indices per patient (ED + ES): the estimated |LVEF error| per segmenter version over time,
the flagged patients, and Bland-Altman plots where ground truth exists (an evaluation's patients.csv).

Rows come from ``patient_indices`` (``monitor.store.patient_frame``), updated when a case's second frame
is scored; the date range of the sidebar applies to their update time.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.clinical import bland_altman_chart, bland_altman_frame, lvef_error_chart, lvef_error_daily
from dashboard.context import current
from dashboard.summaries import utc_text

ctx = current()
f = ctx.filters
limit = ctx.settings.lvef_error_limit_pct
st.title("Clinical indices")
st.caption(
    f"Patients (ED + ES of a case) updated {utc_text(f.start)} to {utc_text(f.end)} UTC. EF in %, its errors "
    f"in percentage points; a patient is suspicious when its estimated |LVEF error| interval lies above "
    f"{limit:g} points or an index is impossible."
)
patients = data.patients(ctx.url, f.start, f.end)
if patients.empty:
    st.info("No patient has a scored ED or ES frame in this range.")
else:
    complete = patients[patients["complete"].astype(bool)]
    m = st.columns(4)
    m[0].metric("Patients", f"{len(patients):,}")
    m[1].metric("Waiting for a frame", f"{len(patients) - len(complete):,}")
    m[2].metric("Suspicious", f"{int((complete['flag'] == 'suspicious').sum()):,}")
    median = complete["est_error_lv_ef_pct"].median()
    m[3].metric("Median est. |LVEF error|", "–" if pd.isna(median) else f"{median:.1f} pts")

    st.subheader("Estimated |LVEF error| per segmenter version")
    daily = lvef_error_daily(patients)
    if daily.empty:
        st.info("No estimates in this range (no complete patient, or no clinical calibration loaded).")
    else:
        st.altair_chart(lvef_error_chart(daily, limit), width="stretch")
        st.caption("Line: daily median; dashed: 90th percentile; red: the flag limit.")

    st.subheader("Suspicious patients")
    flagged = complete[complete["flag"] == "suspicious"]
    columns = [
        "segmenter",
        "segmenter_version",
        "case_key",
        "lv_edv_ml",
        "lv_esv_ml",
        "lv_ef_pct",
        "est_error_lv_ef_pct",
        "est_error_lv_ef_pct_lo",
        "est_error_lv_ef_pct_hi",
        "rv_ef_pct",
        "lv_mass_g",
        "reasons",
        "updated_at",
    ]
    st.dataframe(flagged[columns], hide_index=True)

st.subheader("Against ground truth (Bland-Altman)")
st.caption("Upload the patients.csv written by `cmr-monitor evaluate` (cases with ground truth).")
upload = st.file_uploader("patients.csv", type=["csv"], key="clinical_patients_csv")
if upload is not None:
    truth = pd.read_csv(upload)
    choices = {
        "LVEF (%)": ("lv_ef_pct", "points"),
        "LV EDV (ml)": ("lv_edv_ml", "ml"),
        "LV mass (g)": ("lv_mass_g", "g"),
    }
    label = st.selectbox("Index", list(choices), key="clinical_ba_index")
    column, unit = choices[label]
    try:
        points = bland_altman_frame(truth, column)
    except ValueError as exc:
        st.error(str(exc))
    else:
        st.altair_chart(bland_altman_chart(points, unit), width="stretch")
