"""action_requests: execution by partner systems (executing → executed/failed, the timeout), handoff reason

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "handoff_reason",
    "executing_at",
    "execution_deadline_at",
    "timed_out_at",
    "completed_at",
    "completed_by_key_id",
    "external_ref",
    "outcome_message",
)
_PENDING = "status = 'executing' AND timed_out_at IS NULL"


def upgrade() -> None:
    op.add_column("action_requests", sa.Column("handoff_reason", sa.Text(), nullable=True))
    # Plain ADD COLUMNs (no table rebuild, which SQLite's foreign keys would refuse); all nullable.
    op.add_column("action_requests", sa.Column("executing_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column("action_requests", sa.Column("execution_deadline_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column("action_requests", sa.Column("timed_out_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column("action_requests", sa.Column("completed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column("action_requests", sa.Column("completed_by_key_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
    op.add_column("action_requests", sa.Column("external_ref", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
    op.add_column("action_requests", sa.Column("outcome_message", sa.Text(), nullable=True))
    op.create_index(
        "ix_action_requests_execution_pending",
        "action_requests",
        ["execution_deadline_at"],
        unique=False,
        sqlite_where=sa.text(_PENDING),
        postgresql_where=sa.text(_PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_action_requests_execution_pending", table_name="action_requests")
    for column in _COLUMNS:
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE action_requests DROP COLUMN {column}")  # SQLite 3.35+, no rebuild
        else:
            op.drop_column("action_requests", column)
