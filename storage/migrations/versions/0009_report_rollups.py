"""report roll-ups: report_counts (per split dimension, day, metric) and each ticket's contribution

Existing tickets are counted by ``bookbag reports rebuild`` (the roll-ups are computed by the workflow's
code, which a migration does not import).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_counts",
        sa.Column("merchant_id", sa.String(length=40), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("dim", sa.String(length=20), nullable=False),
        sa.Column("metric", sa.String(length=30), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.String(length=60), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "dim", "metric", "day", "key", "value", "bin"),
    )
    op.create_table(
        "ticket_report_states",
        sa.Column("ticket_id", sa.String(length=40), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.create_index("ix_ticket_report_states_merchant_id", "ticket_report_states", ["merchant_id"])
    op.create_index("ix_corrections_merchant_ticket", "classification_corrections", ["merchant_id", "ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_corrections_merchant_ticket", table_name="classification_corrections")
    op.drop_index("ix_ticket_report_states_merchant_id", table_name="ticket_report_states")
    op.drop_table("ticket_report_states")
    op.drop_table("report_counts")
