"""Store reads composed for the pages, and the records they return turned into display tables.

Every function that touches the database takes a ``Session`` and calls ``monitor.store`` (the only SQL in
cmr-monitor); the table builders are pure. Times stay timezone-aware UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd
from sqlalchemy.orm import Session

from dashboard.evidence import edsc_text, ehd_text
from dashboard.summaries import FLAG_TYPE_COLUMNS, flag_type, percent, utc_text, version_label, with_version
from monitor.qc.reasons import describe_all
from monitor.store import AlertRecord, CaseRecord, FileFilter, ReviewRecord, reviewed_alert_scores

__all__ = [
    "ALERT_TABLE_COLUMNS",
    "alerts_table",
    "case_scores_table",
    "reviewed_alerts_frame",
    "reviews_table",
]

#: Columns of ``alerts_table`` (the Alerts page).
ALERT_TABLE_COLUMNS = [
    "file_id",
    "flag",
    "review",
    "structures",
    "p_failure_pct",
    "edsc_min",
    "scored_at",
    "segmenter",
    "site",
    "case",
    "phase",
    "reviews",
    "reasons",
]


def reviewed_alerts_frame(session: Session, files: FileFilter) -> pd.DataFrame:
    """Reviewed flagged files, one row per file and flag type, with the latest verdict.

    Args:
        files: the range of scoring time and the segmenter / version (``FileFilter``).
    Returns: columns ``FLAG_TYPE_COLUMNS`` (``version`` is ``"name version"``); a file with flags of
        several types appears once per type (``flag_type`` of each structure's reason codes); a flagged
        structure without a reason code counts once (``"LV flagged"``).
    Raises: DatabaseUnavailable.
    """
    scores = reviewed_alert_scores(session, files)
    if scores.empty:
        return pd.DataFrame(
            {
                c: pd.Series(dtype="datetime64[ns, UTC]" if c == "scored_at" else object)
                for c in FLAG_TYPE_COLUMNS
            }
        )
    reasons = scores[["file_id", "structure", "reasons"]].explode("reasons").dropna(subset=["reasons"])
    typed = pd.DataFrame(
        {
            "file_id": reasons["file_id"],
            "flag_type": [
                flag_type(s, code) for s, code in zip(reasons["structure"], reasons["reasons"], strict=True)
            ],
        }
    )
    untyped = scores[~scores["file_id"].isin(typed["file_id"]) & (scores["flag"] != "ok")]
    fallback = pd.DataFrame({"file_id": untyped["file_id"], "flag_type": untyped["structure"] + " flagged"})
    types = pd.concat([typed, fallback], ignore_index=True).drop_duplicates()
    files_frame = with_version(scores.drop_duplicates("file_id"))
    frame = files_frame[["file_id", "version", "scored_at", "verdict"]].merge(types, on="file_id")
    frame = frame.sort_values(["file_id", "flag_type"], ignore_index=True)
    return frame.reindex(columns=FLAG_TYPE_COLUMNS)


def alerts_table(alerts: Sequence[AlertRecord]) -> pd.DataFrame:
    """The Alerts page table: one row per alert (``ALERT_TABLE_COLUMNS``), in the given order;
    ``p_failure_pct`` is the highest P(failure) of the file's structures in percent (0-100; nan when
    none has one), ``edsc_min`` the lowest eDSC of its structures (0-1; nan when none has one)."""
    return pd.DataFrame(
        [
            {
                "file_id": a.file_id,
                "flag": str(a.flag),
                "structures": ", ".join(str(s) for s in a.flagged_structures),
                "p_failure_pct": max(_known(percent(s.p_failure) for s in a.structures), default=math.nan),
                "edsc_min": min(_known(s.edsc for s in a.structures), default=math.nan),
                "reasons": "; ".join(describe_all(a.structures)),
                "segmenter": version_label(a.segmenter_name, a.segmenter_version),
                "site": a.site or "",
                "case": a.case_key,
                "phase": a.phase or "",
                "scored_at": utc_text(a.scored_at),
                "review": str(a.review_verdict) if a.review_verdict is not None else "unreviewed",
                "reviews": a.reviews,
            }
            for a in alerts
        ],
        columns=ALERT_TABLE_COLUMNS,
    )


def _known(values: Iterable[float]) -> list[float]:
    """The values that are not nan (``max``/``min`` of them with ``default=nan``: nan when none is)."""
    return [v for v in values if not math.isnan(v)]


def case_scores_table(case: CaseRecord) -> pd.DataFrame:
    """Per-structure scores of a case: flag, the failure model's P(failure) in percent (0-100; nan when
    not stored), the calibrated eDSC and eHD with their 90 % intervals as text (``edsc_interval``
    ``"0.83 (0.71-0.90)"``, ``ehd_interval`` ``"12.4 mm (7.9-21.0)"``; ``"–"`` without a calibration),
    refined pDSC and pHD (mm; nan when not computed), the paper's plain pDSC and pHD, volumes (ml) of
    mask and refined pGT, voxels, reason codes."""
    return pd.DataFrame(
        [
            {
                "structure": str(s.structure),
                "flag": str(s.flag),
                "p_failure_pct": percent(s.p_failure),
                "edsc_interval": edsc_text(s),
                "ehd_interval": ehd_text(s),
                "pdsc_3d": s.pdsc_3d,
                "phd_mm_3d": s.phd_mm_3d,
                "pdsc": s.pdsc,
                "phd_mm": s.phd_mm,
                "mask_volume_ml": s.mask_volume_ml,
                "pgt_volume_ml": s.pgt_volume_ml,
                "mask_voxels": s.mask_voxels,
                "pgt_voxels": s.pgt_voxels,
                "reasons": "; ".join(s.reasons),
            }
            for s in case.structures
        ],
        columns=[
            "structure",
            "flag",
            "p_failure_pct",
            "edsc_interval",
            "ehd_interval",
            "pdsc_3d",
            "phd_mm_3d",
            "pdsc",
            "phd_mm",
            "mask_volume_ml",
            "pgt_volume_ml",
            "mask_voxels",
            "pgt_voxels",
            "reasons",
        ],
    )


def reviews_table(reviews: Sequence[ReviewRecord]) -> pd.DataFrame:
    """Earlier reviews of a case, newest first: time (UTC), reviewer, verdict, note."""
    return pd.DataFrame(
        [
            {
                "reviewed_at": utc_text(r.reviewed_at),
                "reviewer": r.reviewer,
                "verdict": str(r.verdict),
                "note": r.note or "",
            }
            for r in reversed(reviews)
        ],
        columns=["reviewed_at", "reviewer", "verdict", "note"],
    )
