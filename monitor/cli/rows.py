"""The rows ``cmr-monitor score`` prints: one per mask, the same keys in CSV and JSON, and the table's cells.

Per structure S in LV, RV, MYO: ``pdsc_<S>`` and ``phd_mm_<S>`` are the paper's plain pseudo Dice and
Hausdorff distance (mm, 2D autoencoder's pGT); ``pdsc_3d_<S>`` and ``phd_mm_3d_<S>`` the same against the
3D-refined pGT (what the flags use); ``flag_<S>``; ``reasons_<S>`` the structure's reason codes joined by
``;`` (``monitor.qc.reasons.ReasonCode``; empty when ok). ``image`` is the MR image used as evidence
(empty when none), ``image_reason`` why none was (``monitor.io.images``: ``not_found``,
``geometry_mismatch``, ``not_evaluated``, ...). ``reasons`` keeps the sentences a person reads. Undefined metrics are
empty in CSV and null in JSON. The table shows the refined values (the plain ones where no refined
value was computed) and the sentences.
"""

from __future__ import annotations

import math
from pathlib import Path

from monitor.io.images import IMAGE_USED, ImagePairing, image_outcome
from monitor.qc.labels import STRUCTURES
from monitor.qc.reasons import Thresholds, describe_all
from monitor.qc.records import VolumeScore

__all__ = ["TABLE_HEADER", "output_columns", "rejected_row", "score_columns", "scored_row", "table_cells"]

#: The table's columns after ``file`` and ``flag``, then ``reasons``.
TABLE_HEADER: tuple[str, ...] = (
    *(f"{s} {name}" for s in STRUCTURES for name in ("pDSC", "pHD mm")),
    "image",
    "reasons",
)


def score_columns() -> list[str]:
    """The keys of a scored row, in order (``pgt_file`` and ``inconsistency_file`` follow with ``--out``)."""
    columns = ["file", "status", "flag", "image", "image_reason"]
    for s in STRUCTURES:
        columns += [f"pdsc_{s}", f"phd_mm_{s}", f"pdsc_3d_{s}", f"phd_mm_3d_{s}", f"flag_{s}", f"reasons_{s}"]
    return [*columns, "reasons"]


def output_columns(rows: list[dict[str, object]]) -> list[str]:
    """The CSV header of ``rows``: ``score_columns()`` first, then a rejected row's ``reason`` and
    ``detail``, then any other key (``pgt_file``, ...) in first-seen order; the same whatever comes first."""
    columns = [*score_columns(), "reason", "detail"]
    extra = [key for row in rows for key in row if key not in columns]
    return [*columns, *dict.fromkeys(extra)]


def _rounded(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def scored_row(
    path: Path, score: VolumeScore, image: ImagePairing | None, thresholds: Thresholds | None = None
) -> dict[str, object]:
    """The row of one scored mask (keys ``score_columns()``).

    Args:
        path: the mask file.
        score: its scores.
        image: what became of its MR image (None: not looked for).
        thresholds: quoted in the sentences of ``reasons`` (the scorer's ``FlagPolicy``).
    """
    outcome = image_outcome(image, score.image_used)
    used = outcome == IMAGE_USED and image is not None
    row: dict[str, object] = {
        "file": str(path),
        "status": "scored",
        "flag": score.flag.value,
        "image": (image.path or "") if used and image is not None else "",
        "image_reason": outcome if outcome not in (None, IMAGE_USED) else "",
    }
    for s in score.structures:
        name = s.structure.value
        row[f"pdsc_{name}"] = _rounded(s.pdsc, 4)
        row[f"phd_mm_{name}"] = _rounded(s.phd_mm, 2)
        row[f"pdsc_3d_{name}"] = _rounded(s.pdsc_3d, 4)
        row[f"phd_mm_3d_{name}"] = _rounded(s.phd_mm_3d, 2)
        row[f"flag_{name}"] = s.flag.value
        row[f"reasons_{name}"] = ";".join(str(code) for code in s.reasons)
    row["reasons"] = "; ".join(describe_all(score.structures, thresholds))
    return {key: row[key] for key in score_columns() if key in row}


def rejected_row(path: Path, reason: str, detail: str) -> dict[str, object]:
    """The row of a mask that could not be scored: its reason code and the sentence."""
    return {"file": str(path), "status": "rejected", "flag": "", "reason": reason, "detail": detail}


def table_cells(row: dict[str, object]) -> list[str]:
    """The table's cells of a row after ``file`` and ``flag`` (``TABLE_HEADER``): refined pDSC and pHD
    (plain where none), the image's name (or why none), the reasons (or the rejection's detail)."""
    cells = []
    for s in STRUCTURES:
        dice = row.get(f"pdsc_3d_{s}")
        dice = row.get(f"pdsc_{s}") if dice is None else dice
        hd = row.get(f"phd_mm_3d_{s}")
        hd = row.get(f"phd_mm_{s}") if hd is None else hd
        cells += ["-" if dice is None else f"{dice:.3f}", "-" if hd is None else f"{hd:.1f}"]
    image = str(row.get("image") or "")
    cells.append(Path(image).name if image else str(row.get("image_reason") or "-"))
    cells.append(str(row.get("reasons") or row.get("detail") or ""))
    return cells
