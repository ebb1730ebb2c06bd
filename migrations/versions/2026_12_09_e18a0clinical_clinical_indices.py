"""Clinical indices: per-volume volumes and LV mass (``volume_clinical``) and one row per case and
segmenter with LV/RV EDV, ESV, EF, LV mass, their pseudo and estimated errors (``patient_indices``).

Two new tables; nothing existing changes, so upgrade and downgrade are instant. Files scored before
this revision have no ``volume_clinical`` row and take no part in the patient indices until rescored.

Revision ID: e18a0clinical
Revises: e14a0calibrate
Create Date: 2026-12-07 17:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e18a0clinical"
down_revision: str | Sequence[str] | None = "e14a0calibrate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as of this revision (migrations never import the live models).
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "volume_clinical",
        sa.Column("file_id", _BigId, nullable=False),
        sa.Column("lv_volume_ml", sa.Float(), nullable=False),
        sa.Column("rv_volume_ml", sa.Float(), nullable=False),
        sa.Column("myo_volume_ml", sa.Float(), nullable=False),
        sa.Column("lv_mass_g", sa.Float(), nullable=False),
        sa.Column("pgt_lv_volume_ml", sa.Float(), nullable=False),
        sa.Column("pgt_rv_volume_ml", sa.Float(), nullable=False),
        sa.Column("pgt_myo_volume_ml", sa.Float(), nullable=False),
        sa.Column("pgt_lv_mass_g", sa.Float(), nullable=False),
        sa.Column("extent_json", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["mask_files.id"],
            name=op.f("fk_volume_clinical_file_id_mask_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_volume_clinical")),
    )
    op.create_table(
        "patient_indices",
        sa.Column("id", _BigId, nullable=False),
        sa.Column("segmenter_id", sa.Integer(), nullable=False),
        sa.Column("case_key", sa.String(length=200), nullable=False),
        sa.Column("ed_file_id", _BigId, nullable=True),
        sa.Column("es_file_id", _BigId, nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("missing", sa.JSON(), nullable=False),
        sa.Column("lv_edv_ml", sa.Float(), nullable=True),
        sa.Column("lv_esv_ml", sa.Float(), nullable=True),
        sa.Column("lv_ef_pct", sa.Float(), nullable=True),
        sa.Column("rv_edv_ml", sa.Float(), nullable=True),
        sa.Column("rv_esv_ml", sa.Float(), nullable=True),
        sa.Column("rv_ef_pct", sa.Float(), nullable=True),
        sa.Column("lv_mass_g", sa.Float(), nullable=True),
        sa.Column("pgt_lv_edv_ml", sa.Float(), nullable=True),
        sa.Column("pgt_lv_esv_ml", sa.Float(), nullable=True),
        sa.Column("pgt_lv_ef_pct", sa.Float(), nullable=True),
        sa.Column("pgt_rv_edv_ml", sa.Float(), nullable=True),
        sa.Column("pgt_rv_esv_ml", sa.Float(), nullable=True),
        sa.Column("pgt_rv_ef_pct", sa.Float(), nullable=True),
        sa.Column("pgt_lv_mass_g", sa.Float(), nullable=True),
        sa.Column("pseudo_error_lv_edv_ml", sa.Float(), nullable=True),
        sa.Column("pseudo_error_lv_esv_ml", sa.Float(), nullable=True),
        sa.Column("pseudo_error_lv_ef_pct", sa.Float(), nullable=True),
        sa.Column("pseudo_error_rv_edv_ml", sa.Float(), nullable=True),
        sa.Column("pseudo_error_rv_esv_ml", sa.Float(), nullable=True),
        sa.Column("pseudo_error_rv_ef_pct", sa.Float(), nullable=True),
        sa.Column("pseudo_error_lv_mass_g", sa.Float(), nullable=True),
        sa.Column("est_error_lv_edv_ml", sa.Float(), nullable=True),
        sa.Column("est_error_lv_esv_ml", sa.Float(), nullable=True),
        sa.Column("est_error_lv_ef_pct", sa.Float(), nullable=True),
        sa.Column("est_error_rv_edv_ml", sa.Float(), nullable=True),
        sa.Column("est_error_rv_esv_ml", sa.Float(), nullable=True),
        sa.Column("est_error_rv_ef_pct", sa.Float(), nullable=True),
        sa.Column("est_error_lv_mass_g", sa.Float(), nullable=True),
        sa.Column("est_error_lv_edv_ml_lo", sa.Float(), nullable=True),
        sa.Column("est_error_lv_edv_ml_hi", sa.Float(), nullable=True),
        sa.Column("est_error_lv_esv_ml_lo", sa.Float(), nullable=True),
        sa.Column("est_error_lv_esv_ml_hi", sa.Float(), nullable=True),
        sa.Column("est_error_lv_ef_pct_lo", sa.Float(), nullable=True),
        sa.Column("est_error_lv_ef_pct_hi", sa.Float(), nullable=True),
        sa.Column("est_error_rv_edv_ml_lo", sa.Float(), nullable=True),
        sa.Column("est_error_rv_edv_ml_hi", sa.Float(), nullable=True),
        sa.Column("est_error_rv_esv_ml_lo", sa.Float(), nullable=True),
        sa.Column("est_error_rv_esv_ml_hi", sa.Float(), nullable=True),
        sa.Column("est_error_rv_ef_pct_lo", sa.Float(), nullable=True),
        sa.Column("est_error_rv_ef_pct_hi", sa.Float(), nullable=True),
        sa.Column("est_error_lv_mass_g_lo", sa.Float(), nullable=True),
        sa.Column("est_error_lv_mass_g_hi", sa.Float(), nullable=True),
        sa.Column(
            "flag",
            sa.Enum(
                "ok",
                "suspicious",
                "erroneous",
                name="flag",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("calibration_version", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["segmenter_id"],
            ["segmenters.id"],
            name=op.f("fk_patient_indices_segmenter_id_segmenters"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["ed_file_id"],
            ["mask_files.id"],
            name=op.f("fk_patient_indices_ed_file_id_mask_files"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["es_file_id"],
            ["mask_files.id"],
            name=op.f("fk_patient_indices_es_file_id_mask_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_indices")),
        sa.UniqueConstraint(
            "segmenter_id", "case_key", name=op.f("uq_patient_indices_segmenter_id_case_key")
        ),
    )
    op.create_index("ix_patient_indices_updated_at", "patient_indices", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_patient_indices_updated_at", table_name="patient_indices")
    op.drop_table("patient_indices")
    op.drop_table("volume_clinical")
