"""merchants.decision_retention_days: how long decision records of closed tickets are kept (NULL: for ever)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("merchants", sa.Column("decision_retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE merchants DROP COLUMN decision_retention_days")  # SQLite 3.35+
    else:
        op.drop_column("merchants", "decision_retention_days")
