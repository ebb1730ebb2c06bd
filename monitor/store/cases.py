"""One file in full (``get_case``), the status counts of the whole queue (``status_counts``) and the
stored structure scores of files. Read-only; times are UTC."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.store._frames import STRUCTURE_RANK, segmenter_names
from monitor.store._sql import STRUCTURE_SCORE
from monitor.store._tx import none_to_nan, read_transaction
from monitor.store.models import Artifact, MaskFile, MonitorModel, Review, Segmenter, StructureScoreRow
from monitor.store.records import (
    CaseRecord,
    FileStatus,
    ReviewRecord,
    ReviewVerdict,
    SegmenterCounts,
    StatusCounts,
    StoredCheck,
    StoredStructureScore,
)

__all__ = ["get_case", "read_evidence", "status_counts", "structure_scores"]


def get_case(session: Session, file_id: int) -> CaseRecord | None:
    """One file in full (identity, queue state, scores, artifacts, reviews); None when unknown.

    Raises: DatabaseUnavailable.
    """
    with read_transaction(session):
        row = session.execute(
            sa.select(MaskFile, Segmenter.name, Segmenter.version, MonitorModel.checkpoint_hash)
            .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
            .outerjoin(MonitorModel, MaskFile.model_id == MonitorModel.id)
            .where(MaskFile.id == file_id)
            .execution_options(populate_existing=True)
        ).first()
        if row is None:
            return None
        f, segmenter_name, segmenter_version, checkpoint_hash = row
        model_metadata = (
            session.scalar(sa.select(MonitorModel.metadata_json).where(MonitorModel.id == f.model_id))
            if f.model_id is not None
            else None
        )
        structures = structure_scores(session, [file_id]).get(file_id, ())
        artifacts = dict(
            session.execute(
                sa.select(Artifact.kind, Artifact.path)
                .where(Artifact.file_id == file_id)
                .order_by(Artifact.kind)
            ).all()
        )
        reviews = tuple(
            ReviewRecord(
                review_id=r[0],
                file_id=file_id,
                verdict=ReviewVerdict(r[1]),
                reviewer=r[2],
                note=r[3],
                reviewed_at=r[4],
            )
            for r in session.execute(
                sa.select(Review.id, Review.verdict, Review.reviewer, Review.note, Review.reviewed_at)
                .where(Review.file_id == file_id)
                .order_by(Review.reviewed_at, Review.id)
            )
        )
        shape = (f.shape_z, f.shape_y, f.shape_x)
        spacing = (f.spacing_z_mm, f.spacing_y_mm, f.spacing_x_mm)
        record = CaseRecord(
            file_id=f.id,
            path=f.path,
            content_hash=f.content_hash,
            case_key=f.case_key,
            phase=f.phase,
            site=f.site,
            scanner=f.scanner,
            image_path=f.image_path,
            segmenter_name=segmenter_name,
            segmenter_version=segmenter_version,
            status=FileStatus(f.status),
            attempts=f.attempts,
            received_at=f.received_at,
            started_at=f.started_at,
            scored_at=f.scored_at,
            rejected_at=f.rejected_at,
            rejection_reason=f.rejection_reason,
            rejection_detail=f.rejection_detail,
            flag=FlagLevel(f.flag) if f.flag is not None else None,
            shape=shape if None not in shape else None,  # type: ignore[arg-type]
            spacing_mm=spacing if None not in spacing else None,  # type: ignore[arg-type]
            slices_scored=f.slices_scored,
            timings_s=dict(f.timings_s) if f.timings_s is not None else None,
            model_checkpoint_hash=checkpoint_hash,
            model_metadata=model_metadata,
            structures=structures,
            artifacts=artifacts,
            reviews=reviews,
            superseded_at=f.superseded_at,
            image_used=f.image_used,
            image_reason=f.image_reason,
            image_detail=f.image_detail,
            calibration_version=f.calibration_version,
        )
    return record


def status_counts(session: Session) -> StatusCounts:
    """Files per status and scored files per flag level, overall and per segmenter version, and the
    time of the last score.

    Raises: DatabaseUnavailable.
    """
    with read_transaction(session):
        rows = session.execute(
            sa.select(
                MaskFile.segmenter_id,
                sa.type_coerce(MaskFile.status, sa.String()),
                sa.type_coerce(MaskFile.flag, sa.String()),
                sa.func.count(),
                sa.func.max(MaskFile.scored_at),
            ).group_by(MaskFile.segmenter_id, MaskFile.status, MaskFile.flag)
        ).all()
        names = segmenter_names(session)
    statuses: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {str(s): 0 for s in FileStatus})
    flags: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {str(f): 0 for f in FlagLevel})
    last_scored: dict[tuple[str, str], datetime] = {}
    for segmenter_id, status, flag, n, last in rows:  # one scan: (segmenter, status, flag) groups
        version = names[segmenter_id]
        statuses[version][status] += int(n)
        if status == FileStatus.SCORED and flag is not None:
            flags[version][flag] += int(n)
        if last is not None and (version not in last_scored or last > last_scored[version]):
            last_scored[version] = last
    segmenters = tuple(
        SegmenterCounts(
            segmenter_name=name,
            segmenter_version=ver,
            by_status=statuses[(name, ver)],
            by_flag=flags[(name, ver)],
            last_scored_at=last_scored.get((name, ver)),
        )
        for name, ver in sorted(statuses)
    )
    known = [s.last_scored_at for s in segmenters if s.last_scored_at is not None]
    return StatusCounts(
        by_status={str(s): sum(c.by_status[str(s)] for c in segmenters) for s in FileStatus},
        by_flag={str(f): sum(c.by_flag[str(f)] for c in segmenters) for f in FlagLevel},
        last_scored_at=max(known) if known else None,
        segmenters=segmenters,
    )


def structure_scores(
    session: Session, file_ids: Sequence[int]
) -> dict[int, tuple[StoredStructureScore, ...]]:
    """Structure scores of the files, in LV, RV, MYO order."""
    if not file_ids:
        return {}
    found: dict[int, list[StoredStructureScore]] = defaultdict(list)
    for r in session.execute(
        sa.select(StructureScoreRow.file_id, *STRUCTURE_SCORE).where(StructureScoreRow.file_id.in_(file_ids))
    ):
        found[r.file_id].append(
            StoredStructureScore(
                structure=Structure(r.structure),
                pdsc=none_to_nan(r.pdsc),
                phd_mm=none_to_nan(r.phd_mm),
                flag=FlagLevel(r.flag),
                reasons=tuple(r.reasons or ()),
                mask_voxels=int(r.mask_voxels),
                pgt_voxels=int(r.pgt_voxels),
                mask_volume_ml=float(r.mask_volume_ml),
                pdsc_3d=none_to_nan(r.pdsc_3d),
                phd_mm_3d=none_to_nan(r.phd_mm_3d),
                pgt_volume_ml=none_to_nan(r.pgt_volume_ml),
                evidence=read_evidence(r.evidence),
                p_failure=none_to_nan(r.p_failure),
                edsc=none_to_nan(r.edsc),
                edsc_lo=none_to_nan(r.edsc_lo),
                edsc_hi=none_to_nan(r.edsc_hi),
                ehd_mm=none_to_nan(r.ehd_mm),
                ehd_mm_lo=none_to_nan(r.ehd_mm_lo),
                ehd_mm_hi=none_to_nan(r.ehd_mm_hi),
            )
        )
    return {
        file_id: tuple(sorted(scores, key=lambda s: STRUCTURE_RANK[s.structure]))
        for file_id, scores in found.items()
    }


def read_evidence(stored: Any) -> tuple[StoredCheck, ...]:
    """The checks of a stored ``evidence`` column (NULL, from before the evidence stage: none).

    Tolerant of what another version may have written: entries that are not objects with a ``code``
    are skipped, a null or non-numeric value reads as nan, a missing verdict as passed.
    """
    checks = []
    for entry in stored or ():
        if not isinstance(entry, dict) or not entry.get("code"):
            continue
        value = entry.get("value")
        slices = entry.get("slices") or ()
        checks.append(
            StoredCheck(
                code=str(entry["code"]),
                value=float(value) if isinstance(value, int | float) else float("nan"),
                passed=bool(entry.get("passed", True)),
                slices=tuple(int(z) for z in slices if isinstance(z, int)),
            )
        )
    return tuple(checks)
