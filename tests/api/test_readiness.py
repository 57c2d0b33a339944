"""``/readyz`` (database reachable, migrations at the shipped head) beside ``/healthz``; the server's
retention loop through the app's lifespan; the scheduler's in-flight tick finishing on shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import func, select

from bookbag.app import create_app
from storage.db import Database
from storage.migrate import head_revision, upgrade
from storage.tables import StageTransition, Ticket
from tests.conftest import MerchantKeys
from workflow import scheduler
from workflow.scheduler import SchedulerLoop, TickReport
from workflow.services import WorkflowServices

from .conftest import Api, create_ticket, make_settings


async def get(app: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path)


async def test_readyz_is_ok_on_a_migrated_database(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["migration"] == head_revision()


async def test_readyz_refuses_until_the_migrations_ran(
    fresh_sqlite_url: str, services: WorkflowServices
) -> None:
    database = Database.from_url(fresh_sqlite_url)
    app = create_app(make_settings(fresh_sqlite_url), services=services, database=database)
    response = await get(app, "/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "database": "reachable",
        "migration": None,
        "expected": head_revision(),
    }
    assert (await get(app, "/healthz")).status_code == 200  # alive, just not ready
    upgrade(database.engine)
    assert (await get(app, "/readyz")).status_code == 200
    database.dispose()


async def test_readyz_refuses_an_unreachable_database(services: WorkflowServices) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    app = create_app(make_settings(url), services=services)
    response = await get(app, "/readyz")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


async def test_the_retention_loop_runs_in_the_server(
    api: Api,
    make_merchant: Callable[..., MerchantKeys],
    database: Database,
    database_url: str,
    services: WorkflowServices,
) -> None:
    merchant = make_merchant()
    ticket_id = (await create_ticket(api, merchant.keys["partner"]))["ticket"]["id"]
    with database.unit_of_work() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.stage, ticket.stage_entered_at = "closed", datetime.now(UTC) - timedelta(days=100)
        session.add(ticket)

    def transitions() -> int:
        with database.read_only() as session:
            query = (
                select(func.count())
                .select_from(StageTransition)
                .where(StageTransition.ticket_id == ticket_id)
            )
            return int(session.exec(query).one())

    assert transitions() > 0
    settings = make_settings(
        database_url, retention_closed_days=90, retention_interval_seconds=0.05, scheduler_interval_seconds=0
    )
    app = create_app(settings, services=services, database=database)
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 20
        while transitions():
            assert time.monotonic() < deadline, "the retention loop did not prune"
            await asyncio.sleep(0.05)
    with database.read_only() as session:
        assert session.get(Ticket, ticket_id) is not None  # the ticket itself stays


async def test_a_tick_in_flight_finishes_before_shutdown_goes_on(
    monkeypatch: pytest.MonkeyPatch, database: Database, services: WorkflowServices
) -> None:
    started, finished = threading.Event(), threading.Event()

    def slow_tick(*_args: Any, **_kwargs: Any) -> TickReport:
        started.set()
        time.sleep(0.5)
        finished.set()
        return TickReport(now=datetime.now(UTC))

    monkeypatch.setattr(scheduler, "run_due_work", slow_tick)
    loop = SchedulerLoop(database, services, interval=10)
    task = asyncio.create_task(loop.run())
    while not started.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not finished.is_set()  # cancelled mid-tick ...
    await loop.drain()
    assert finished.is_set()  # ... and drain waited for its unit of work
