"""Migrations: the initial migration builds exactly the tables the models describe, on both back-ends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import storage.tables  # noqa: F401
from storage.db import Database
from storage.migrate import current_revision, upgrade


def test_models_match_migrations(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_fresh_sqlite_is_created_with_wal_and_foreign_keys(fresh_sqlite_url: str) -> None:
    db = Database.from_url(fresh_sqlite_url)
    upgrade(db.engine)
    upgrade(db.engine)  # idempotent
    assert current_revision(db.engine) is not None
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_the_sla_breach_scan_reads_the_partial_indexes(database: Database) -> None:
    """The scheduler's breach scan must not read every ticket: its plan uses the two partial indexes."""
    from datetime import UTC, datetime

    from sqlalchemy.dialects import postgresql, sqlite

    from workflow.scheduler import _breach_query

    query = _breach_query(datetime(2026, 1, 1, tzinfo=UTC), None)
    dialect = postgresql.dialect() if database.is_postgres else sqlite.dialect()  # type: ignore[no-untyped-call]
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    with database.engine.connect() as conn:
        if database.is_postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")  # the test table is tiny; ask for the index plan
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
        else:
            plan = "\n".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        conn.rollback()
    assert "ix_tickets_first_response_pending" in plan and "ix_tickets_resolution_pending" in plan, plan
