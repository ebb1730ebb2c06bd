"""Clinical indices in the database: each scored file's volumes (``volume_clinical``) and, per case and
segmenter, the patient's indices with their pseudo and estimated errors (``patient_indices``).

``update_patient`` is the pairing state at the edge: after a file's scores are recorded, it pairs the
current scored ED and ES rows of the file's case (same segmenter, by case key and phase, never by arrival
order), assesses them (``monitor.qc.clinical.assess_patient``) and writes the case's one row, which says
``complete = false`` and which phase is ``missing`` while a frame has not been scored. The row is locked
while it is rewritten, so two workers finishing the ED and the ES at once leave the complete result,
whichever order they commit in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.clinical import (
    INDEX_COLUMNS,
    INDICES,
    ClinicalCalibration,
    ClinicalPolicy,
    PatientAssessment,
    PhasePair,
    VolumeIndices,
    assess_patient,
)
from monitor.qc.levels import FlagLevel
from monitor.qc.records import Estimate
from monitor.store._tx import (
    aware,
    dialect_insert,
    nan_to_none,
    none_to_nan,
    read_transaction,
    write_transaction,
)
from monitor.store.models import MaskFile, PatientIndicesRow, Segmenter, VolumeClinicalRow
from monitor.store.records import FileStatus

__all__ = [
    "PATIENT_COLUMNS",
    "StoredPatient",
    "list_patients",
    "patient_frame",
    "record_volume_indices",
    "update_patient",
    "volume_clinical_row",
    "volume_indices_of",
    "write_patients",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredPatient:
    """One case's stored clinical indices (ml, percent, g; errors in the same units, EF in points)."""

    segmenter_name: str
    segmenter_version: str
    case_key: str
    complete: bool  #: both ED and ES scored
    missing: tuple[str, ...]  #: phases not scored yet
    values: dict[str, float] = field(default_factory=dict)  #: index -> value of the masks (nan if none)
    pgt: dict[str, float] = field(default_factory=dict)  #: index -> value of the pGTs
    pseudo_error: dict[str, float] = field(default_factory=dict)  #: index -> mask minus pGT
    estimates: dict[str, Estimate] = field(default_factory=dict)  #: index -> estimated absolute error
    flag: FlagLevel | None = None  #: None while incomplete
    reasons: tuple[str, ...] = ()  #: ``ClinicalReason`` codes
    calibration_version: str | None = None
    updated_at: datetime | None = None
    ed_file_id: int | None = None
    es_file_id: int | None = None


def _extent(indices: VolumeIndices) -> dict[str, Any]:
    return {
        "n_slices": indices.n_slices,
        "lv_slices": indices.lv_slices,
        "rv_slices": indices.rv_slices,
        "heart_slices": indices.heart_slices,
        "pgt_lv_slices": indices.pgt_lv_slices,
        "margin_slices": indices.margin_slices,
        "lv_slice_ml": list(indices.lv_slice_ml),
        "pdsc": [nan_to_none(v) for v in indices.pdsc],
        "phd_mm": [nan_to_none(v) for v in indices.phd_mm],
    }


def _indices(row: VolumeClinicalRow) -> VolumeIndices:
    extent = row.extent_json
    return VolumeIndices(
        lv_volume_ml=row.lv_volume_ml,
        rv_volume_ml=row.rv_volume_ml,
        myo_volume_ml=row.myo_volume_ml,
        pgt_lv_volume_ml=row.pgt_lv_volume_ml,
        pgt_rv_volume_ml=row.pgt_rv_volume_ml,
        pgt_myo_volume_ml=row.pgt_myo_volume_ml,
        n_slices=int(extent["n_slices"]),
        lv_slices=int(extent["lv_slices"]),
        rv_slices=int(extent["rv_slices"]),
        heart_slices=int(extent["heart_slices"]),
        pgt_lv_slices=int(extent["pgt_lv_slices"]),
        margin_slices=int(extent["margin_slices"]),
        lv_slice_ml=tuple(float(v) for v in extent["lv_slice_ml"]),
        pdsc=tuple(none_to_nan(v) for v in extent["pdsc"]),  # type: ignore[arg-type]
        phd_mm=tuple(none_to_nan(v) for v in extent["phd_mm"]),  # type: ignore[arg-type]
    )


def volume_clinical_row(file_id: int, indices: VolumeIndices) -> dict[str, Any]:
    """The ``volume_clinical`` row of one file."""
    return {
        "file_id": file_id,
        "lv_volume_ml": indices.lv_volume_ml,
        "rv_volume_ml": indices.rv_volume_ml,
        "myo_volume_ml": indices.myo_volume_ml,
        "lv_mass_g": indices.lv_mass_g,
        "pgt_lv_volume_ml": indices.pgt_lv_volume_ml,
        "pgt_rv_volume_ml": indices.pgt_rv_volume_ml,
        "pgt_myo_volume_ml": indices.pgt_myo_volume_ml,
        "pgt_lv_mass_g": indices.pgt_lv_mass_g,
        "extent_json": _extent(indices),
    }


def record_volume_indices(session: Session, file_id: int, indices: VolumeIndices) -> None:
    """Store (or replace) a scored file's clinical volumes, in a transaction of its own (the daemon
    stores them with the scores: ``record_scores(..., clinical=...)``)."""
    values = volume_clinical_row(file_id, indices)
    insert = dialect_insert(session)
    with write_transaction(session):
        statement = insert(VolumeClinicalRow).values(values)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["file_id"], set_={k: statement.excluded[k] for k in values if k != "file_id"}
            )
        )


def volume_indices_of(session: Session, file_id: int) -> VolumeIndices | None:
    """A file's stored clinical volumes, or None when it has none (not scored, or scored before them)."""
    with read_transaction(session):
        row = session.get(VolumeClinicalRow, file_id)
        return None if row is None else _indices(row)


def _current_frames(
    session: Session, segmenter_id: int, case_key: str
) -> dict[str, tuple[int, VolumeIndices]]:
    """Phase -> (file id, volumes) of the case's current scored ED and ES rows (latest scored wins)."""
    rows = session.execute(
        sa.select(MaskFile.id, MaskFile.phase, VolumeClinicalRow)
        .join(VolumeClinicalRow, VolumeClinicalRow.file_id == MaskFile.id)
        .where(
            MaskFile.segmenter_id == segmenter_id,
            MaskFile.case_key == case_key,
            MaskFile.phase.in_(("ED", "ES")),
            MaskFile.status == FileStatus.SCORED,
            MaskFile.superseded_at.is_(None),
        )
        .order_by(MaskFile.scored_at, MaskFile.id)
    ).all()
    return {phase: (file_id, _indices(row)) for file_id, phase, row in rows}


def _assessment_values(assessment: PatientAssessment) -> dict[str, Any]:
    values: dict[str, Any] = {
        "complete": assessment.complete,
        "missing": list(assessment.missing),
        "flag": assessment.flag,
        "reasons": [str(r) for r in assessment.reasons],
        "calibration_version": assessment.calibration_version,
    }
    for index in INDICES:
        column = INDEX_COLUMNS[index]
        for prefix, source in (
            ("", assessment.mask),
            ("pgt_", assessment.pgt),
            ("pseudo_error_", assessment.pseudo_error),
        ):
            values[f"{prefix}{column}"] = nan_to_none(source.get(index)) if source is not None else None
        estimate = assessment.estimates.get(index)
        values[f"est_error_{column}"] = nan_to_none(estimate.value) if estimate else None
        values[f"est_error_{column}_lo"] = nan_to_none(estimate.lo) if estimate else None
        values[f"est_error_{column}_hi"] = nan_to_none(estimate.hi) if estimate else None
    return values


def update_patient(
    session: Session,
    file_id: int,
    *,
    calibration: ClinicalCalibration | Callable[[], ClinicalCalibration | None] | None,
    policy: ClinicalPolicy,
    now: datetime | None = None,
) -> PatientAssessment | None:
    """Re-assess the case of a just-scored file and store its row, in one transaction.

    Args:
        file_id: a scored file with stored volumes (``record_volume_indices``).
        calibration: the clinical error models, or a function that returns them (called only when the
            case is complete: loading them is slow); None stores values and physiological checks only.
        policy: the clinical flag's limit.
        now: the row's ``updated_at`` (timezone-aware); now when None.
    Returns: the assessment, or None when the file has no ED/ES phase (it takes no part).
    """
    when = aware(now, "now")
    insert = dialect_insert(session)
    with write_transaction(session):
        found = session.execute(
            sa.select(MaskFile.segmenter_id, MaskFile.case_key, MaskFile.phase).where(MaskFile.id == file_id)
        ).one_or_none()
        if found is None or found.phase not in ("ED", "ES"):
            return None
        session.execute(
            insert(PatientIndicesRow)
            .values(
                segmenter_id=found.segmenter_id,
                case_key=found.case_key,
                complete=False,
                missing=["ED", "ES"],
                reasons=[],
                updated_at=when,
            )
            .on_conflict_do_nothing(index_elements=["segmenter_id", "case_key"])
        )
        # the lock orders two workers finishing this case's frames: the second sees both frames
        session.execute(
            sa.select(PatientIndicesRow.id)
            .where(
                PatientIndicesRow.segmenter_id == found.segmenter_id,
                PatientIndicesRow.case_key == found.case_key,
            )
            .with_for_update()
        ).one()
        frames = _current_frames(session, found.segmenter_id, found.case_key)
        ed, es = frames.get("ED"), frames.get("ES")
        pair = PhasePair(case_key=found.case_key, ed=ed[1] if ed else None, es=es[1] if es else None)
        models = calibration() if callable(calibration) and pair.complete else calibration
        assessment = assess_patient(pair, calibration=None if callable(models) else models, policy=policy)
        session.execute(
            sa.update(PatientIndicesRow)
            .where(
                PatientIndicesRow.segmenter_id == found.segmenter_id,
                PatientIndicesRow.case_key == found.case_key,
            )
            .values(
                **_assessment_values(assessment),
                ed_file_id=ed[0] if ed else None,
                es_file_id=es[0] if es else None,
                updated_at=when,
            )
        )
    return assessment


#: Columns of ``patient_frame``, in order (per index: value, pGT, pseudo error, estimate, lo, hi).
PATIENT_COLUMNS: tuple[str, ...] = (
    "segmenter",
    "segmenter_version",
    "case_key",
    "complete",
    "missing",
    "flag",
    "reasons",
    "calibration_version",
    "updated_at",
    *(
        f"{prefix}{INDEX_COLUMNS[i]}{suffix}"
        for i in INDICES
        for prefix, suffix in (
            ("", ""),
            ("pgt_", ""),
            ("pseudo_error_", ""),
            ("est_error_", ""),
            ("est_error_", "_lo"),
            ("est_error_", "_hi"),
        )
    ),
)


def _stored(row: PatientIndicesRow, name: str, version: str) -> StoredPatient:
    def get(column: str) -> float:
        return none_to_nan(getattr(row, column))

    estimates = {}
    for index in INDICES:
        column = INDEX_COLUMNS[index]
        value = getattr(row, f"est_error_{column}")
        if value is not None:
            estimates[index] = Estimate(
                value=float(value), lo=get(f"est_error_{column}_lo"), hi=get(f"est_error_{column}_hi")
            )
    return StoredPatient(
        segmenter_name=name,
        segmenter_version=version,
        case_key=row.case_key,
        complete=bool(row.complete),
        missing=tuple(row.missing),
        values={i: get(INDEX_COLUMNS[i]) for i in INDICES},
        pgt={i: get(f"pgt_{INDEX_COLUMNS[i]}") for i in INDICES},
        pseudo_error={i: get(f"pseudo_error_{INDEX_COLUMNS[i]}") for i in INDICES},
        estimates=estimates,
        flag=row.flag,
        reasons=tuple(row.reasons),
        calibration_version=row.calibration_version,
        updated_at=row.updated_at,
        ed_file_id=row.ed_file_id,
        es_file_id=row.es_file_id,
    )


def list_patients(
    session: Session,
    *,
    segmenters: Sequence[str] | None = None,
    since: datetime | None = None,
    complete_only: bool = False,
    limit: int | None = None,
) -> list[StoredPatient]:
    """Stored patient rows, newest first.

    Args:
        segmenters: segmenter names to keep (None: all).
        since: rows updated at or after this time (timezone-aware).
        complete_only: leave out cases still waiting for a frame.
        limit: at most this many rows.
    """
    query = (
        sa.select(PatientIndicesRow, Segmenter.name, Segmenter.version)
        .join(Segmenter, Segmenter.id == PatientIndicesRow.segmenter_id)
        .order_by(PatientIndicesRow.updated_at.desc(), PatientIndicesRow.id.desc())
    )
    if segmenters:
        query = query.where(Segmenter.name.in_(list(segmenters)))
    if since is not None:
        query = query.where(PatientIndicesRow.updated_at >= aware(since, "since"))
    if complete_only:
        query = query.where(PatientIndicesRow.complete.is_(True))
    if limit is not None:
        query = query.limit(limit)
    with read_transaction(session):
        return [_stored(row, name, version) for row, name, version in session.execute(query).all()]


def patient_frame(session: Session, **filters: Any) -> Any:
    """``list_patients`` as a DataFrame with ``PATIENT_COLUMNS`` (NaN for undefined values)."""
    import pandas as pd

    records = []
    for p in list_patients(session, **filters):
        record: dict[str, Any] = {
            "segmenter": p.segmenter_name,
            "segmenter_version": p.segmenter_version,
            "case_key": p.case_key,
            "complete": p.complete,
            "missing": ";".join(p.missing),
            "flag": str(p.flag) if p.flag is not None else None,
            "reasons": ";".join(p.reasons),
            "calibration_version": p.calibration_version,
            "updated_at": p.updated_at,
        }
        for index in INDICES:
            column = INDEX_COLUMNS[index]
            estimate = p.estimates.get(index)
            record[column] = p.values[index]
            record[f"pgt_{column}"] = p.pgt[index]
            record[f"pseudo_error_{column}"] = p.pseudo_error[index]
            record[f"est_error_{column}"] = estimate.value if estimate else math.nan
            record[f"est_error_{column}_lo"] = estimate.lo if estimate else math.nan
            record[f"est_error_{column}_hi"] = estimate.hi if estimate else math.nan
        records.append(record)
    return pd.DataFrame.from_records(records, columns=list(PATIENT_COLUMNS))


def write_patients(session: Session, path: Path | str, **filters: Any) -> int:
    """Write ``patient_frame`` to ``path`` (``.csv`` or ``.parquet``, through a temporary file in the same
    folder); returns the number of rows.

    Raises: ValueError for another suffix; OSError when the file cannot be written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"patients file must end in .csv or .parquet, got {target.name!r}")
    frame = patient_frame(session, **filters)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.assign(updated_at=frame["updated_at"].astype("datetime64[us, UTC]")).to_parquet(
                tmp, index=False
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return len(frame)
