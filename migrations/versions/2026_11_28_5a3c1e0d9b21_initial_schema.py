"""Initial schema: segmenters, monitor models, mask files, structure scores, artifacts, reviews.

Revision ID: 5a3c1e0d9b21
Revises:
Create Date: 2026-11-28 09:40:32+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5a3c1e0d9b21"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as of this revision (migrations never import the live models).
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FLAG_LEVELS = ("ok", "suspicious", "erroneous")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _enum(*values: str, name: str, length: int) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=length)


def upgrade() -> None:
    op.create_table(
        "segmenters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segmenters")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_segmenters_name_version")),
    )
    op.create_table(
        "monitor_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_hash", sa.String(length=128), nullable=False),
        sa.Column("metadata_json", sa.JSON(), nullable=False),
        sa.Column("registered_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_models")),
        sa.UniqueConstraint("checkpoint_hash", name=op.f("uq_monitor_models_checkpoint_hash")),
    )
    op.create_table(
        "mask_files",
        sa.Column("id", _BigId, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=128), nullable=False),
        sa.Column("case_key", sa.String(length=200), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=True),
        sa.Column("site", sa.String(length=200), nullable=True),
        sa.Column("scanner", sa.String(length=200), nullable=True),
        sa.Column("image_path", sa.Text(), nullable=True),
        sa.Column("segmenter_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            _enum("pending", "scoring", "scored", "rejected", name="status", length=16),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", _utc(), nullable=True),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("scored_at", _utc(), nullable=True),
        sa.Column("rejected_at", _utc(), nullable=True),
        sa.Column("rejection_reason", sa.String(length=64), nullable=True),
        sa.Column("rejection_detail", sa.Text(), nullable=True),
        sa.Column("flag", _enum(*_FLAG_LEVELS, name="flag", length=16), nullable=True),
        sa.Column("shape_z", sa.Integer(), nullable=True),
        sa.Column("shape_y", sa.Integer(), nullable=True),
        sa.Column("shape_x", sa.Integer(), nullable=True),
        sa.Column("spacing_z_mm", sa.Float(), nullable=True),
        sa.Column("spacing_y_mm", sa.Float(), nullable=True),
        sa.Column("spacing_x_mm", sa.Float(), nullable=True),
        sa.Column("slices_scored", sa.Integer(), nullable=True),
        sa.Column("timings_s", sa.JSON(), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_mask_files_attempts_non_negative")),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["monitor_models.id"],
            name=op.f("fk_mask_files_model_id_monitor_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["segmenter_id"],
            ["segmenters.id"],
            name=op.f("fk_mask_files_segmenter_id_segmenters"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mask_files")),
        sa.UniqueConstraint("path", "content_hash", name=op.f("uq_mask_files_path_content_hash")),
    )
    # queue: claim the oldest pending; reclaim expired leases
    op.create_index("ix_mask_files_status_received_at", "mask_files", ["status", "received_at"])
    op.create_index("ix_mask_files_status_lease_expires_at", "mask_files", ["status", "lease_expires_at"])
    # dashboard: time range, flag and segmenter filters; case look-up
    op.create_index("ix_mask_files_scored_at", "mask_files", ["scored_at"])
    op.create_index("ix_mask_files_flag_scored_at", "mask_files", ["flag", "scored_at"])
    op.create_index("ix_mask_files_segmenter_id_scored_at", "mask_files", ["segmenter_id", "scored_at"])
    op.create_index("ix_mask_files_case_key", "mask_files", ["case_key"])

    op.create_table(
        "structure_scores",
        sa.Column("id", _BigId, nullable=False),
        sa.Column("file_id", _BigId, nullable=False),
        sa.Column("structure", _enum("LV", "RV", "MYO", name="structure", length=8), nullable=False),
        sa.Column("pdsc", sa.Float(), nullable=True),
        sa.Column("phd_mm", sa.Float(), nullable=True),
        sa.Column("flag", _enum(*_FLAG_LEVELS, name="flag", length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("mask_voxels", sa.BigInteger(), nullable=False),
        sa.Column("pgt_voxels", sa.BigInteger(), nullable=False),
        sa.Column("mask_volume_ml", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["mask_files.id"],
            name=op.f("fk_structure_scores_file_id_mask_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_structure_scores")),
        sa.UniqueConstraint("file_id", "structure", name=op.f("uq_structure_scores_file_id_structure")),
    )
    op.create_index("ix_structure_scores_structure_flag", "structure_scores", ["structure", "flag"])

    op.create_table(
        "artifacts",
        sa.Column("id", _BigId, nullable=False),
        sa.Column("file_id", _BigId, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["mask_files.id"], name=op.f("fk_artifacts_file_id_mask_files"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.UniqueConstraint("file_id", "kind", name=op.f("uq_artifacts_file_id_kind")),
    )

    op.create_table(
        "reviews",
        sa.Column("id", _BigId, nullable=False),
        sa.Column("file_id", _BigId, nullable=False),
        sa.Column(
            "verdict",
            _enum("confirmed", "false_alarm", "unsure", name="verdict", length=16),
            nullable=False,
        ),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewed_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["mask_files.id"], name=op.f("fk_reviews_file_id_mask_files"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index("ix_reviews_file_id_reviewed_at", "reviews", ["file_id", "reviewed_at"])


def downgrade() -> None:
    op.drop_table("reviews")
    op.drop_table("artifacts")
    op.drop_table("structure_scores")
    op.drop_table("mask_files")
    op.drop_table("monitor_models")
    op.drop_table("segmenters")
