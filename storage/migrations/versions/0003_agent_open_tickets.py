"""agents.open_tickets: the open-ticket count assignment reads, filled from the tickets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

def upgrade() -> None:
    # A plain ADD COLUMN (SQLite and PostgreSQL both have it): no table rebuild, which SQLite's foreign keys
    # from tickets and team_members would refuse.
    op.add_column("agents", sa.Column("open_tickets", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE agents SET open_tickets = (SELECT count(*) FROM tickets WHERE tickets.assignee_id = agents.id"
        " AND tickets.stage NOT IN ('resolved', 'closed'))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE agents DROP COLUMN open_tickets")  # SQLite 3.35+, no table rebuild
    else:
        op.drop_column("agents", "open_tickets")
