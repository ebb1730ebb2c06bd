"""Store reads composed for the pages, and the records they return turned into display tables.

Every function that touches the database takes a ``Session`` and calls ``monitor.store`` (the only SQL in
cmr-monitor); the table builders are pure. Times stay timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy.orm import Session

from dashboard.summaries import FLAG_TYPE_COLUMNS, flag_type, utc_text, version_label
from monitor.store import ALERT_LEVELS, AlertRecord, CaseRecord, ReviewRecord, list_alerts

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
    "scored_at",
    "segmenter",
    "site",
    "case",
    "phase",
    "reviews",
    "reasons",
]


def reviewed_alerts_frame(
    session: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    segmenter_name: str | None = None,
    segmenter_version: str | None = None,
    page_size: int = 5000,
) -> pd.DataFrame:
    """Reviewed flagged files, one row per file and flag type, with the latest verdict.

    Args:
        start, end: half-open range of scoring time (timezone-aware); None leaves a side open.
        segmenter_name, segmenter_version: keep only this segmenter / version.
        page_size: alerts fetched per query.
    Returns: columns ``FLAG_TYPE_COLUMNS`` (``version`` is ``"name version"``); a file with flags of
        several types appears once per type.
    Raises: DatabaseUnavailable.
    """
    rows: list[tuple[int, str, datetime, str, str]] = []
    offset = 0
    while True:
        page = list_alerts(
            session,
            levels=ALERT_LEVELS,
            segmenter_name=segmenter_name,
            segmenter_version=segmenter_version,
            start=start,
            end=end,
            reviewed=True,
            limit=page_size,
            offset=offset,
        )
        for alert in page:
            if alert.review_verdict is None:
                continue
            types = sorted({flag_type(r) for r in alert.reasons}) or [
                f"{s} flagged" for s in alert.flagged_structures
            ]
            version = version_label(alert.segmenter_name, alert.segmenter_version)
            rows.extend(
                (alert.file_id, version, alert.scored_at, kind, str(alert.review_verdict)) for kind in types
            )
        if len(page) < page_size:
            break
        offset += page_size
    frame = pd.DataFrame(rows, columns=FLAG_TYPE_COLUMNS)
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    return frame


def alerts_table(alerts: Sequence[AlertRecord]) -> pd.DataFrame:
    """The Alerts page table: one row per alert (``ALERT_TABLE_COLUMNS``), in the given order."""
    return pd.DataFrame(
        [
            {
                "file_id": a.file_id,
                "flag": str(a.flag),
                "structures": ", ".join(str(s) for s in a.flagged_structures),
                "reasons": "; ".join(a.reasons),
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


def case_scores_table(case: CaseRecord) -> pd.DataFrame:
    """Per-structure scores of a case: flag, pDSC, pHD (mm), volume (ml), voxels, reasons."""
    return pd.DataFrame(
        [
            {
                "structure": str(s.structure),
                "flag": str(s.flag),
                "pdsc": s.pdsc,
                "phd_mm": s.phd_mm,
                "mask_volume_ml": s.mask_volume_ml,
                "mask_voxels": s.mask_voxels,
                "pgt_voxels": s.pgt_voxels,
                "reasons": "; ".join(s.reasons),
            }
            for s in case.structures
        ],
        columns=[
            "structure",
            "flag",
            "pdsc",
            "phd_mm",
            "mask_volume_ml",
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
