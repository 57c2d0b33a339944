"""Two real server processes on PostgreSQL: a change committed through process A reaches a queueUpdates
subscriber on process B (LISTEN/NOTIFY); both processes' schedulers racing fire each escalation exactly once;
a crashed scheduler loses nothing — the due work is found again from the database after a restart; a key
revoked through A closes its websockets on B at once; ``bookbag serve`` caps websocket messages."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import func, select
from websockets.exceptions import ConnectionClosed

from storage.db import Database
from storage.tables import AuditEvent, EscalationFiring, Ticket
from tests.conftest import MerchantKeys, assert_open_counts_match, count_rows
from tests.waiting import eventually
from workflow.demo.seed import create_demo_teams

from .conftest import LiveWorld
from .servers import QUEUE_UPDATES, TICKET_EVENTS, ProcessServer, WsClient, create_ticket, gql

# Each test starts real server processes (a few seconds each).
pytestmark = [pytest.mark.slow, pytest.mark.processes]


@pytest.fixture
def pg(database: Database, database_url: str) -> str:
    if not database.is_postgres:
        pytest.skip("several server processes need PostgreSQL (SQLite is the single-process embedded mode)")
    return database_url


@pytest.fixture
def servers(pg: str) -> Iterator[Callable[..., ProcessServer]]:
    started: list[ProcessServer] = []

    def start(**env: str) -> ProcessServer:
        values = {
            "BOOKBAG_QUEUE_COALESCE_SECONDS": "0.05",
            "BOOKBAG_QUEUE_SAFETY_CHECK_SECONDS": "2",
            "BOOKBAG_SCHEDULER_INTERVAL_SECONDS": "0",
            **env,
        }
        server = ProcessServer(pg, env=values)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


async def test_a_change_through_process_a_reaches_a_subscriber_on_process_b(
    servers: Callable[..., ProcessServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    a, b = servers(), servers()
    merchant = make_merchant()
    ws = await WsClient.open(b.ws, merchant.keys["viewer"])
    await ws.ack()
    sid = await ws.subscribe(QUEUE_UPDATES)
    first = (await ws.next_data(sid))["queueUpdates"]
    assert first["openCount"] == 0

    for expected in (1, 2, 3):
        sent = time.monotonic()
        ticket = await create_ticket(a.http, merchant.keys["partner"])
        update = (await ws.next_data(sid, timeout=10))["queueUpdates"]
        while update["openCount"] < expected:  # (never expected, but a partial snapshot would not be wrong)
            update = (await ws.next_data(sid, timeout=10))["queueUpdates"]
        assert update["openCount"] == expected
        assert any(s["oldestTicketId"] for s in update["stages"])
        print(f"A -> B delivery {1000 * (time.monotonic() - sent):.0f} ms (ticket {ticket['id']})")
    await ws.close()


async def test_two_processes_fire_each_escalation_exactly_once(
    servers: Callable[..., ProcessServer], world: LiveWorld, database: Database
) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    ids = [world.create_ticket(past) for _ in range(30)]
    servers(BOOKBAG_SCHEDULER_INTERVAL_SECONDS="0.1")
    servers(BOOKBAG_SCHEDULER_INTERVAL_SECONDS="0.1")

    await eventually(
        lambda: count_rows(database, EscalationFiring, world.merchant_id) >= 30,
        timeout=60,
        interval=0.1,
        what="30 escalations fired",
    )
    await asyncio.sleep(1.5)  # both schedulers keep ticking: nothing may fire a second time
    assert count_rows(database, EscalationFiring, world.merchant_id) == 30
    assert count_rows(database, AuditEvent, world.merchant_id, kind="ticket.escalated") == 30
    with database.read_only() as session:
        stages = session.exec(select(Ticket.stage).where(Ticket.merchant_id == world.merchant_id)).all()
    assert sorted(stages) == ["escalated"] * len(ids)


async def test_a_crashed_scheduler_loses_nothing(
    servers: Callable[..., ProcessServer], world: LiveWorld, database: Database
) -> None:
    server = servers(BOOKBAG_SCHEDULER_INTERVAL_SECONDS="0.1")
    server.crash()
    # Work becomes due while no scheduler runs at all.
    past = datetime.now(UTC) - timedelta(hours=1)
    ids = [world.create_ticket(past) for _ in range(5)]
    assert count_rows(database, EscalationFiring, world.merchant_id) == 0
    servers(BOOKBAG_SCHEDULER_INTERVAL_SECONDS="0.1")  # "the restart"
    await eventually(
        lambda: count_rows(database, EscalationFiring, world.merchant_id) >= len(ids),
        timeout=60,
        interval=0.1,
        what="the due escalations found after the restart",
    )
    assert count_rows(database, AuditEvent, world.merchant_id, kind="ticket.escalated") == len(ids)


async def test_ticket_events_committed_through_a_reach_a_subscriber_on_b(
    servers: Callable[..., ProcessServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    a, b = servers(), servers()
    merchant = make_merchant()
    ws = await WsClient.open(b.ws, merchant.keys["agent"])
    await ws.ack()
    sid = await ws.subscribe(TICKET_EVENTS)
    await asyncio.sleep(0.5)  # the subscription is registered on B's bus
    ticket = await create_ticket(a.http, merchant.keys["partner"])
    kinds = []
    while "transitioned" not in kinds:
        event = (await ws.next_data(sid, timeout=10))["ticketEvents"]
        assert event["ticketId"] == ticket["id"]
        kinds.append(event["kind"])
    assert kinds[0] == "created"
    # Each event arrives once on B (B's own relay does not echo it back).
    with pytest.raises(TimeoutError):
        while True:
            event = (await ws.next_data(sid, timeout=1.0))["ticketEvents"]
            kinds.append(event["kind"])
            assert kinds.count("created") == 1
    await ws.close()


CREATE_WITH_KEY = """mutation Create($input: CreateTicketInput!, $key: String) {
  createTicket(input: $input, idempotencyKey: $key) { replayed errors { code message } ticket { id } } }"""


async def test_one_idempotency_key_sent_to_both_processes_at_once_creates_one_ticket(
    servers: Callable[..., ProcessServer], make_merchant: Callable[..., MerchantKeys], database: Database
) -> None:
    """Both processes group-commit createTicket; a key racing between them must still create exactly one
    ticket (the losing group fails on the key's primary key, is rerun request by request, and replays). The
    merchant has teams, so both processes also assign (round robin) in the same groups."""
    a, b = servers(), servers()
    merchant = make_merchant()
    with database.unit_of_work() as session:
        create_demo_teams(session, merchant.merchant_id)
    key = merchant.keys["partner"]
    keyed = {"input": {"subject": "parcel lost", "body": "ordered ten days ago"}}

    async def send(client: httpx.AsyncClient, variables: dict[str, Any]) -> dict[str, object]:
        response = await client.post(
            "/graphql",
            json={"query": CREATE_WITH_KEY, "variables": variables},
            headers={"authorization": f"Bearer {key}"},
        )
        payload: dict[str, object] = response.json()["data"]["createTicket"]
        return payload

    async with (
        httpx.AsyncClient(base_url=a.http, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.http, timeout=30) as on_b,
    ):
        for round_ in range(5):
            racing = {**keyed, "key": f"race-{round_}"}
            plain = [{"input": {"subject": f"other {round_}.{n}", "body": "where is it"}} for n in range(4)]
            sends = [send(client, racing) for client in (on_a, on_b) for _ in range(4)]
            sends += [send(client, v) for client in (on_a, on_b) for v in plain]
            payloads = await asyncio.gather(*sends)
            raced, others = payloads[:8], payloads[8:]
            assert all(p["errors"] == [] for p in payloads), payloads
            ids = {p["ticket"]["id"] for p in raced}  # type: ignore[index]
            assert len(ids) == 1, raced
            assert sum(1 for p in raced if p["replayed"] is False) == 1
            assert len({p["ticket"]["id"] for p in others}) == 8  # type: ignore[index]
    assert count_rows(database, Ticket, merchant.merchant_id) == 5 * (1 + 8)
    with database.read_only() as session:  # the support agent who knows shipping took tickets up to capacity
        query = select(func.count()).select_from(Ticket).where(Ticket.merchant_id == merchant.merchant_id)
        assigned = session.exec(query.where(Ticket.assignee_id.is_not(None))).one()  # type: ignore[union-attr]
    assert assigned == 25
    assert_open_counts_match(database, merchant.merchant_id)


REVOKE = "mutation Revoke($id: ID!) { revokeApiKey(id: $id) { errors { code } apiKey { revokedAt } } }"


async def closed_with(ws: WsClient, timeout: float) -> tuple[int, str, float]:
    started = time.monotonic()
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.receive(timeout=max(0.01, timeout - (time.monotonic() - started)))
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason, time.monotonic() - started


async def test_revoking_a_key_through_a_closes_its_sockets_on_b(
    servers: Callable[..., ProcessServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    """The revocation's NOTIFY reaches B at once: B's sockets of the key close and B's HTTP refuses it,
    though B's auth cache (60 s) and its periodic key check (every 60 s) would have trusted it for a minute."""
    a, b = servers(BOOKBAG_AUTH_CACHE_SECONDS="60"), servers(BOOKBAG_AUTH_CACHE_SECONDS="60")
    merchant = make_merchant()
    viewer = await WsClient.open(b.ws, merchant.keys["viewer"])
    await viewer.ack()
    queue_sid = await viewer.subscribe(QUEUE_UPDATES)
    await viewer.next_data(queue_sid)
    admin = await WsClient.open(b.ws, merchant.keys["admin"])
    await admin.ack()
    events_sid = await admin.subscribe(TICKET_EVENTS)
    await asyncio.sleep(0.5)  # registered on B's bus
    await create_ticket(a.http, merchant.keys["partner"])
    await viewer.next_data(queue_sid)
    assert (await admin.next_data(events_sid))["ticketEvents"]["kind"] == "created"
    me = {"query": "{ me { role } }"}
    async with httpx.AsyncClient(base_url=b.http, timeout=30) as on_b:
        cached = await on_b.post(
            "/graphql", json=me, headers={"authorization": f"Bearer {merchant.keys['viewer']}"}
        )
        assert cached.status_code == 200  # B now trusts the viewer key for 60 s

        revoked = await gql(a.http, merchant.keys["admin"], REVOKE, {"id": merchant.key_ids["viewer"]})
        assert revoked["revokeApiKey"]["apiKey"]["revokedAt"]
        code, reason, took = await closed_with(viewer, timeout=10)
        assert (code, reason) == (4403, "API key revoked") and took < 3
        refused = await on_b.post(
            "/graphql", json=me, headers={"authorization": f"Bearer {merchant.keys['viewer']}"}
        )
        assert refused.status_code == 401

        # The admin key revoked (through A) while its socket on B streams: closed, so nothing more runs on it.
        await gql(a.http, merchant.keys["admin"], REVOKE, {"id": merchant.key_ids["admin"]})
        code, reason, took = await closed_with(admin, timeout=10)
        assert (code, reason) == (4403, "API key revoked") and took < 3


async def test_bookbag_serve_caps_websocket_messages_like_http_bodies(
    servers: Callable[..., ProcessServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    server = servers(BOOKBAG_MAX_BODY_BYTES="4096")  # run_server passes it to uvicorn as ws_max_size
    merchant = make_merchant()
    ws = await WsClient.open(server.ws, merchant.keys["viewer"])
    await ws.ack()
    await ws.conn.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "#" + "x" * 10_000}}))
    code, _, _ = await closed_with(ws, timeout=10)
    assert code == 1009
