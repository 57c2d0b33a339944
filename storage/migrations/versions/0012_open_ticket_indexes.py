"""indexes whose size follows the open backlog, not the history (bench/scale_bench.py at 1M tickets)

* ``ix_tickets_open_stage_entered``: the open tickets by merchant and time in stage, for ticket lists with
  ``openOnly`` sorted by stage age (the SLA-breached view), priority or update;
* ``ix_tickets_first_response_pending`` again, leaving closed tickets out: a ticket closed without an
  answer kept its first response pending for ever, so the scheduler's breach scan read every such ticket
  of the history on each tick.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TICKET_OPEN = "stage NOT IN ('resolved', 'closed')"
FIRST_RESPONSE_PENDING_BEFORE = "sla_breached_at IS NULL AND first_responded_at IS NULL"
FIRST_RESPONSE_PENDING = f"{FIRST_RESPONSE_PENDING_BEFORE} AND {TICKET_OPEN}"


def _first_response_pending(where: str) -> None:
    op.create_index(
        "ix_tickets_first_response_pending",
        "tickets",
        ["first_response_due_at"],
        unique=False,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    op.create_index(
        "ix_tickets_open_stage_entered",
        "tickets",
        ["merchant_id", "stage_entered_at", "id"],
        unique=False,
        sqlite_where=sa.text(TICKET_OPEN),
        postgresql_where=sa.text(TICKET_OPEN),
    )
    op.drop_index("ix_tickets_first_response_pending", table_name="tickets")
    _first_response_pending(FIRST_RESPONSE_PENDING)


def downgrade() -> None:
    op.drop_index("ix_tickets_first_response_pending", table_name="tickets")
    _first_response_pending(FIRST_RESPONSE_PENDING_BEFORE)
    op.drop_index("ix_tickets_open_stage_entered", table_name="tickets")
