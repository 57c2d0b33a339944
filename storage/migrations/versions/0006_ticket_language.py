"""tickets.language: the language detected in the ticket's cleaned body at ingest (the `ticket.language` fact)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: tickets ingested before it have no language (the fact is missing for them).
    op.add_column("tickets", sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE tickets DROP COLUMN language")  # SQLite 3.35+, no table rebuild
    else:
        op.drop_column("tickets", "language")
