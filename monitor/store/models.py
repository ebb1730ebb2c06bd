"""SQLAlchemy 2 ORM models of the results database.

Private to ``monitor.store``: rows never leave the package; the repository functions return the plain
records of ``monitor.store.records``. Every timestamp is timezone-aware UTC (``UTCDateTime``). Undefined
metrics (pDSC or pHD of an empty structure, ``nan`` in the records) are stored as NULL, so that SQLite and
PostgreSQL agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.store.records import FileStatus, ReviewVerdict

__all__ = [
    "NAMING_CONVENTION",
    "Artifact",
    "Base",
    "MaskFile",
    "MonitorModel",
    "PatientIndicesRow",
    "RealizedMetric",
    "Review",
    "Segmenter",
    "StructureScoreRow",
    "UTCDateTime",
    "VolumeClinicalRow",
]

#: Constraint and index names, so that migrations can address them on every dialect.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: 64-bit keys on PostgreSQL; SQLite needs INTEGER for its rowid alias (it is 64-bit anyway).
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamp: ``timestamptz`` on PostgreSQL, naive UTC text on SQLite.

    Binding a naive datetime raises ``ValueError``; results are always aware and in UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamps must be timezone-aware, got naive {value.isoformat()}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum(cls: type[Enum], name: str, length: int) -> sa.Enum:
    """A VARCHAR + CHECK enum that stores the members' values (``"scored"``, not ``"SCORED"``)."""
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    """Declarative base with the naming convention on its metadata."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


class Segmenter(Base):
    """A segmentation model (name and version) whose masks are monitored."""

    __tablename__ = "segmenters"
    __table_args__ = (sa.UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    version: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime]


class MonitorModel(Base):
    """An autoencoder checkpoint that produced scores, identified by its content hash."""

    __tablename__ = "monitor_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_hash: Mapped[str] = mapped_column(sa.String(128), unique=True)
    metadata_json: Mapped[dict[str, Any]]
    registered_at: Mapped[datetime]


class MaskFile(Base):
    """One received mask file (one version of the bytes at one path) and its place in the queue."""

    __tablename__ = "mask_files"
    __table_args__ = (
        sa.UniqueConstraint("path", "content_hash"),
        sa.CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        # claim_batch: oldest pending first; reclaim_expired: scoring rows by lease
        sa.Index("ix_mask_files_status_received_at", "status", "received_at"),
        sa.Index("ix_mask_files_status_lease_expires_at", "status", "lease_expires_at"),
        # dashboard: time range, flag level and segmenter filters over scored files. The time series
        # and histograms filter on status and a range of scored_at (the status-only indexes above
        # would walk every scored file of the history for a one-day range); segmenter_id and flag
        # make the file counts index-only on SQLite.
        sa.Index("ix_mask_files_status_scored_at", "status", "scored_at", "segmenter_id", "flag"),
        # status_counts: files per segmenter, status and flag in index order (no table scan, no sort)
        sa.Index("ix_mask_files_segmenter_id_status_flag", "segmenter_id", "status", "flag", "scored_at"),
        sa.Index("ix_mask_files_scored_at", "scored_at"),
        sa.Index("ix_mask_files_flag_scored_at", "flag", "scored_at"),
        sa.Index("ix_mask_files_segmenter_id_scored_at", "segmenter_id", "scored_at"),
        sa.Index("ix_mask_files_case_key", "case_key"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    path: Mapped[str] = mapped_column(sa.Text)
    content_hash: Mapped[str] = mapped_column(sa.String(128))
    case_key: Mapped[str] = mapped_column(sa.String(200))
    phase: Mapped[str | None] = mapped_column(sa.String(32))
    site: Mapped[str | None] = mapped_column(sa.String(200))
    scanner: Mapped[str | None] = mapped_column(sa.String(200))
    image_path: Mapped[str | None] = mapped_column(sa.Text)
    segmenter_id: Mapped[int] = mapped_column(sa.ForeignKey("segmenters.id", ondelete="RESTRICT"))
    model_id: Mapped[int | None] = mapped_column(sa.ForeignKey("monitor_models.id", ondelete="RESTRICT"))

    status: Mapped[FileStatus] = mapped_column(_enum(FileStatus, "status", 16))
    attempts: Mapped[int] = mapped_column(default=0)
    worker_id: Mapped[str | None] = mapped_column(sa.String(200))
    lease_expires_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    scored_at: Mapped[datetime | None]
    rejected_at: Mapped[datetime | None]
    rejection_reason: Mapped[str | None] = mapped_column(sa.String(64))
    rejection_detail: Mapped[str | None] = mapped_column(sa.Text)
    #: NULL for the path's current row (the content most recently delivered there); otherwise when
    #: another content replaced it at the path
    superseded_at: Mapped[datetime | None]

    flag: Mapped[FlagLevel | None] = mapped_column(_enum(FlagLevel, "flag", 16))
    shape_z: Mapped[int | None]
    shape_y: Mapped[int | None]
    shape_x: Mapped[int | None]
    spacing_z_mm: Mapped[float | None] = mapped_column(sa.Float)
    spacing_y_mm: Mapped[float | None] = mapped_column(sa.Float)
    spacing_x_mm: Mapped[float | None] = mapped_column(sa.Float)
    slices_scored: Mapped[int | None]
    timings_s: Mapped[dict[str, Any] | None]
    #: whether an MR image was used as evidence; NULL until scored (and for files scored before e13a0evidence)
    image_used: Mapped[bool | None] = mapped_column(sa.Boolean)
    #: why no image was used (``monitor.io.images``: not_found, geometry_mismatch, disabled, ...); NULL if used
    image_reason: Mapped[str | None] = mapped_column(sa.String(64))
    image_detail: Mapped[str | None] = mapped_column(sa.Text)  #: that reason as a sentence
    calibration_version: Mapped[str | None] = mapped_column(sa.String(64))  #: calibration of the estimates

    segmenter: Mapped[Segmenter] = relationship(lazy="joined", innerjoin=True)
    model: Mapped[MonitorModel | None] = relationship()
    scores: Mapped[list[StructureScoreRow]] = relationship(
        back_populates="file", cascade="all, delete-orphan", passive_deletes=True
    )
    artifacts: Mapped[list[Artifact]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    reviews: Mapped[list[Review]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class StructureScoreRow(Base):
    """Pseudo metrics and flag of one structure of one scored file."""

    __tablename__ = "structure_scores"
    __table_args__ = (
        sa.UniqueConstraint("file_id", "structure"),
        sa.Index("ix_structure_scores_structure_flag", "structure", "flag"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("mask_files.id", ondelete="CASCADE"))
    structure: Mapped[Structure] = mapped_column(_enum(Structure, "structure", 8))
    pdsc: Mapped[float | None] = mapped_column(sa.Float)
    phd_mm: Mapped[float | None] = mapped_column(sa.Float)
    flag: Mapped[FlagLevel] = mapped_column(_enum(FlagLevel, "flag", 16))
    reasons: Mapped[list[str]] = mapped_column(sa.JSON)
    mask_voxels: Mapped[int] = mapped_column(sa.BigInteger)
    pgt_voxels: Mapped[int] = mapped_column(sa.BigInteger)
    mask_volume_ml: Mapped[float] = mapped_column(sa.Float)
    #: refined pseudo Dice / Hausdorff (mm) against the 3D-refined pGT and the structure's volume in it
    #: (ml); NULL when undefined or scored before e13a0evidence
    pdsc_3d: Mapped[float | None] = mapped_column(sa.Float)
    phd_mm_3d: Mapped[float | None] = mapped_column(sa.Float)
    pgt_volume_ml: Mapped[float | None] = mapped_column(sa.Float)
    #: the checks run on the structure: [{"code", "value" (null when not finite), "passed", "slices"}];
    #: NULL for rows scored before e13a0evidence
    evidence: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON)
    #: calibrated estimates (``monitor.qc.calibration``): Dice 0-1 and HD in mm, with 90 % intervals
    edsc: Mapped[float | None] = mapped_column(sa.Float)
    edsc_lo: Mapped[float | None] = mapped_column(sa.Float)
    edsc_hi: Mapped[float | None] = mapped_column(sa.Float)
    ehd_mm: Mapped[float | None] = mapped_column(sa.Float)
    ehd_mm_lo: Mapped[float | None] = mapped_column(sa.Float)
    ehd_mm_hi: Mapped[float | None] = mapped_column(sa.Float)
    #: the calibration's failure model: P(real Dice < 0.5 or real HD > 50 mm), 0-1; NULL without one
    #: (or for thresholds it was not fitted for, or rows scored before e25a0pfailure)
    p_failure: Mapped[float | None] = mapped_column(sa.Float)

    file: Mapped[MaskFile] = relationship(back_populates="scores")


class RealizedMetric(Base):
    """The real Dice and HD (mm) of one structure of a scored file, against its ground truth."""

    __tablename__ = "realized_metrics"
    __table_args__ = (sa.UniqueConstraint("file_id", "structure"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("mask_files.id", ondelete="CASCADE"))
    structure: Mapped[Structure] = mapped_column(_enum(Structure, "structure", 8))
    dsc: Mapped[float | None] = mapped_column(sa.Float)  #: real Dice (0-1); NULL when undefined
    hd_mm: Mapped[float | None] = mapped_column(
        sa.Float
    )  #: real Hausdorff distance (mm); NULL when undefined
    source: Mapped[str] = mapped_column(sa.String(32))  #: ``calibrate``, ``evaluate`` or ``demo``
    recorded_at: Mapped[datetime]


class Artifact(Base):
    """A file written while scoring (pseudo ground truth, inconsistency map), by kind."""

    __tablename__ = "artifacts"
    __table_args__ = (sa.UniqueConstraint("file_id", "kind"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("mask_files.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(64))
    path: Mapped[str] = mapped_column(sa.Text)


class Review(Base):
    """A QA reviewer's verdict on a scored file."""

    __tablename__ = "reviews"
    __table_args__ = (sa.Index("ix_reviews_file_id_reviewed_at", "file_id", "reviewed_at"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("mask_files.id", ondelete="CASCADE"))
    verdict: Mapped[ReviewVerdict] = mapped_column(_enum(ReviewVerdict, "verdict", 16))
    reviewer: Mapped[str] = mapped_column(sa.String(200))
    note: Mapped[str | None] = mapped_column(sa.Text)
    reviewed_at: Mapped[datetime]


class VolumeClinicalRow(Base):
    """Clinical volumes of one scored file: its mask and its (refined) pGT, plus the estimator's inputs."""

    __tablename__ = "volume_clinical"

    file_id: Mapped[int] = mapped_column(sa.ForeignKey("mask_files.id", ondelete="CASCADE"), primary_key=True)
    lv_volume_ml: Mapped[float] = mapped_column(sa.Float)
    rv_volume_ml: Mapped[float] = mapped_column(sa.Float)
    myo_volume_ml: Mapped[float] = mapped_column(sa.Float)
    lv_mass_g: Mapped[float] = mapped_column(sa.Float)
    pgt_lv_volume_ml: Mapped[float] = mapped_column(sa.Float)
    pgt_rv_volume_ml: Mapped[float] = mapped_column(sa.Float)
    pgt_myo_volume_ml: Mapped[float] = mapped_column(sa.Float)
    pgt_lv_mass_g: Mapped[float] = mapped_column(sa.Float)
    #: slice counts, per-slice LV volumes, pDSC and pHD (``VolumeIndices``), for the error estimator
    extent_json: Mapped[dict[str, Any]]


class PatientIndicesRow(Base):
    """Clinical indices of one case of one segmenter (ED + ES), their pseudo and estimated errors.

    Units: ml, percent (EF; its errors in percentage points), g. ``complete`` is false while a frame is
    missing (``missing`` names it); values are NULL then.
    """

    __tablename__ = "patient_indices"
    __table_args__ = (
        sa.UniqueConstraint("segmenter_id", "case_key"),
        sa.Index("ix_patient_indices_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    segmenter_id: Mapped[int] = mapped_column(sa.ForeignKey("segmenters.id", ondelete="RESTRICT"))
    case_key: Mapped[str] = mapped_column(sa.String(200))
    ed_file_id: Mapped[int | None] = mapped_column(sa.ForeignKey("mask_files.id", ondelete="SET NULL"))
    es_file_id: Mapped[int | None] = mapped_column(sa.ForeignKey("mask_files.id", ondelete="SET NULL"))
    complete: Mapped[bool] = mapped_column(sa.Boolean)
    missing: Mapped[list[str]] = mapped_column(sa.JSON)
    lv_edv_ml: Mapped[float | None] = mapped_column(sa.Float)
    lv_esv_ml: Mapped[float | None] = mapped_column(sa.Float)
    lv_ef_pct: Mapped[float | None] = mapped_column(sa.Float)
    rv_edv_ml: Mapped[float | None] = mapped_column(sa.Float)
    rv_esv_ml: Mapped[float | None] = mapped_column(sa.Float)
    rv_ef_pct: Mapped[float | None] = mapped_column(sa.Float)
    lv_mass_g: Mapped[float | None] = mapped_column(sa.Float)
    pgt_lv_edv_ml: Mapped[float | None] = mapped_column(sa.Float)
    pgt_lv_esv_ml: Mapped[float | None] = mapped_column(sa.Float)
    pgt_lv_ef_pct: Mapped[float | None] = mapped_column(sa.Float)
    pgt_rv_edv_ml: Mapped[float | None] = mapped_column(sa.Float)
    pgt_rv_esv_ml: Mapped[float | None] = mapped_column(sa.Float)
    pgt_rv_ef_pct: Mapped[float | None] = mapped_column(sa.Float)
    pgt_lv_mass_g: Mapped[float | None] = mapped_column(sa.Float)
    pseudo_error_lv_edv_ml: Mapped[float | None] = mapped_column(sa.Float)
    pseudo_error_lv_esv_ml: Mapped[float | None] = mapped_column(sa.Float)
    pseudo_error_lv_ef_pct: Mapped[float | None] = mapped_column(sa.Float)
    pseudo_error_rv_edv_ml: Mapped[float | None] = mapped_column(sa.Float)
    pseudo_error_rv_esv_ml: Mapped[float | None] = mapped_column(sa.Float)
    pseudo_error_rv_ef_pct: Mapped[float | None] = mapped_column(sa.Float)
    pseudo_error_lv_mass_g: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_edv_ml: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_esv_ml: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_ef_pct: Mapped[float | None] = mapped_column(sa.Float)
    est_error_rv_edv_ml: Mapped[float | None] = mapped_column(sa.Float)
    est_error_rv_esv_ml: Mapped[float | None] = mapped_column(sa.Float)
    est_error_rv_ef_pct: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_mass_g: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_edv_ml_lo: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_edv_ml_hi: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_esv_ml_lo: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_esv_ml_hi: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_ef_pct_lo: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_ef_pct_hi: Mapped[float | None] = mapped_column(sa.Float)
    est_error_rv_edv_ml_lo: Mapped[float | None] = mapped_column(sa.Float)
    est_error_rv_edv_ml_hi: Mapped[float | None] = mapped_column(sa.Float)
    est_error_rv_esv_ml_lo: Mapped[float | None] = mapped_column(sa.Float)
    est_error_rv_esv_ml_hi: Mapped[float | None] = mapped_column(sa.Float)
    est_error_rv_ef_pct_lo: Mapped[float | None] = mapped_column(sa.Float)
    est_error_rv_ef_pct_hi: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_mass_g_lo: Mapped[float | None] = mapped_column(sa.Float)
    est_error_lv_mass_g_hi: Mapped[float | None] = mapped_column(sa.Float)
    flag: Mapped[FlagLevel | None] = mapped_column(_enum(FlagLevel, "flag", 16))
    reasons: Mapped[list[str]] = mapped_column(sa.JSON)
    calibration_version: Mapped[str | None] = mapped_column(sa.String(100))
    updated_at: Mapped[datetime]
