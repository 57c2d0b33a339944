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
