"""One current row per path: ``mask_files.superseded_at``.

A path's content may change and come back (A -> B -> A), or vanish and be restored. From this revision
the row of the content most recently delivered to a path is its *current* row (``superseded_at`` NULL);
every other row of the path holds the time another content replaced it. ``enqueue_file`` keeps this up
to date; see docs/daemon.md ("Content that changes or comes back").

Upgrade: the column is added (NULL) and every row that is not its path's latest (by id, which follows
the order of arrival) gets the ``received_at`` of the next row of its path. One statement; on SQLite
about a second per 100,000 files, on PostgreSQL a rewrite of the rows that change. Downgrade drops the
column.

Revision ID: 24fccc99a2e1
Revises: ffe6b88b15b0
Create Date: 2026-12-08 09:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "24fccc99a2e1"
down_revision: str | Sequence[str] | None = "ffe6b88b15b0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mask_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE mask_files SET superseded_at = ("
        " SELECT min(later.received_at) FROM mask_files AS later"
        " WHERE later.path = mask_files.path AND later.id > mask_files.id)"
        " WHERE EXISTS ("
        " SELECT 1 FROM mask_files AS later WHERE later.path = mask_files.path AND later.id > mask_files.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("mask_files", schema=None) as batch_op:
        batch_op.drop_column("superseded_at")
