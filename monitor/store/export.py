"""Export of the results: one row per file and structure, as an iterator, a DataFrame, CSV or Parquet.

Files without structure scores (pending, scoring, rejected) give one row whose structure columns are
empty, so every file appears. Undefined metrics (nan) are empty cells in CSV and nulls in Parquet.
``pdsc``/``phd_mm`` are the paper's plain pseudo metrics, ``pdsc_3d``/``phd_mm_3d`` the refined ones;
``evidence`` is the structure's checks as JSON text (``[{"code", "value", "passed", "slices"}]``);
``p_failure`` the calibration's failure model's P(real Dice < 0.5 or real HD > 50 mm), 0-1, empty when
unknown (no calibration or failure model, or scored before ``e25a0pfailure``); after it the calibrated
estimates ``edsc``, ``edsc_lo``, ``edsc_hi`` (real Dice, 0-1, with its 90 % interval) and ``ehd_mm``,
``ehd_mm_lo``, ``ehd_mm_hi`` (real HD in mm), empty without a calibration or for a structure missing from
the mask, and the file's ``calibration_version`` (empty when scored without one). New columns are added at
the end, so the earlier ones keep their positions.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from monitor.qc.labels import STRUCTURES
from monitor.qc.records import ESTIMATE_FIELDS
from monitor.store._sql import FILE_IDENTITY, STRUCTURE_SCORE, latest_verdict
from monitor.store._tx import read_transaction
from monitor.store.models import Artifact, MaskFile, MonitorModel, Segmenter, StructureScoreRow
from monitor.store.records import ARTIFACT_INCONSISTENCY, ARTIFACT_PGT, FileStatus

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["EXPORT_COLUMNS", "EXPORT_FORMATS", "export_frame", "iter_export_rows", "write_export"]

#: Columns of the export, in order (units in the names: mm, ml; times are UTC).
EXPORT_COLUMNS: tuple[str, ...] = (
    "file_id",
    "path",
    "content_hash",
    "case_key",
    "phase",
    "site",
    "scanner",
    "image_path",
    "segmenter_name",
    "segmenter_version",
    "status",
    "attempts",
    "received_at",
    "started_at",
    "scored_at",
    "rejected_at",
    "rejection_reason",
    "rejection_detail",
    "flag",
    "shape_z",
    "shape_y",
    "shape_x",
    "spacing_z_mm",
    "spacing_y_mm",
    "spacing_x_mm",
    "slices_scored",
    "image_used",
    "image_reason",
    "model_checkpoint_hash",
    "pgt_path",
    "inconsistency_path",
    "review_verdict",
    "structure",
    "pdsc",
    "phd_mm",
    "structure_flag",
    "reasons",
    "mask_voxels",
    "pgt_voxels",
    "mask_volume_ml",
    "pdsc_3d",
    "phd_mm_3d",
    "pgt_volume_ml",
    "evidence",
    "p_failure",
    *ESTIMATE_FIELDS,
    "calibration_version",
)
#: File suffixes ``write_export`` understands.
EXPORT_FORMATS: tuple[str, ...] = (".csv", ".parquet")
_INT = ("file_id", "attempts", "shape_z", "shape_y", "shape_x", "slices_scored", "mask_voxels", "pgt_voxels")
_FLOAT = (
    "spacing_z_mm",
    "spacing_y_mm",
    "spacing_x_mm",
    "pdsc",
    "phd_mm",
    "mask_volume_ml",
    "pdsc_3d",
    "phd_mm_3d",
    "pgt_volume_ml",
    "p_failure",
    *ESTIMATE_FIELDS,
)
_TIME = ("received_at", "started_at", "scored_at", "rejected_at")
_ENUMS = ("status", "flag", "review_verdict", "structure", "structure_flag")


def iter_export_rows(
    session: Session,
    *,
    status: FileStatus | str | None = None,
    batch_size: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Yield one dict per file and structure (keys ``EXPORT_COLUMNS``), by file id and LV, RV, MYO.

    Rows are streamed from the database ``batch_size`` at a time (a server-side cursor on PostgreSQL).

    Args:
        status: keep only files with this status.
        batch_size: rows fetched per round trip (>= 1).
    Raises: ValueError for a bad status or batch size; DatabaseUnavailable.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pgt = aliased(Artifact)
    inconsistency = aliased(Artifact)
    rank = sa.case(*((StructureScoreRow.structure == s, i) for i, s in enumerate(STRUCTURES)), else_=None)
    stmt = (
        sa.select(
            *FILE_IDENTITY,
            MaskFile.status,
            MaskFile.attempts,
            MaskFile.received_at,
            MaskFile.started_at,
            MaskFile.scored_at,
            MaskFile.rejected_at,
            MaskFile.rejection_reason,
            MaskFile.rejection_detail,
            MaskFile.flag,
            MaskFile.shape_z,
            MaskFile.shape_y,
            MaskFile.shape_x,
            MaskFile.spacing_z_mm,
            MaskFile.spacing_y_mm,
            MaskFile.spacing_x_mm,
            MaskFile.slices_scored,
            MaskFile.image_used,
            MaskFile.image_reason,
            MonitorModel.checkpoint_hash,
            pgt.path,
            inconsistency.path,
            latest_verdict(),
            *STRUCTURE_SCORE,
            MaskFile.calibration_version,
        )
        .join(Segmenter, MaskFile.segmenter_id == Segmenter.id)
        .outerjoin(MonitorModel, MaskFile.model_id == MonitorModel.id)
        .outerjoin(pgt, sa.and_(pgt.file_id == MaskFile.id, pgt.kind == ARTIFACT_PGT))
        .outerjoin(
            inconsistency,
            sa.and_(inconsistency.file_id == MaskFile.id, inconsistency.kind == ARTIFACT_INCONSISTENCY),
        )
        .outerjoin(StructureScoreRow, StructureScoreRow.file_id == MaskFile.id)
        .order_by(MaskFile.id, rank)
    )
    if status is not None:
        stmt = stmt.where(MaskFile.status == FileStatus(status))
    with read_transaction(session):
        result = session.execute(stmt, execution_options={"yield_per": batch_size})
        for row in result:
            record = dict(zip(EXPORT_COLUMNS, row, strict=True))
            for name in _ENUMS:
                if record[name] is not None:
                    record[name] = str(record[name])
            reasons = record["reasons"]
            record["reasons"] = "; ".join(reasons) if reasons is not None else None
            evidence = record["evidence"]
            record["evidence"] = json.dumps(evidence, separators=(",", ":")) if evidence is not None else None
            yield record


def export_frame(session: Session, *, status: FileStatus | str | None = None) -> pd.DataFrame:
    """The export as a DataFrame: integer columns are nullable ``Int64``, times UTC, undefined metrics
    nan and missing text None."""
    import pandas as pd
    import pyarrow as pa

    rows = list(iter_export_rows(session, status=status))
    table = pa.Table.from_pylist(rows, schema=_arrow_schema())
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def write_export(
    session: Session, out: Path | str, *, status: FileStatus | str | None = None, batch_size: int = 5000
) -> int:
    """Write the export to ``out`` (``.csv`` or ``.parquet``, chosen by suffix) and return the row count.

    The file is written next to ``out`` under a temporary name and renamed into place when complete.

    Raises: ValueError for another suffix; OSError when the folder is not writable; DatabaseUnavailable.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise ValueError(f"export file must end in {' or '.join(EXPORT_FORMATS)}, got {out.name!r}")
    partial = out.with_name(f".{out.name}.partial")
    rows = iter_export_rows(session, status=status, batch_size=batch_size)
    try:
        count = _write_csv(rows, partial) if suffix == ".csv" else _write_parquet(rows, partial, batch_size)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _write_csv(rows: Iterator[dict[str, Any]], path: Path) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        for row in rows:
            writer.writerow([_csv_cell(row[name]) for name in EXPORT_COLUMNS])
            count += 1
    return count


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _write_parquet(rows: Iterator[dict[str, Any]], path: Path, batch_size: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema()
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            count += len(batch)
    return count


def _arrow_schema() -> pa.Schema:
    """Arrow types of ``EXPORT_COLUMNS`` (fixed, so every batch and an empty export agree)."""
    import pyarrow as pa

    def arrow_type(name: str) -> pa.DataType:
        if name in _INT:
            return pa.int64()
        if name in _FLOAT:
            return pa.float64()
        if name in _TIME:
            return pa.timestamp("us", tz="UTC")
        if name == "image_used":
            return pa.bool_()
        return pa.string()

    return pa.schema([pa.field(name, arrow_type(name)) for name in EXPORT_COLUMNS])
