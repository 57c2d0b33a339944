"""partial indexes for the scheduler's SLA-breach scan

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_RESPONSE_PENDING = "sla_breached_at IS NULL AND first_responded_at IS NULL"
RESOLUTION_PENDING = "sla_breached_at IS NULL AND resolved_at IS NULL"


def upgrade() -> None:
    for name, column, where in (
        ("ix_tickets_first_response_pending", "first_response_due_at", FIRST_RESPONSE_PENDING),
        ("ix_tickets_resolution_pending", "resolution_due_at", RESOLUTION_PENDING),
    ):
        op.create_index(
            name,
            "tickets",
            [column],
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    op.drop_index("ix_tickets_resolution_pending", table_name="tickets")
    op.drop_index("ix_tickets_first_response_pending", table_name="tickets")
