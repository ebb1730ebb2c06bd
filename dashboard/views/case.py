"""Case: one scored mask with its pseudo ground truth and inconsistency map, scores, flags, the evidence
behind each reason (a button per reason jumps the slice viewer to the slice it implicates) and reviews.

The file id comes from the ``file_id`` query parameter (ids only, never patient identifiers, in URLs).
Files are read only when their path resolves inside the configured folders.
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from dashboard import data
from dashboard.clinical import volume_table
from dashboard.context import current
from dashboard.evidence import calibration_status, evidence_table, image_status, reason_items
from dashboard.queries import case_scores_table, reviews_table
from dashboard.summaries import md_escape, percent_text, utc_text
from dashboard.viewer import busiest_slice, image_candidates, render_slice, resolve_inside
from monitor.errors import InvalidMask
from monitor.store import ARTIFACT_INCONSISTENCY, ARTIFACT_PGT, CaseRecord, FileStateError, ReviewVerdict

_VERDICTS = {
    ReviewVerdict.CONFIRMED: "Confirmed error",
    ReviewVerdict.FALSE_ALARM: "False alarm",
    ReviewVerdict.UNSURE: "Unsure",
}
_FLAG_ICON = {
    "ok": ":material/check_circle:",
    "suspicious": ":material/warning:",
    "erroneous": ":material/error:",
}


def _status_line(record: CaseRecord) -> str:
    """``File 12, scored 2026-03-01 10:00 UTC.``; what happened and when, for every status."""
    when = {
        "scored": ("scored", record.scored_at),
        "rejected": ("rejected", record.rejected_at),
        "scoring": ("being scored since", record.started_at),
        "pending": ("waiting since", record.received_at),
    }
    verb, at = when.get(str(record.status), (str(record.status), None))
    return (
        f"File {record.file_id}, {verb} {utc_text(at) + ' UTC' if at is not None else '(time not recorded)'}."
    )


ctx = current()
st.title("Case")
raw = st.query_params.get("file_id", "")
known = (
    int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 and int(raw) > 0 else None
)  # 64-bit ids
entered = st.number_input(
    "File id", min_value=1, value=known, step=1, placeholder="file id", key=f"case_file_id_{known}"
)
if entered is not None and int(entered) != known:
    file_id = int(entered)
    st.query_params["file_id"] = str(file_id)
elif known is not None:
    file_id = known
else:
    st.info("Open a case from the Alerts page, or enter its file id.")
    st.stop()

record = data.case(ctx.url, file_id)
if record is None:
    st.warning(f"No file with id {file_id}.")
    st.stop()

flag = str(record.flag) if record.flag is not None else str(record.status)
st.subheader(md_escape(f"{record.case_key} {record.phase or ''}") + f" · {flag}")
meta = st.columns(4)
meta[0].metric("Flag", flag)
meta[1].metric("Segmenter", f"{record.segmenter_name} {record.segmenter_version}")
meta[2].metric("Site", record.site or "–")
meta[3].metric("Phase", record.phase or "–")
st.caption(_status_line(record))
if record.status != "scored":
    reason = f": {record.rejection_reason} ({record.rejection_detail})" if record.rejection_reason else ""
    st.info(f"This file is {record.status}{md_escape(reason)}.")

# ---------------------------------------------------------------- slice viewer
roots = ctx.settings.allowed_roots
label_map = ctx.settings.label_map


def _load(raw_path: str | None, kind: data.VolumeKind) -> tuple[np.ndarray | None, str | None]:
    """The volume, or None and why it is not shown."""
    if not raw_path:
        return None, "not recorded"
    path = resolve_inside(raw_path, roots)
    if path is None:
        return None, "missing, or outside the configured folders"
    try:
        return data.volume(str(path), path.stat().st_mtime_ns, kind, label_map), None
    except (InvalidMask, OSError) as exc:
        return None, f"cannot be read ({getattr(exc, 'reason', type(exc).__name__)})"


mask, mask_problem = _load(record.path, "labels")
pgt, pgt_problem = _load(record.artifacts.get(ARTIFACT_PGT), "labels")
xor, xor_problem = _load(record.artifacts.get(ARTIFACT_INCONSISTENCY), "map")
image = None
for candidate in image_candidates(record.path, record.image_path):
    if resolve_inside(candidate, roots) is not None:
        image, _ = _load(str(candidate), "image")
        if image is not None:
            break
reference = next((v for v in (mask, pgt, xor) if v is not None), None)
if reference is not None:
    shape = reference.shape
    if image is not None and image.shape != shape:
        image = None
    volumes = {
        "Mask": (mask, mask_problem),
        "Pseudo ground truth": (pgt, pgt_problem),
        "Inconsistency": (xor, xor_problem),
    }
    volumes = {
        k: (v, p if v is None or v.shape == shape else "shape differs from the mask")
        for k, (v, p) in volumes.items()
    }
    st.subheader("Slices")
    n_slices = shape[0]
    slice_key = f"case_slice_{file_id}"
    if not 1 <= st.session_state.get(slice_key, 0) <= n_slices:  # first view, or a jump out of range
        st.session_state[slice_key] = busiest_slice(xor, mask) + 1
    z = st.slider("Slice", 1, n_slices, key=slice_key) - 1 if n_slices > 1 else 0
    spacing = record.spacing_mm[1:] if record.spacing_mm else (1.0, 1.0)
    background = image[z] if image is not None else None
    columns = st.columns(3)
    for column, (title, (vol, problem)) in zip(columns, volumes.items(), strict=True):
        with column:
            if vol is None or vol.shape != shape:
                st.markdown(f"**{title}**")
                st.info(f"Not shown: {problem}.")
                continue
            if title == "Inconsistency":
                picture = render_slice(background, inconsistency=vol[z], spacing_yx_mm=spacing)
            else:
                picture = render_slice(background, labels=vol[z], spacing_yx_mm=spacing)
            st.image(picture, caption=f"{title}, slice {z + 1} of {shape[0]}", width="stretch")
    legend = "red LV, green MYO, blue RV; yellow: mask and pGT disagree"
    st.caption(legend + ("; over the MR image" if image is not None else "; MR image not available"))
else:
    st.info(f"Images not shown: mask {mask_problem}; pGT {pgt_problem}; inconsistency map {xor_problem}.")

# ---------------------------------------------------------------- scores
st.subheader("Scores per structure")
scores = case_scores_table(record)
st.dataframe(
    scores,
    hide_index=True,
    column_config={
        "p_failure_pct": st.column_config.NumberColumn(
            "P(fail)", format="%.0f %%", help="the failure model's P(real Dice < 0.5 or real HD > 50 mm)"
        ),
        "edsc_interval": st.column_config.TextColumn(
            "eDSC (90 %)", help="the calibrated estimate of the real Dice with its 90 % interval"
        ),
        "ehd_interval": st.column_config.TextColumn(
            "eHD (90 %)", help="the calibrated estimate of the real Hausdorff distance with its 90 % interval"
        ),
        "pdsc_3d": st.column_config.NumberColumn("pDSC 3D", format="%.3f"),
        "phd_mm_3d": st.column_config.NumberColumn("pHD 3D (mm)", format="%.1f"),
        "pdsc": st.column_config.NumberColumn("pDSC 2D", format="%.3f"),
        "phd_mm": st.column_config.NumberColumn("pHD 2D (mm)", format="%.1f"),
        "mask_volume_ml": st.column_config.NumberColumn("volume (ml)", format="%.1f"),
        "pgt_volume_ml": st.column_config.NumberColumn("pGT volume (ml)", format="%.1f"),
    },
)
st.caption(
    "P(fail): the calibration's failure model, P(real Dice < 0.5 or real HD > 50 mm); eDSC, eHD: its "
    "estimates of the real Dice and HD with their 90 % intervals; 3D: against the 3D-refined pseudo "
    "ground truth; 2D: the paper's plain values. "
    + md_escape(calibration_status(record))
    + " "
    + image_status(record)
)

# ---------------------------------------------------------------- evidence
slice_key = f"case_slice_{file_id}"


def _jump(z: int) -> None:
    """Show slice ``z`` (0-based) in the viewer (a callback: runs before the page reruns)."""
    st.session_state[slice_key] = z + 1


by_structure = {str(s.structure): s.flag for s in record.structures}
for i, item in enumerate(reason_items(record)):
    icon = _FLAG_ICON.get(str(by_structure.get(item.structure, "")), "")
    value = f" · value {item.value:.3g}" if not math.isnan(item.value) else ""
    where = f" · slices {', '.join(str(z + 1) for z in item.slices)}" if item.slices else ""
    if item.estimate:  # the estimate behind an estimate flag, with its interval
        value += f" · {item.estimate}"
    if not math.isnan(item.p_failure):  # the failure model's probability behind an estimate flag
        value += f" · P(fail) {percent_text(item.p_failure)}"
    text, button = st.columns([5, 1], vertical_alignment="center")
    text.markdown(f"{icon} {md_escape(item.text)} `{item.code}`{value}{where}")
    if item.first_slice is not None and reference is not None and item.first_slice < reference.shape[0]:
        button.button(
            f"Slice {item.first_slice + 1}",
            key=f"jump_{file_id}_{i}",
            on_click=_jump,
            args=(item.first_slice,),
            help=f"Show slice {item.first_slice + 1}, which {item.title} implicates",
        )
checks = evidence_table(record)
if not checks.empty:
    with st.expander(f"All checks ({len(checks)}, {int((~checks['passed']).sum())} failed)"):
        st.dataframe(
            checks,
            hide_index=True,
            column_config={"value": st.column_config.NumberColumn("value", format="%.3g")},
        )

volumes = data.clinical_volumes(ctx.url, record.file_id)
if volumes is not None:
    st.subheader("Volumes")
    st.dataframe(
        volume_table(volumes),
        hide_index=True,
        column_config={
            "mask": st.column_config.NumberColumn("mask", format="%.1f"),
            "pgt": st.column_config.NumberColumn("pGT", format="%.1f"),
            "difference": st.column_config.NumberColumn("mask - pGT", format="%+.1f"),
        },
    )
    st.caption(
        "LV mass = 1.05 g/ml x myocardial volume. The patient's EF and its estimated error: Clinical page."
    )

# ---------------------------------------------------------------- review
st.subheader("Review")
if record.status == "scored":
    with st.form(f"review_{file_id}", clear_on_submit=False):
        verdict = st.radio(
            "Verdict",
            list(_VERDICTS),
            index=None,  # nothing preselected: a review is a decision
            format_func=lambda v: _VERDICTS[v],
            horizontal=True,
            key=f"verdict_{file_id}",
        )
        reviewer = st.text_input(
            "Your name", value=st.session_state.get("reviewer_name", ""), key=f"reviewer_{file_id}"
        )
        note = st.text_area("Note", key=f"note_{file_id}", max_chars=2000)
        submitted = st.form_submit_button("Save review")
    missing = [
        text
        for text, absent in (("choose a verdict", verdict is None), ("enter your name", not reviewer.strip()))
        if absent
    ]
    if submitted:
        if missing:
            st.error(" and ".join(missing).capitalize() + " to save the review.")
        else:
            st.session_state["reviewer_name"] = reviewer.strip()
            try:
                data.submit_review(
                    ctx.url,
                    file_id,
                    verdict=str(verdict),
                    reviewer=reviewer.strip(),
                    note=note.strip() or None,
                )
            except (FileStateError, ValueError) as exc:
                st.error(f"Review not saved: {exc}")
            else:
                st.success(f"Review saved: {_VERDICTS[verdict].lower()} by {reviewer.strip()}.")
                record = data.case(ctx.url, file_id) or record
else:
    st.caption("Only scored files can be reviewed.")

st.markdown("**Earlier reviews**")
if record.reviews:
    st.dataframe(reviews_table(record.reviews), hide_index=True)
else:
    st.caption("No reviews yet.")

with st.expander("File details"):
    details = {
        "file id": record.file_id,
        "status": str(record.status),
        "received (UTC)": utc_text(record.received_at),
        "scanner": record.scanner or "",
        "shape [z, y, x]": str(record.shape or ""),
        "spacing (mm)": ", ".join(f"{v:g}" for v in record.spacing_mm) if record.spacing_mm else "",
        "slices scored": record.slices_scored,
        "MR image": record.image_path or "",
        "monitor checkpoint": (record.model_checkpoint_hash or "")[:12],
        "calibration": record.calibration_version or "none",
        "scoring time (s)": f"{sum(record.timings_s.values()):.2f}" if record.timings_s else "",
        "mask file": record.path,
    }
    st.dataframe(
        [
            {"field": k, "value": "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)}
            for k, v in details.items()
        ],
        hide_index=True,
    )
