"""Migrations: the initial migration builds exactly the tables the models describe, on both back-ends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import storage.tables  # noqa: F401
from storage.db import Database
from storage.migrate import current_revision, head_revision, include_object, upgrade


def test_models_match_migrations(database: Database) -> None:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, SQLModel.metadata)
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


def test_the_execution_timeout_scan_reads_its_partial_index(database: Database) -> None:
    """The scheduler's look for executions past their deadline reads only the executing actions."""
    from datetime import UTC, datetime

    from sqlalchemy.dialects import postgresql, sqlite

    from workflow.actions import executions_due_query

    query = executions_due_query(datetime(2026, 1, 1, tzinfo=UTC), None)
    dialect = postgresql.dialect() if database.is_postgres else sqlite.dialect()  # type: ignore[no-untyped-call]
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    with database.engine.connect() as conn:
        if database.is_postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
        else:
            plan = "\n".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        conn.rollback()
    assert "ix_action_requests_execution_pending" in plan, plan


def test_migration_0003_fills_each_agents_open_ticket_count(fresh_sqlite_url: str) -> None:
    """A database from before ``agents.open_tickets`` gets each agent's count from the tickets themselves."""
    from alembic import command
    from sqlmodel import select

    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from storage.migrate import alembic_config
    from storage.tables import Agent
    from tests.conftest import assert_open_counts_match
    from workflow.demo.seed import create_demo
    from workflow.tenancy.merchants import get_merchant_by_slug

    db = Database.from_url(fresh_sqlite_url)
    upgrade(db.engine)
    demo = create_demo(db, build_services(Settings()), slug="older", tickets=40)
    config = alembic_config(fresh_sqlite_url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")  # the column and its counts are gone
    upgrade(db.engine)  # 0003 fills the counts; later migrations must keep them
    assert current_revision(db.engine) == head_revision()
    with db.read_only() as session:
        merchant_id = get_merchant_by_slug(session, demo.slug).id
    assert_open_counts_match(db, merchant_id)
    with db.read_only() as session:
        assert sum(a.open_tickets for a in session.exec(select(Agent))) > 0
    db.dispose()


def _head(config: object) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(config).get_current_head()  # type: ignore[arg-type]
    assert head is not None
    return head


def test_migration_0006_adds_ticket_language_and_down_again(fresh_sqlite_url: str) -> None:
    """``tickets.language`` is added empty for tickets ingested before it, and the downgrade removes it."""
    from alembic import command
    from sqlalchemy import inspect

    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from storage.migrate import alembic_config
    from workflow.demo.seed import create_demo

    db = Database.from_url(fresh_sqlite_url)
    upgrade(db.engine)
    create_demo(db, build_services(Settings()), slug="langs", tickets=5)
    config = alembic_config(fresh_sqlite_url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    assert "language" not in {c["name"] for c in inspect(db.engine).get_columns("tickets")}
    upgrade(db.engine)
    assert "language" in {c["name"] for c in inspect(db.engine).get_columns("tickets")}
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM tickets WHERE language IS NULL").scalar() == 5
    db.dispose()
