"""classifier models: each merchant's own trained models (status, report, the model as a zip) and which is active

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "classifier_models",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("model_version", sa.String(length=80), nullable=True),
        sa.Column("baseline_version", sa.String(length=80), nullable=True),
        sa.Column("progress", sa.String(length=300), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=True),
        sa.Column("model_bytes", sa.Integer(), nullable=False),
        sa.Column("previous_model_id", sa.String(length=40), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", UTC_DATETIME(), nullable=False),
        sa.Column("heartbeat_at", UTC_DATETIME(), nullable=False),
        sa.Column("trained_at", UTC_DATETIME(), nullable=True),
        sa.Column("promoted_at", UTC_DATETIME(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant_id", "number", name="uq_classifier_models_merchant_number"),
    )
    op.create_index("ix_classifier_models_merchant_id", "classifier_models", ["merchant_id"])
    op.create_index("ix_classifier_models_status", "classifier_models", ["status", "heartbeat_at"])
    op.create_table(
        "classifier_active",
        sa.Column("merchant_id", sa.String(length=40), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("model_id", sa.String(length=40), sa.ForeignKey("classifier_models.id"), nullable=False),
        sa.Column("model_version", sa.String(length=80), nullable=False),
        sa.Column("activated_at", UTC_DATETIME(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id"),
    )


def downgrade() -> None:
    op.drop_table("classifier_active")
    op.drop_index("ix_classifier_models_status", table_name="classifier_models")
    op.drop_index("ix_classifier_models_merchant_id", table_name="classifier_models")
    op.drop_table("classifier_models")
