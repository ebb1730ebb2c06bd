"""Calibrated estimates: eDSC/eHD with intervals per structure, the calibration version per file, and
the realized metrics of cases with ground truth.

- ``structure_scores``: ``edsc``, ``edsc_lo``, ``edsc_hi`` (Dice 0-1) and ``ehd_mm``, ``ehd_mm_lo``,
  ``ehd_mm_hi`` (mm), NULL where no calibration ran or the structure is missing;
- ``mask_files.calibration_version``: the calibration that produced the estimates (NULL: none);
- ``realized_metrics``: the real Dice and HD (mm) of a scored file's structures against its ground
  truth, with where they came from (``calibrate``, ``evaluate``, ``demo``), for the dashboard's
  "estimated vs realized" view.

Upgrade adds NULL columns and the new table (no rows change); downgrade drops them.

Revision ID: e14a0calibrate
Revises: e13a0evidence
Create Date: 2026-12-09 09:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e14a0calibrate"
down_revision: str | Sequence[str] | None = "e13a0evidence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ESTIMATES = ("edsc", "edsc_lo", "edsc_hi", "ehd_mm", "ehd_mm_lo", "ehd_mm_hi")


def upgrade() -> None:
    with op.batch_alter_table("structure_scores", schema=None) as batch_op:
        for name in _ESTIMATES:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
    with op.batch_alter_table("mask_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calibration_version", sa.String(length=64), nullable=True))
    op.create_table(
        "realized_metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "structure",
            sa.Enum("LV", "RV", "MYO", name="structure", native_enum=False, create_constraint=True, length=8),
            nullable=False,
        ),
        sa.Column("dsc", sa.Float(), nullable=True),
        sa.Column("hd_mm", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["mask_files.id"],
            name=op.f("fk_realized_metrics_file_id_mask_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realized_metrics")),
        sa.UniqueConstraint("file_id", "structure", name=op.f("uq_realized_metrics_file_id_structure")),
    )


def downgrade() -> None:
    op.drop_table("realized_metrics")
    with op.batch_alter_table("mask_files", schema=None) as batch_op:
        batch_op.drop_column("calibration_version")
    with op.batch_alter_table("structure_scores", schema=None) as batch_op:
        for name in reversed(_ESTIMATES):
            batch_op.drop_column(name)
