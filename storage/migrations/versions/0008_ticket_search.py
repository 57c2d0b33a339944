"""ticket search: indexes for the list's filters and sorts, and a text index per back-end

SQLite: an FTS5 table over the searchable columns with ``content='tickets'`` (external content: the text
is stored once, in ``tickets``), kept in step by triggers that fire only when a searchable column changes.
PostgreSQL: a GIN index on a ``tsvector`` expression (``storage.search.PG_DOCUMENT``), matched by the same
expression in the query. Neither is a model: ``storage.search`` names them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_tickets_merchant_updated", ["merchant_id", "updated_at", "id"]),
    ("ix_tickets_merchant_stage_entered", ["merchant_id", "stage_entered_at", "id"]),
    ("ix_tickets_merchant_team", ["merchant_id", "team_id", "created_at"]),
    ("ix_tickets_merchant_category", ["merchant_id", "category", "created_at"]),
    ("ix_tickets_merchant_email", ["merchant_id", "customer_email"]),
    ("ix_tickets_merchant_order", ["merchant_id", "order_id"]),
)

# Spelled out here rather than imported: a migration keeps the text it was written with.
SEARCHED = "subject, body, customer_email, customer_name, order_id, tags"
PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace("
    "coalesce(subject, '') || ' ' || coalesce(body, '') || ' ' || coalesce(customer_email, '') || ' ' || "
    "coalesce(customer_name, '') || ' ' || coalesce(order_id, '') || ' ' || coalesce(tags::text, ''), "
    "'[^[:alnum:]]+', ' ', 'g'))"
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "tickets", columns, unique=False)
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"CREATE VIRTUAL TABLE tickets_fts USING fts5({SEARCHED}, content='tickets', content_rowid='rowid',"
            " tokenize='unicode61 remove_diacritics 2')"
        )
        new = ", ".join(f"new.{c.strip()}" for c in SEARCHED.split(","))
        old = ", ".join(f"old.{c.strip()}" for c in SEARCHED.split(","))
        op.execute(
            f"CREATE TRIGGER tickets_fts_insert AFTER INSERT ON tickets BEGIN "
            f"INSERT INTO tickets_fts(rowid, {SEARCHED}) VALUES (new.rowid, {new}); END"
        )
        op.execute(
            f"CREATE TRIGGER tickets_fts_delete AFTER DELETE ON tickets BEGIN "
            f"INSERT INTO tickets_fts(tickets_fts, rowid, {SEARCHED}) VALUES ('delete', old.rowid, {old}); END"
        )
        op.execute(
            f"CREATE TRIGGER tickets_fts_update AFTER UPDATE OF {SEARCHED} ON tickets BEGIN "
            f"INSERT INTO tickets_fts(tickets_fts, rowid, {SEARCHED}) VALUES ('delete', old.rowid, {old}); "
            f"INSERT INTO tickets_fts(rowid, {SEARCHED}) VALUES (new.rowid, {new}); END"
        )
        op.execute("INSERT INTO tickets_fts(tickets_fts) VALUES ('rebuild')")  # the tickets already there
    else:
        op.execute(f"CREATE INDEX ix_tickets_search ON tickets USING gin (({PG_DOCUMENT}))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("tickets_fts_insert", "tickets_fts_delete", "tickets_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS tickets_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_tickets_search")
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="tickets")
