"""Failure probability: ``structure_scores.p_failure``, the calibration's failure model's P(real Dice
< 0.5 or real HD > 50 mm) for the structure (0-1), beside the estimates it was computed with.

NULL where no calibration ran, the calibration has no failure model, the flag thresholds differ from
those it was fitted for, the structure is missing from the mask, and for rows scored before this
revision. Upgrade adds the NULL column (no rows change); downgrade drops it.

Revision ID: e25a0pfailure
Revises: e18a0clinical
Create Date: 2026-12-07 23:20:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e25a0pfailure"
down_revision: str | Sequence[str] | None = "e18a0clinical"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("structure_scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("p_failure", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("structure_scores", schema=None) as batch_op:
        batch_op.drop_column("p_failure")
