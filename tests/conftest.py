"""Shared test fixtures: a migrated database on SQLite (a temporary file) and on PostgreSQL.

``database`` (and ``database_url``) are parametrized over both back-ends, so a test that uses them runs
twice. Each back-end's database is created and migrated once per test session; tests stay independent by
creating their own merchants (every row is merchant-scoped), see :func:`make_merchant`.

PostgreSQL: ``BOOKBAG_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) names a
maintenance database; a fresh ``bookbag_test_<pid>`` database is created from it and dropped at the end.
When the server is unreachable the PostgreSQL variants skip locally, and FAIL when ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from storage.db import Database, normalize_url

PG_ADMIN_URL = os.environ.get("BOOKBAG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO_ROOT = Path(__file__).resolve().parent.parent


def _pg_conninfo(url: str) -> str:
    """psycopg wants a libpq URL, not SQLAlchemy's ``postgresql+psycopg://``."""
    return make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session (dropped afterwards)."""
    import psycopg

    admin = _pg_conninfo(PG_ADMIN_URL)
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {str(exc).strip().splitlines()[0]}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL is required)")
        pytest.skip(reason)
    name = f"bookbag_test_{os.getpid()}"
    with conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalize_url(PG_ADMIN_URL)).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "bookbag.sqlite3"
    return f"sqlite:///{path}"


@pytest.fixture(
    scope="session",
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(db_backend: str, request: pytest.FixtureRequest) -> str:
    """A migrated database URL for the current back-end (migrated once per session)."""
    from storage.migrate import upgrade

    fixture = "sqlite_url" if db_backend == "sqlite" else "postgres_url"
    url = str(request.getfixturevalue(fixture))
    db = Database.from_url(url)
    try:
        upgrade(db.engine)
    finally:
        db.dispose()
    return url


@pytest.fixture(scope="session")
def database(database_url: str) -> Iterator[Database]:
    from workflow.reports import rollups as report_rollups

    db = Database.from_url(database_url)
    report_rollups.install(db)  # as bookbag.app.create_app does
    yield db
    db.dispose()


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    """An empty (unmigrated) SQLite file for tests that need a database of their own."""
    return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"


@dataclass
class MerchantKeys:
    """A merchant created for one test, with one API key secret per role."""

    merchant_id: str
    slug: str
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def make_merchant(database: Database) -> Callable[..., MerchantKeys]:
    """``make_merchant(name=None, roles=(...))`` creates a merchant with a key for each role."""
    import secrets

    from workflow.tenancy.merchants import create_api_key, create_merchant

    def make(
        name: str | None = None, roles: tuple[str, ...] = ("admin", "agent", "ai", "partner", "viewer")
    ) -> MerchantKeys:
        slug = f"m-{secrets.token_hex(6)}"
        with database.unit_of_work() as session:
            merchant = create_merchant(session, name=name or slug, slug=slug)
            result = MerchantKeys(merchant_id=merchant.id, slug=slug)
            for role in roles:
                issued = create_api_key(session, merchant_id=merchant.id, role=role, name=f"{role} key")
                result.keys[role] = issued.secret
                result.key_ids[role] = issued.key.id
        return result

    return make


def assert_open_counts_match(database: Database, merchant_id: str) -> None:
    """Every agent's maintained ``open_tickets`` equals a count of their open tickets."""
    from sqlmodel import col, func, select

    from storage.tables import Agent, Ticket
    from workflow.stages import OPEN_STAGES

    with database.read_only() as session:
        kept = {
            a.id: a.open_tickets for a in session.exec(select(Agent).where(Agent.merchant_id == merchant_id))
        }
        counted = dict(
            session.exec(
                select(Ticket.assignee_id, func.count())
                .where(Ticket.merchant_id == merchant_id, col(Ticket.stage).in_(OPEN_STAGES))
                .group_by(Ticket.assignee_id)
            ).all()
        )
    assert kept == {agent_id: counted.get(agent_id, 0) for agent_id in kept}


def count_rows(database: Database, model: Any, merchant_id: str, **where: object) -> int:
    """How many rows of ``model`` the merchant has (optionally only those with the given column values)."""
    from sqlmodel import func, select

    with database.read_only() as session:
        query = select(func.count()).select_from(model).where(model.merchant_id == merchant_id)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(session.exec(query).one())


class CallCount:
    """How many times a patched function was called (see :func:`count_calls`)."""

    def __init__(self) -> None:
        self.calls = 0


def count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> CallCount:
    """Replace ``module.name`` with a wrapper that counts its calls and calls the original."""
    real = getattr(module, name)
    count = CallCount()

    def counted(*args: Any, **kwargs: Any) -> Any:
        count.calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return count
