"""Query cost and the request deadline (#12 item 3): a static cost per operation, computed before anything
executes and refused over the budget with QUERY_TOO_COSTLY (batches summed, subscriptions over websockets
included); a request past its deadline answered TIMEOUT."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, cast

import httpx
import pytest
from graphql import get_introspection_query, parse

import workflow.tickets.service
from api.build import SchemaLimits, build_schema
from bookbag.app import create_app
from classifier import Classifier
from schema.cost import operation_cost
from storage import tables
from storage.db import Database
from tests.api.conftest import CREATE, Api, create_ticket, make_settings
from tests.conftest import REPO_ROOT, MerchantKeys, count_calls, count_rows
from tests.live.servers import ThreadServer, WsClient
from tests.waiting import eventually
from workflow.services import WorkflowServices

BUDGET = SchemaLimits().max_query_cost
NESTED = "tickets(first: 100) { edges { node { id messages { id body } actions { id ticket { messages { id } } } } } }"
ALIASED = "{ " + " ".join(f"a{i}: {NESTED}" for i in range(30)) + " }"


def _cost(query: str, variables: dict[str, Any] | None = None, operation: str | None = None) -> int:
    schema = build_schema()
    return operation_cost(schema._schema, parse(query), operation, variables)


def test_the_cost_model() -> None:
    # An object costs 1, scalars nothing; a connection's `first` sizes its edges; nested lists multiply.
    assert _cost("{ me { role merchant { id } } }") == 2
    assert _cost("{ tickets(first: 100) { totalCount edges { cursor node { id subject } } } }") == 1 + 100 * 2
    assert _cost("{ tickets { edges { node { id } } } }") == 1 + 20 * 2  # the default page size
    messages = "{ tickets(first: 5) { edges { node { messages { id } } } } }"
    assert _cost(messages) == 1 + 5 * (1 + 1 + 10 * 1)  # messages: a list without a page size counts 10
    # `first` from a variable, the variable's default, and the argument's default.
    by_variable = "query($n: Int) { tickets(first: $n) { edges { node { id } } } }"
    assert _cost(by_variable, {"n": 7}) == 1 + 7 * 2
    assert _cost("query($n: Int = 3) { oldestOpenTickets(first: $n) { id } }") == 3
    assert _cost("{ oldestOpenTickets { id } }") == 10
    # Past the largest page any field accepts, the field refuses `first` itself: clamped, not charged.
    assert _cost("{ auditLog(first: 100000) { id } }") == 500
    # Aliases count once each; fragments (also nested and inline) are followed.
    assert _cost("{ a: me { role } b: me { role } }") == 2
    fragments = """
      query { tickets(first: 10) { edges { node { ...Row } } } }
      fragment Row on Ticket { id messages { id } ...More }
      fragment More on Ticket { actions { id } ... on Ticket { team { id } } }
    """
    assert _cost(fragments) == 1 + 10 * (1 + 1 + 10 + 10 + 1)
    # The operation that runs is the one counted.
    two = "query Small { me { role } } query Big { " + NESTED + " }"
    assert _cost(two, operation="Small") == 1
    assert _cost(two, operation="Big") == 1 + 100 * (1 + 1 + 10 + 10 * (1 + 1 + 10))


def test_a_fragment_spread_many_times_is_costed_without_walking_it_each_time() -> None:
    # Each fragment spreads the next one 10 times: 10**40 objects, and a walk that expands spreads
    # would never end. The cost is computed once per fragment.
    chain = [f"fragment F{i} on Ticket {{ id " + " ".join([f"...F{i + 1}"] * 10) + " }" for i in range(40)]
    chain.append("fragment F40 on Ticket { messages { id } }")
    query = '{ ticket(id: "x") { ...F0 } } ' + " ".join(chain)
    started = time.perf_counter()
    assert _cost(query) == 1 + 10**40 * 10
    assert time.perf_counter() - started < 1


def _admin_ui_documents() -> dict[str, str]:
    source = (REPO_ROOT / "admin_ui" / "static" / "js" / "queries.js").read_text()
    constants = dict(re.findall(r"const (\w+) = `(.*?)`;", source, re.S))

    def expand(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: expand(constants[m.group(1)]), text)

    documents = {
        name: expand(text)
        for name, text in constants.items()
        if text.lstrip().startswith(("query", "mutation", "subscription"))
    }
    assert len(documents) >= 12, sorted(documents)
    return documents


def test_every_admin_ui_document_and_introspection_fit_the_default_budget() -> None:
    for name, document in _admin_ui_documents().items():
        cost = _cost(document, {"first": 100})  # the largest page the UI could ask for
        assert cost <= BUDGET // 10, (name, cost)
    assert _cost(get_introspection_query()) <= BUDGET  # GraphiQL (development only)


async def test_admin_ui_queries_and_introspection_run(api: Api, merchant: MerchantKeys) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    documents = _admin_ui_documents()
    variables = {
        "OLDEST_OPEN": {"first": 12},
        "RECENT_TICKETS": {"first": 25},
        "TICKET_DETAIL": {"id": ticket["id"]},
    }
    for name in ("ME", "QUEUE", "OLDEST_OPEN", "RECENT_TICKETS", "TICKET_DETAIL", "RULESET"):
        await api.ok(documents[name], variables.get(name), key=merchant.keys["admin"])
    body = await api.raw(get_introspection_query(), key=merchant.keys["viewer"])
    assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_a_costly_operation_is_refused_before_it_runs(
    api: Api, merchant: MerchantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_ticket(api, merchant.keys["partner"])
    lists = count_calls(monkeypatch, workflow.tickets.service, "list_tickets")
    body = await api.raw(ALIASED, key=merchant.keys["viewer"])
    assert body["data"] is None
    [error] = body["errors"]
    cost = _cost(ALIASED)
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": cost, "budget": BUDGET}
    assert f"cost {cost} exceeds the budget of {BUDGET}" in error["message"]
    assert lists.calls == 0  # nothing ran: refused from the document alone
    await api.ok("{ tickets(first: 1) { edges { node { id } } } }", key=merchant.keys["viewer"])
    assert lists.calls == 1  # (the counter does see a page that runs)


async def test_the_issues_batch_is_refused_at_once(
    api: Api, merchant: MerchantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five operations of 30 aliased `tickets(first: 100)` with nested lists, sent by a viewer (40 s before)."""
    await create_ticket(api, merchant.keys["partner"])
    await api.ok("{ me { role } }", key=merchant.keys["viewer"])  # the key is checked and cached
    lists = count_calls(monkeypatch, workflow.tickets.service, "list_tickets")
    response = await api.post([{"query": ALIASED}] * 5, merchant.keys["viewer"])
    assert response.status_code == 200
    results = response.json()
    assert len(results) == 5
    for result in results:
        assert result["data"] is None
        assert result["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
        assert result["errors"][0]["extensions"]["cost"] == 5 * _cost(ALIASED)
    assert lists.calls == 0  # refused from the documents alone: no page was read


@pytest.fixture
async def small_budget_api(
    database_url: str, database: Database, services: WorkflowServices
) -> AsyncIterator[Api]:
    settings = make_settings(database_url, max_query_cost=1000)
    app = create_app(settings, services=services, database=database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Api(client)


PAGE = "query($n: Int) { tickets(first: $n) { edges { node { id } } } }"  # 1 + 2n


async def test_a_batch_shares_one_budget(small_budget_api: Api, merchant: MerchantKeys) -> None:
    viewer = merchant.keys["viewer"]
    four = await small_budget_api.post([{"query": PAGE, "variables": {"n": 100}}] * 4, viewer)  # 804
    assert [r.get("errors") for r in four.json()] == [None] * 4
    five = await small_budget_api.post([{"query": PAGE, "variables": {"n": 100}}] * 5, viewer)  # 1005
    assert five.status_code == 200
    errors = [r["errors"][0] for r in five.json()]
    assert {e["extensions"]["code"] for e in errors} == {"QUERY_TOO_COSTLY"}
    assert {e["extensions"]["cost"] for e in errors} == {1005}
    assert "budget of 1000" in errors[0]["message"]
    # The page size comes from the variables: the same document with a smaller page fits.
    small = await small_budget_api.post([{"query": PAGE, "variables": {"n": 10}}] * 5, viewer)
    assert [r.get("errors") for r in small.json()] == [None] * 5
    # One operation alone over the budget.
    alone = await small_budget_api.raw(
        "{ a: tickets(first: 100) { edges { node { messages { id } } } } }", key=viewer
    )
    assert alone["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


@pytest.fixture
def ws_server(database_url: str, database: Database, services: WorkflowServices) -> Iterator[ThreadServer]:
    settings = make_settings(database_url, max_query_cost=1000, scheduler_interval_seconds=0)
    with ThreadServer(create_app(settings, services=services, database=database)) as running:
        yield running


async def test_a_costly_subscription_is_refused_over_websockets(
    ws_server: ThreadServer, merchant: MerchantKeys
) -> None:
    # One root field only, but nested lists: 10 stages × 10 actions × 10 actions × 10 messages.
    costly = """subscription { queueUpdates { stages { oldestTicket { actions { ticket { actions {
                  ticket { messages { id } } } } } } } } }"""
    client = await WsClient.open(ws_server.ws, merchant.keys["viewer"])
    try:
        await client.ack()
        sid = await client.subscribe(costly)
        message = await client.receive()
        assert message["id"] == sid and message["type"] in {"error", "next"}, message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "QUERY_TOO_COSTLY", errors
        assert errors[0]["extensions"]["budget"] == 1000
        # The connection stays usable: a cheap subscription still gets its first snapshot.
        cheap = await client.subscribe("subscription { queueUpdates { version openCount } }")
        assert "queueUpdates" in await client.next_data(cheap)
    finally:
        await client.close()


class _SlowClassifier:
    """The real classifier, one second slower per call: work stuck in a database thread."""

    def __init__(self, inner: Any, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def predict_batch(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self._delay)
        return self._inner.predict_batch(*args, **kwargs)


async def test_a_request_past_its_deadline_is_answered_timeout(
    database_url: str,
    database: Database,
    services: WorkflowServices,
    merchant: MerchantKeys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = replace(services, classifier=cast(Classifier, _SlowClassifier(services.classifier, 1.5)))
    app = create_app(
        make_settings(database_url, request_timeout_seconds=0.3), services=slow, database=database
    )
    before = count_rows(database, tables.Ticket, merchant.merchant_id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        api = Api(client)
        started = time.perf_counter()
        body = await api.raw(
            CREATE, {"input": {"subject": "slow", "body": "b"}, "key": "slow-1"}, key=merchant.keys["partner"]
        )
        elapsed = time.perf_counter() - started
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "TIMEOUT"
        assert "0.3 s deadline" in error["message"] and "idempotencyKey" in error["message"]
        assert elapsed < 1.2, elapsed  # answered at the deadline, not when the thread finished
        # The work in the database thread could not be stopped: it runs to its end and commits. The
        # client learns the outcome by retrying with its idempotency key (replayed, not run twice).
        deadline = time.monotonic() + 10
        while count_rows(database, tables.Ticket, merchant.merchant_id) == before:
            assert time.monotonic() < deadline, "the abandoned createTicket never finished"
            await asyncio.sleep(0.05)
        fast = create_app(make_settings(database_url), services=services, database=database)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fast), base_url="http://t") as other:
            retried = await Api(other).ok(
                CREATE,
                {"input": {"subject": "slow", "body": "b"}, "key": "slow-1"},
                key=merchant.keys["partner"],
            )
        assert retried["createTicket"]["replayed"] is True
        assert count_rows(database, tables.Ticket, merchant.merchant_id) == before + 1
    assert not [r for r in caplog.records if r.exc_info], "a timeout is not a traceback"


async def test_no_deadline_when_turned_off(
    database_url: str, database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    slow = replace(services, classifier=cast(Classifier, _SlowClassifier(services.classifier, 0.4)))
    app = create_app(make_settings(database_url, request_timeout_seconds=0), services=slow, database=database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        created = await Api(client).ok(
            CREATE, {"input": {"subject": "s", "body": "b"}}, key=merchant.keys["partner"]
        )
    assert created["createTicket"]["errors"] == []


async def test_a_websocket_query_or_mutation_past_its_deadline_is_answered_timeout(
    database_url: str, database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    """Over graphql-transport-ws too: a mutation past the deadline gets an ``error`` message with TIMEOUT
    (the work it started still commits once, as over HTTP); a subscription is not cut by the deadline."""
    slow = replace(services, classifier=cast(Classifier, _SlowClassifier(services.classifier, 1.5)))
    app = create_app(
        make_settings(database_url, request_timeout_seconds=0.3), services=slow, database=database
    )
    before = count_rows(database, tables.Ticket, merchant.merchant_id)
    with ThreadServer(app) as server:
        ws = await WsClient.open(server.ws, merchant.keys["partner"])
        await ws.ack()
        sid = await ws.subscribe(CREATE, {"input": {"subject": "slow", "body": "b"}, "key": "ws-slow-1"})
        message = await ws.receive()
        assert message["id"] == sid and message["type"] == "error", message
        [error] = message["payload"]
        assert error["extensions"]["code"] == "TIMEOUT" and "0.3 s deadline" in error["message"]
        assert count_rows(database, tables.Ticket, merchant.merchant_id) == before  # answered before it ended
        await eventually(
            lambda: count_rows(database, tables.Ticket, merchant.merchant_id) == before + 1,
            what="the abandoned createTicket committed",
        )
        # A subscription waits for its events however long that takes.
        viewer = await WsClient.open(server.ws, merchant.keys["viewer"])
        await viewer.ack()
        events = await viewer.subscribe("subscription { ticketEvents { kind } }")
        await asyncio.sleep(0.6)  # twice the deadline with no event: a negative check
        await ws.subscribe(CREATE, {"input": {"subject": "later", "body": "b"}})
        assert (await viewer.next_data(events))["ticketEvents"]["kind"] == "created"
        await ws.conn.close()
        await viewer.conn.close()
