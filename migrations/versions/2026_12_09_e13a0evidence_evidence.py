"""Evidence per structure and the MR image per file: refined pDSC/pHD, pGT volume, checks; image use.

``structure_scores`` gains ``pdsc_3d``, ``phd_mm_3d`` (mm) and ``pgt_volume_ml`` (the 3D-refined pGT's
scores and volume) and ``evidence`` (JSON list of ``{"code", "value", "passed", "slices"}``, the checks
of ``monitor.qc.evidence``). ``mask_files`` gains ``image_used`` (whether an MR image was used as
evidence), ``image_reason`` (why not: a short code) and ``image_detail`` (that reason as a sentence);
the image itself is ``image_path``, which scoring now fills with the image it paired.

Upgrade: the columns are added, NULL (rows scored before this revision have no evidence; readers show
them as "not computed"). No data is rewritten: instant on both dialects apart from SQLite's table copy
(batch mode), about a second per 100,000 structure rows. Downgrade drops the columns (the evidence of
rows scored since is lost; the plain scores and reason codes stay).

Revision ID: e13a0evidence
Revises: 24fccc99a2e1
Create Date: 2026-12-09 09:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e13a0evidence"
down_revision: str | Sequence[str] | None = "24fccc99a2e1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("structure_scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pdsc_3d", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("phd_mm_3d", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("pgt_volume_ml", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("evidence", sa.JSON(), nullable=True))
    with op.batch_alter_table("mask_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image_used", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("image_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("image_detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mask_files", schema=None) as batch_op:
        batch_op.drop_column("image_detail")
        batch_op.drop_column("image_reason")
        batch_op.drop_column("image_used")
    with op.batch_alter_table("structure_scores", schema=None) as batch_op:
        batch_op.drop_column("evidence")
        batch_op.drop_column("pgt_volume_ml")
        batch_op.drop_column("phd_mm_3d")
        batch_op.drop_column("pdsc_3d")
