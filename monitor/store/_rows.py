"""Row helpers shared by the store's write modules (``queue``, ``repository``, ``bulk``): checks, ids,
segmenter rows, rejections and structure rows. Private to ``monitor.store``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.errors import StoreError
from monitor.io.images import IMAGE_NOT_EVALUATED, ImagePairing, image_outcome
from monitor.qc.records import Check, StructureScore, VolumeScore
from monitor.store._tx import dialect_insert, nan_to_none
from monitor.store.errors import FileStateError
from monitor.store.models import MaskFile, Segmenter
from monitor.store.records import FileStatus

__all__ = [
    "MAX_REASON_LENGTH",
    "OPEN",
    "evidence_json",
    "image_columns",
    "reject_rows",
    "require_text",
    "segmenter_id",
    "state_error",
    "structure_rows",
    "written_id",
]

#: Statuses of a file that is not finished yet.
OPEN = (FileStatus.PENDING, FileStatus.SCORING)
#: Longest rejection reason code.
MAX_REASON_LENGTH = 64


def structure_rows(file_id: int, score: VolumeScore) -> list[dict[str, Any]]:
    """``structure_scores`` rows of one scored file (nan metrics as NULL).

    The estimate columns (and ``p_failure``) are only written when a calibration ran (else they stay NULL by default), so
    a score without estimates can be written by the same statement as before they existed.
    """
    estimated = any(
        s.edsc is not None or s.ehd_mm is not None or s.p_failure is not None for s in score.structures
    )
    return [
        {
            "file_id": file_id,
            "structure": s.structure,
            "pdsc": nan_to_none(s.pdsc),
            "phd_mm": nan_to_none(s.phd_mm),
            "flag": s.flag,
            "reasons": list(s.reasons),
            "mask_voxels": int(s.mask_voxels),
            "pgt_voxels": int(s.pgt_voxels),
            "mask_volume_ml": float(s.mask_volume_ml),
            "pdsc_3d": nan_to_none(s.pdsc_3d),
            "phd_mm_3d": nan_to_none(s.phd_mm_3d),
            "pgt_volume_ml": nan_to_none(s.pgt_volume_ml),
            "evidence": evidence_json(s.evidence),
            **(_estimate_columns(s) if estimated else {}),
        }
        for s in score.structures
    ]


def _estimate_columns(s: StructureScore) -> dict[str, float | None]:
    """The six estimate columns of a structure row and ``p_failure`` (NULL without an estimate, or
    without a failure model)."""
    out: dict[str, float | None] = {}
    for name, estimate in (("edsc", s.edsc), ("ehd_mm", s.ehd_mm)):
        out[name] = nan_to_none(estimate.value) if estimate is not None else None
        out[f"{name}_lo"] = nan_to_none(estimate.lo) if estimate is not None else None
        out[f"{name}_hi"] = nan_to_none(estimate.hi) if estimate is not None else None
    out["p_failure"] = nan_to_none(s.p_failure) if s.p_failure is not None else None
    return out


def evidence_json(checks: Iterable[Check]) -> list[dict[str, Any]]:
    """The ``evidence`` column of a structure: one object per check; a value that is not finite (an
    infinite distance, say) is stored as null, which JSON and PostgreSQL accept and nan reads back."""
    return [
        {
            "code": str(check.code),
            "value": float(check.value) if math.isfinite(check.value) else None,
            "passed": bool(check.passed),
            "slices": [int(z) for z in check.slices],
        }
        for check in checks
    ]


def image_columns(score: VolumeScore, image: ImagePairing | None) -> dict[str, Any]:
    """The ``mask_files`` image columns of a scored file: whether the score used an MR image, which
    (``image_path``, only when one was found: a sidecar's path otherwise stays as enqueued) and why not."""
    columns: dict[str, Any] = {"image_used": bool(score.image_used)}
    if image is not None and image.path is not None:
        columns["image_path"] = image.path
    outcome = image_outcome(image, score.image_used)
    if outcome == IMAGE_NOT_EVALUATED:  # paired, yet the evidence stage ran no image check
        detail = "the evidence stage did not use the image (an empty mask, or a constant image)"
        columns.update(image_reason=outcome, image_detail=detail)
    elif image is not None and not score.image_used:
        columns.update(image_reason=image.reason, image_detail=image.detail)
    elif score.image_used:
        columns.update(image_reason=None, image_detail=None)
    return columns


def reject_rows(
    session: Session, where: sa.ColumnElement[bool], *, when: datetime, reason: str, detail: str
) -> int:
    """Mark the file rows matching ``where`` rejected (releasing any claim); the number of rows."""
    return session.execute(
        sa.update(MaskFile)
        .where(where)
        .values(
            status=FileStatus.REJECTED,
            rejected_at=when,
            rejection_reason=reason,
            rejection_detail=detail,
            worker_id=None,
            lease_expires_at=None,
        ),
        execution_options={"synchronize_session": False},
    ).rowcount


def segmenter_id(session: Session, name: str, version: str, when: datetime) -> int:
    """Id of the segmenter (name, version), created on first use (race-safe)."""
    where = (Segmenter.name == name, Segmenter.version == version)
    found = session.scalar(sa.select(Segmenter.id).where(*where))
    if found is not None:
        return found
    session.execute(
        dialect_insert(session)(Segmenter)
        .values(name=name, version=version, created_at=when)
        .on_conflict_do_nothing(index_elements=["name", "version"])
    )
    return written_id(session.scalar(sa.select(Segmenter.id).where(*where)), "segmenter")


def state_error(session: Session, file_id: int, action: str) -> FileStateError:
    """Explain why ``action`` is not possible on the file."""
    status = session.scalar(sa.select(MaskFile.status).where(MaskFile.id == file_id))
    if status is None:
        return FileStateError(file_id, None, f"cannot {action}: no file with id {file_id}")
    return FileStateError(file_id, str(status), f"cannot {action}: file {file_id} is {status}")


def written_id(row_id: int | None, what: str) -> int:
    """The id a statement just wrote or found; a missing one means the database broke its promise."""
    if row_id is None:
        raise StoreError(f"{what} row vanished within its own transaction")
    return row_id


def require_text(**values: str) -> None:
    """Raise ValueError naming the first empty value."""
    for name, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
