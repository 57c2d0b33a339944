"""``/metrics`` through real HTTP, on SQLite and PostgreSQL: off by default, the bearer token, and the values
after known operations — operations by name (bounded), errors by code, policy decisions, group-commit
sizes, classifier calls, the queue per stage (aggregate and per merchant, checked against the database),
database pool gauges; on a virtual clock, SLA breaches and escalations fired by the scheduler loop."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import col, func, select

from bookbag.app import create_app
from storage.db import Database
from storage.migrate import upgrade
from storage.tables import EscalationFiring, Ticket
from tests.conftest import MerchantKeys
from workflow.live.bus import EventBus
from workflow.metrics import NoMetrics
from workflow.services import WorkflowServices
from workflow.stages import OPEN_STAGES

from .conftest import CREATE, Api, make_settings

TOKEN = "scrape-secret"
NAMED = "query Mine { me { role } }"
UNNAMED = "{ me { role } }"
REQUEST = """mutation Act($t: ID!) { requestAction(input: {ticketId: $t, type: REFUND, amount: 5000}) {
  errors { code } decision { effect } } }"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def metrics_api(
    database_url: str, database: Database, services: WorkflowServices
) -> AsyncIterator[tuple[Api, Callable[..., Any]]]:
    settings = make_settings(database_url, metrics=True, metrics_token=TOKEN, metrics_per_merchant=True)
    app = create_app(settings, services=services, database=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        api = Api(client)

        async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            response = await client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain")
            return samples(response.text)

        yield api, scrape
    services.metrics = NoMetrics()  # the session's services outlive this app (no lifespan ran to reset it)


async def test_metrics_are_off_by_default(api: Api) -> None:
    response = await api.client.get("/metrics")
    assert response.status_code == 404


async def test_metrics_need_the_bearer_token(metrics_api: tuple[Api, Callable[..., Any]]) -> None:
    api, _ = metrics_api
    assert (await api.client.get("/metrics")).status_code == 401
    wrong = await api.client.get("/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "BOOKBAG_METRICS_TOKEN" in wrong.text


def test_production_refuses_metrics_without_a_token(database_url: str) -> None:
    with pytest.raises(ValueError, match="BOOKBAG_METRICS_TOKEN"):
        make_settings(database_url, env="production", metrics=True)


async def test_metric_values_after_known_operations(
    metrics_api: tuple[Api, Callable[..., Any]], merchant: MerchantKeys, database: Database
) -> None:
    api, scrape = metrics_api
    before = await scrape()
    partner = merchant.keys["partner"]
    tickets = []
    for n in range(3):
        body = await api.ok(
            CREATE, {"input": {"subject": f"where is order {n}", "body": "late"}}, key=partner
        )
        tickets.append(body["createTicket"]["ticket"]["id"])
    refused = await api.ok(CREATE, {"input": {"subject": "", "body": ""}}, key=partner)
    refused_code = refused["createTicket"]["errors"][0]["code"]
    await api.ok(NAMED, key=partner)
    await api.ok(NAMED, key=partner)
    await api.ok(UNNAMED, key=partner)
    decision = (await api.ok(REQUEST, {"t": tickets[0]}, key=merchant.keys["ai"]))["requestAction"]
    effect = decision["decision"]["effect"].lower()
    unauthenticated = await api.post({"query": NAMED}, "bb_not_a_key")
    assert unauthenticated.status_code == 401
    after = await scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # CREATE is named `Create` in tests/api/conftest.py; the refused input is a fourth createTicket
    assert grew("bookbag_graphql_operations_total", operation="Create") == 4
    assert grew("bookbag_graphql_operation_seconds_count", operation="Create") == 4
    assert grew("bookbag_graphql_operations_total", operation="Mine") == 2
    assert grew("bookbag_graphql_operations_total", operation="_other") == 1  # the unnamed one
    assert grew("bookbag_graphql_operations_total", operation="Act") == 1
    assert grew("bookbag_errors_total", code=refused_code) == 1
    assert grew("bookbag_errors_total", code="UNAUTHENTICATED") == 1
    assert grew("bookbag_policy_decisions_total", effect=effect, actor="ai", action="refund") == 1
    # one at a time here, so each group holds one request (the refused input too: the service refuses it)
    assert grew("bookbag_group_commit_size_count", operation="createTicket") == 4
    assert grew("bookbag_group_commit_size_sum", operation="createTicket") == 4
    assert grew("bookbag_classified_tickets_total") == 3
    assert grew("bookbag_classifier_seconds_count") == 3
    # the queue, per merchant and in total, as the database has it at the scrape
    assert (
        value(after, "bookbag_queue_depth", stage="assigned", merchant=merchant.slug)
        + value(after, "bookbag_queue_depth", stage="triaged", merchant=merchant.slug)
        == 3
    )
    with database.read_only() as session:
        totals = dict(
            session.exec(
                select(Ticket.stage, func.count())
                .where(col(Ticket.stage).in_(OPEN_STAGES))
                .group_by(Ticket.stage)
            ).all()
        )
    for stage, count in totals.items():
        per_merchant = sum(
            v
            for (name, labels), v in after.items()
            if name == "bookbag_queue_depth" and ("stage", stage) in labels
        )
        assert per_merchant == count
    for stage in {"assigned", "triaged"} & set(totals):
        if value(after, "bookbag_queue_depth", stage=stage, merchant=merchant.slug):
            assert value(after, "bookbag_queue_oldest_age_seconds", stage=stage, merchant=merchant.slug) >= 0
    assert value(after, "bookbag_db_pool_checked_out", engine="main") >= 0
    assert ("bookbag_websocket_connections", ()) in after


async def test_operation_names_are_capped(
    database_url: str, database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    settings = make_settings(database_url, metrics=True, metrics_max_operation_names=2)
    app = create_app(settings, services=services, database=database)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            api = Api(client)
            for name in ("One", "Two", "Three", "Four", "One"):
                await api.ok(f"query {name} {{ me {{ role }} }}", key=merchant.keys["viewer"])
            found = samples((await client.get("/metrics")).text)
    finally:
        services.metrics = NoMetrics()
    operations = {
        dict(labels)["operation"]: v
        for (name, labels), v in found.items()
        if name == "bookbag_graphql_operations_total"
    }
    assert operations == {"One": 2, "Two": 1, "_other": 2}  # Three and Four: over the cap
    # without BOOKBAG_METRICS_PER_MERCHANT the queue is one series per stage, summed over merchants
    depth = {dict(labels)["stage"]: v for (name, labels), v in found.items() if name == "bookbag_queue_depth"}
    assert all(len(labels) == 1 for (name, labels) in found if name == "bookbag_queue_depth")
    with database.read_only() as session:
        totals = session.exec(
            select(Ticket.stage, func.count())
            .where(col(Ticket.stage).in_(OPEN_STAGES))
            .group_by(Ticket.stage)
        ).all()
    assert depth == {stage: float(count) for stage, count in totals}


async def test_scheduler_breaches_and_escalations_are_counted(
    fresh_sqlite_url: str, services: WorkflowServices
) -> None:
    database = Database.from_url(fresh_sqlite_url)
    upgrade(database.engine)
    now = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    own = dataclasses.replace(services, clock=lambda: now[0], bus=EventBus())
    settings = make_settings(fresh_sqlite_url, metrics=True, scheduler_interval_seconds=0.05)
    app = create_app(settings, services=own, database=database)
    from workflow.tenancy.merchants import create_api_key, create_merchant

    with database.unit_of_work() as session:
        merchant = create_merchant(session, name="Clocked", slug="clocked")
        key = create_api_key(session, merchant_id=merchant.id, role="partner", name="p").secret
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        api = Api(client)
        for subject in ("URGENT: charged twice, refund now", "where is my parcel", "item arrived broken"):
            await api.ok(CREATE, {"input": {"subject": subject, "body": subject}}, key=key)
        now[0] += timedelta(days=30)
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            found = samples((await client.get("/metrics")).text)
            with database.read_only() as session:
                breached = session.exec(
                    select(func.count()).select_from(Ticket).where(col(Ticket.sla_breached_at).is_not(None))
                ).one()
                fired = session.exec(select(func.count()).select_from(EscalationFiring)).one()
            counted = (
                value(found, "bookbag_sla_breaches_total"),
                value(found, "bookbag_escalations_fired_total"),
            )
            if breached == 3 and counted == (breached, fired):
                break
            assert asyncio.get_running_loop().time() < deadline, (counted, breached, fired)
            await asyncio.sleep(0.05)
    database.dispose()
