"""report roll-ups by week; ticket list: a partial index for a team's open tickets by priority (PostgreSQL)

``report_counts`` gets its weekly level (``workflow.reports.rollups.WEEK``): every daily row summed per ISO
week under ``dim`` ``week:<dim>``, ``day`` the week's Monday, computed here from the daily rows (the units of
work keep both from now on).

``tickets(filter: {teamId, openOnly}, orderBy: PRIORITY)`` sorts on ``CASE priority WHEN 'urgent' THEN 0 …``
(``workflow.tickets.read._sort_keys``). Without an index on that expression PostgreSQL read every ticket of the
team, open or not, to sort them (262 ms p99 at 100k tickets, bench/search_report_bench.py). This index
holds only open tickets, by merchant, team, that rank, newest first: a page is the first rows of one index
range (either direction), and the total an index-only count of the team's open tickets. The expression
and the predicate are spelled as the query compiles them, or the planner cannot match them. Not a model
(``storage.migrate.NOT_MODELS``): SQLAlchemy's index comparison does not read expressions.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 12:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported: a migration keeps the text it was written with.
PRIORITY_RANK = "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 WHEN 'low' THEN 3 ELSE 4 END"
OPEN = "stage NOT IN ('closed', 'resolved')"


COLUMNS = "merchant_id, dim, metric, day, key, value, bin, n, total"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    week = "CAST(date_trunc('week', day) AS DATE)" if postgres else "date(day, 'weekday 0', '-6 days')"
    op.execute(
        f"INSERT INTO report_counts ({COLUMNS}) "
        f"SELECT merchant_id, 'week:' || dim, metric, {week}, key, value, bin, sum(n), sum(total) "
        "FROM report_counts WHERE dim NOT LIKE 'week:%' "
        f"GROUP BY merchant_id, dim, metric, {week}, key, value, bin"
    )
    if postgres:
        op.execute(
            f"CREATE INDEX ix_tickets_open_team_priority ON tickets "
            f"(merchant_id, team_id, ({PRIORITY_RANK}), created_at DESC, id DESC) WHERE {OPEN}"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_tickets_open_team_priority")
    op.execute("DELETE FROM report_counts WHERE dim LIKE 'week:%'")
