"""Subscriptions over real websockets against a real uvicorn server, on SQLite and PostgreSQL: queueUpdates
and ticketEvents, authentication in connection_init, tenant isolation, the per-connection cap, events only
after commit, and abrupt disconnects that leave nothing behind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from websockets.exceptions import ConnectionClosed

from bookbag.app import create_app
from bookbag.settings import Settings
from storage.db import Database
from tests.conftest import MerchantKeys
from tests.waiting import eventually
from workflow.live.bus import EventBus
from workflow.services import WorkflowServices

from .servers import (
    QUEUE_UPDATES,
    TICKET_EVENTS,
    TRANSITION,
    ThreadServer,
    WsClient,
    create_ticket,
    gql,
)

CAP = 3


@pytest.fixture
def server(
    database_url: str, database: Database, loaded_services: WorkflowServices
) -> Iterator[ThreadServer]:
    settings = Settings(
        env="test",
        database_url=database_url,
        run_migrations_on_start=False,
        queue_coalesce_seconds=0.05,
        queue_safety_check_seconds=1.0,
        scheduler_interval_seconds=0,  # the scheduler has its own tests; keep this server's queue still
        max_subscriptions_per_connection=CAP,
    )
    services = replace(loaded_services, bus=EventBus())
    with ThreadServer(create_app(settings, services=services, database=database)) as running:
        yield running


def hub_of(server: ThreadServer) -> object:
    return server.app.state.bookbag.runtime.queue_hub


def stage(queue: dict[str, object], name: str) -> dict[str, object]:
    stages = queue["stages"]
    assert isinstance(stages, list)
    found: dict[str, object] = next(s for s in stages if s["stage"] == name.upper())
    return found


async def test_queue_updates_sends_a_snapshot_then_one_per_change(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant = make_merchant()
    ws = await WsClient.open(server.ws, merchant.keys["viewer"])
    await ws.ack()
    sid = await ws.subscribe(QUEUE_UPDATES)
    first = (await ws.next_data(sid))["queueUpdates"]
    assert first["version"] == 0 and first["openCount"] == 0

    ticket = await create_ticket(server.http, merchant.keys["partner"])
    update = (await ws.next_data(sid))["queueUpdates"]
    assert update["version"] > first["version"]
    assert update["openCount"] == 1
    triaged = stage(update, ticket["stage"])
    assert triaged["count"] == 1 and triaged["oldestTicketId"] == ticket["id"]
    assert triaged["oldestAgeSeconds"] is not None

    await gql(
        server.http,
        merchant.keys["agent"],
        TRANSITION,
        {"input": {"ticketId": ticket["id"], "to": "RESOLVED", "expectedVersion": ticket["version"]}},
    )
    after = (await ws.next_data(sid))["queueUpdates"]
    assert after["version"] > update["version"] and after["openCount"] == 0
    assert isinstance(after["timeInStage"], list)  # refreshed every 30 s (tests/live/test_hub.py)
    await ws.close()


async def test_another_merchants_changes_never_reach_a_subscriber(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    mine, theirs = make_merchant(), make_merchant()
    ws = await WsClient.open(server.ws, mine.keys["viewer"])
    await ws.ack()
    queue_sid = await ws.subscribe(QUEUE_UPDATES)
    await ws.next_data(queue_sid)
    events_sid = await ws.subscribe(TICKET_EVENTS)
    await asyncio.sleep(0.2)  # the ticketEvents subscription is registered on the bus
    await create_ticket(server.http, theirs.keys["partner"])
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.8)
    own = await create_ticket(server.http, mine.keys["partner"])
    seen: dict[str, object] = {}
    while queue_sid not in seen or events_sid not in seen:
        message = await ws.receive()
        assert message["type"] == "next", message
        seen.setdefault(message["id"], message["payload"]["data"])
    events = seen[events_sid]
    assert isinstance(events, dict) and events["ticketEvents"]["ticketId"] == own["id"]
    await ws.close()


async def test_ticket_events_follow_one_ticket_and_only_after_commit(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant, other = make_merchant(), make_merchant()
    ticket = await create_ticket(server.http, merchant.keys["partner"])
    ws = await WsClient.open(server.ws, merchant.keys["agent"])
    await ws.ack()
    sid = await ws.subscribe(TICKET_EVENTS, {"id": ticket["id"]})
    hub = server.app.state.bookbag.runtime.ticket_events_hub
    await eventually(lambda: hub.subscriber_count(merchant.merchant_id) == 1, what="the subscription")

    # A refused change (stale expectedVersion: CONFLICT) is rolled back and publishes nothing.
    stale = {"ticketId": ticket["id"], "to": "RESOLVED", "expectedVersion": ticket["version"] + 5}
    data = await gql(server.http, merchant.keys["agent"], TRANSITION, {"input": stale})
    assert data["transitionTicket"]["errors"][0]["code"] == "CONFLICT"
    await create_ticket(server.http, merchant.keys["partner"], subject="another ticket")  # not this one
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.8)

    good = {"ticketId": ticket["id"], "to": "RESOLVED", "expectedVersion": ticket["version"]}
    await gql(server.http, merchant.keys["agent"], TRANSITION, {"input": good})
    event = (await ws.next_data(sid))["ticketEvents"]
    assert event["kind"] == "transitioned" and event["ticketId"] == ticket["id"]
    assert event["data"]["to_stage"] == "resolved"

    # Another merchant's ticket id answers exactly like a missing one.
    ws_other = await WsClient.open(server.ws, other.keys["agent"])
    await ws_other.ack()
    for ticket_id in (ticket["id"], "tkt_doesnotexist"):
        osid = await ws_other.subscribe(TICKET_EVENTS, {"id": ticket_id})
        message = await ws_other.receive()
        assert message["id"] == osid and message["type"] in {"error", "next"}, message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "NOT_FOUND", message
        if message["type"] == "next":  # a subscription that failed at its start is then completed
            assert (await ws_other.receive()) == {"id": osid, "type": "complete"}
    await ws.close()
    await ws_other.close()


@pytest.mark.parametrize(
    "payload",
    [{}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic abc"}],
    ids=["no-key", "bad-key", "not-bearer"],
)
async def test_connection_init_without_a_valid_key_is_refused(
    server: ThreadServer, payload: dict[str, str]
) -> None:
    ws = await WsClient.open(server.ws, None, payload=payload)
    with pytest.raises(ConnectionClosed) as closed:
        await ws.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_subscribing_before_connection_init_is_refused(server: ThreadServer) -> None:
    from websockets.asyncio.client import connect

    async with connect(server.ws, subprotocols=["graphql-transport-ws"]) as conn:  # type: ignore[list-item]
        await conn.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUEUE_UPDATES}}))
        with pytest.raises(ConnectionClosed) as closed:
            await conn.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_the_legacy_graphql_ws_protocol_is_off(server: ThreadServer) -> None:
    from websockets.asyncio.client import connect

    with pytest.raises(ConnectionClosed) as refused:
        async with connect(server.ws, subprotocols=["graphql-ws"]) as conn:  # type: ignore[list-item]
            await conn.send(json.dumps({"type": "connection_init", "payload": {}}))
            await conn.recv()
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4406


async def test_subscriptions_per_connection_are_capped(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant = make_merchant()
    ws = await WsClient.open(server.ws, merchant.keys["viewer"])
    await ws.ack()
    for _ in range(CAP):
        sid = await ws.subscribe(QUEUE_UPDATES)
        await ws.next_data(sid)
    over = await ws.subscribe(QUEUE_UPDATES)
    message = await ws.receive()
    assert message["id"] == over and message["type"] == "error"
    assert "limit" in message["payload"][0]["message"].lower()
    await ws.close()


async def test_abrupt_disconnects_leave_nothing_behind(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant = make_merchant()
    hub = server.app.state.bookbag.runtime.queue_hub
    events_hub = server.app.state.bookbag.runtime.ticket_events_hub
    bus = server.app.state.bookbag.services.bus
    clients = []
    for _ in range(15):
        ws = await WsClient.open(server.ws, merchant.keys["viewer"])
        await ws.ack()
        await ws.next_data(await ws.subscribe(QUEUE_UPDATES))
        await ws.subscribe(TICKET_EVENTS)
        clients.append(ws)
    await eventually(lambda: hub.subscriber_count(merchant.merchant_id) == 15)
    await eventually(lambda: events_hub.subscriber_count(merchant.merchant_id) == 15)
    # ticketEvents are fanned out: one bus subscription for the merchant however many subscribers.
    assert bus.subscriber_count(merchant.merchant_id) == 1

    # Pull the plug: no close frame, the TCP connection just goes away (mid-burst for some of them).
    async def burst_of_writes() -> None:
        for _ in range(5):
            await create_ticket(server.http, merchant.keys["partner"])

    burst = asyncio.create_task(burst_of_writes())
    for ws in clients:
        ws.conn.transport.abort()
    await burst
    await eventually(lambda: hub.subscriber_count() == 0 and hub.channel_count() == 0)
    await eventually(lambda: events_hub.subscriber_count() == 0 and events_hub.channel_count() == 0)
    await eventually(lambda: bus.subscriber_count(merchant.merchant_id) == 0)


async def test_different_selections_on_one_connection_each_get_their_own_updates(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    """queueUpdates is executed once per snapshot and document, then fanned out: each document still gets
    exactly its own selection (with or without ``version``, aliased, with a named operation)."""
    merchant = make_merchant()
    ws = await WsClient.open(server.ws, merchant.keys["viewer"])
    await ws.ack()
    counts = await ws.subscribe("subscription { queueUpdates { openCount } }")
    assert (await ws.next_data(counts)) == {"queueUpdates": {"openCount": 0}}
    named = await ws.subscribe("subscription Dash { q: queueUpdates { version stages { stage count } } }")
    first = (await ws.next_data(named))["q"]
    assert first["version"] == 0 and len(first["stages"]) == 8
    await create_ticket(server.http, merchant.keys["partner"])
    seen: dict[str, dict[str, object]] = {}
    while len(seen) < 2:
        message = await ws.receive()
        assert message["type"] == "next" and "errors" not in message["payload"], message
        seen[message["id"]] = message["payload"]["data"]
    assert seen[counts] == {"queueUpdates": {"openCount": 1}}
    named_update = seen[named]["q"]
    assert isinstance(named_update, dict) and named_update["version"] > 0
    assert set(named_update) == {"version", "stages"}
    await ws.close()


async def test_queue_updates_can_load_the_oldest_ticket_itself(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant = make_merchant()
    ws = await WsClient.open(server.ws, merchant.keys["viewer"])
    await ws.ack()
    sid = await ws.subscribe("subscription { queueUpdates { stages { stage oldestTicket { id subject } } } }")
    await ws.next_data(sid)
    ticket = await create_ticket(server.http, merchant.keys["partner"], subject="first one")
    update = (await ws.next_data(sid))["queueUpdates"]
    loaded = next(s["oldestTicket"] for s in update["stages"] if s["stage"] == ticket["stage"])
    assert loaded == {"id": ticket["id"], "subject": "first one"}
    await ws.close()
