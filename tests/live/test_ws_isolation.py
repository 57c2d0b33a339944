"""Websocket isolation (#12) against a real uvicorn server with real websockets, on SQLite and PostgreSQL:
ticketEvents executed once per event and document and fanned out to exactly its own merchant's
subscribers; caps on connections per key and per merchant; messages over the body cap; refused operations
answered with an error message; revoked keys' sockets closed (in this process at once, and for a revocation
this process never heard of within the auth-cache time); every subscribe re-checks the key; the maximum
connection lifetime. Revocation across two server processes is in ``test_processes.py``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import graphql
import pytest
from sqlalchemy import text
from websockets.exceptions import ConnectionClosed

import bookbag.ws.protocol
from storage.db import Database
from tests.conftest import MerchantKeys
from tests.waiting import eventually
from workflow.live.bus import EventBus, TicketEvent

from .servers import QUEUE_UPDATES, TICKET_EVENTS, TRANSITION, ThreadServer, WsClient, create_ticket, gql

REVOKE = "mutation Revoke($id: ID!) { revokeApiKey(id: $id) { errors { code } apiKey { id revokedAt } } }"
MINT = 'mutation { createApiKey(role: ADMIN, name: "minted") { secret errors { code } } }'
EVENTS_PLAIN = "subscription { ticketEvents { kind ticketId data } }"


async def connected(server: ThreadServer, key: str) -> WsClient:
    ws = await WsClient.open(server.ws, key)
    await ws.ack()
    return ws


async def closed_with(ws: WsClient, timeout: float = 10) -> tuple[int, str, float]:
    """Read until the server closes the socket: (code, reason, seconds it took)."""
    started = time.monotonic()
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.receive(timeout=max(0.01, timeout - (time.monotonic() - started)))
    assert closed.value.rcvd is not None, "closed without a close frame from the server"
    return closed.value.rcvd.code, closed.value.rcvd.reason, time.monotonic() - started


async def raw_next(ws: WsClient, timeout: float = 10) -> str:
    """The next ``next`` message exactly as sent (its bytes), skipping pings."""
    while True:
        raw = await asyncio.wait_for(ws.conn.recv(), timeout)
        assert isinstance(raw, str)
        message = json.loads(raw)
        if message["type"] == "ping":
            await ws.conn.send(json.dumps({"type": "pong"}))
            continue
        assert message["type"] == "next", message
        return raw


def revoke_in_sql(database: Database, key_id: str) -> None:
    """A revocation this server never hears of (no API call, no NOTIFY): as an operator's SQL would do."""
    with database.unit_of_work() as session:
        session.connection().execute(
            text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE id = :id"), {"id": key_id}
        )


def key_count(database: Database, merchant_id: str) -> int:
    with database.read_only() as session:
        rows = session.connection().execute(
            text("SELECT count(*) FROM api_keys WHERE merchant_id = :m"), {"m": merchant_id}
        )
        return int(rows.scalar_one())


# -- ticketEvents fan-out ------------------------------------------------------------------------------------


async def test_ticket_events_are_executed_once_per_event_and_reach_only_their_merchant(
    make_server: Callable[..., ThreadServer],
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_server()
    executions: list[str] = []
    real_execute = graphql.execute

    def counting_execute(*args: Any, **kwargs: Any) -> Any:
        executions.append(json.dumps(kwargs.get("variable_values") or {}, sort_keys=True))
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(bookbag.ws.protocol, "execute", counting_execute)
    mine, theirs = make_merchant(), make_merchant()
    followed = await create_ticket(server.http, mine.keys["partner"], subject="the one being followed")
    seen: list[TicketEvent] = []
    bus = server.app.state.bookbag.services.bus
    bus.add_listener(lambda event: seen.append(event) if event.merchant_id == mine.merchant_id else None)
    events_hub = server.app.state.bookbag.runtime.ticket_events_hub

    # 12 sockets (two keys) with the same document; 3 following one ticket; 5 of another merchant.
    everything = [await connected(server, mine.keys["viewer" if n % 2 else "agent"]) for n in range(12)]
    following = [await connected(server, mine.keys["agent"]) for _ in range(3)]
    others = [await connected(server, theirs.keys["viewer"]) for _ in range(5)]
    for ws in everything + others:
        await ws.subscribe(TICKET_EVENTS)
    for ws in following:
        await ws.subscribe(TICKET_EVENTS, {"id": followed["id"]})
    await eventually(lambda: events_hub.subscriber_count(mine.merchant_id) == 15)
    await eventually(lambda: events_hub.subscriber_count(theirs.merchant_id) == 5)
    assert bus.subscriber_count(mine.merchant_id) == 1  # one bus subscription per merchant, not per socket
    executions.clear()

    created = await create_ticket(server.http, mine.keys["partner"], subject="a new one")
    moved = {"ticketId": followed["id"], "to": "RESOLVED", "expectedVersion": followed["version"]}
    result = await gql(server.http, mine.keys["agent"], TRANSITION, {"input": moved})
    assert result["transitionTicket"]["errors"] == []
    await eventually(lambda: any(e.ticket_id == followed["id"] for e in seen))
    kinds = [(e.kind, e.ticket_id) for e in seen]
    assert ("created", created["id"]) in kinds and ("transitioned", followed["id"]) in kinds

    # Every subscriber of the plain document gets every event, in order, as the very same bytes.
    frames_per_socket = [[await raw_next(ws) for _ in seen] for ws in everything]
    assert all(frames == frames_per_socket[0] for frames in frames_per_socket)
    payloads = [json.loads(frame)["payload"]["data"]["ticketEvents"] for frame in frames_per_socket[0]]
    assert [(p["kind"], p["ticketId"]) for p in payloads] == kinds
    # The followers get the followed ticket's events only.
    followed_kinds = [k for k in kinds if k[1] == followed["id"]]
    for ws in following:
        frames = [json.loads(await raw_next(ws))["payload"]["data"]["ticketEvents"] for _ in followed_kinds]
        assert [(f["kind"], f["ticketId"]) for f in frames] == followed_kinds
    # Nothing more for anyone, and nothing at all for the other merchant.
    for ws in everything + following + others:
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.05 if ws not in others else 0.3)

    # Executed once per event for the plain document (12 sockets, two roles: once per role), and once
    # per followed-ticket event for the followers' document; never for the other merchant.
    plain, by_ticket = "{}", json.dumps({"id": followed["id"]})
    assert executions.count(plain) == 2 * len(seen)
    assert executions.count(by_ticket) == len(followed_kinds)
    assert len(executions) == 2 * len(seen) + len(followed_kinds)
    for ws in everything + following + others:
        await ws.close()
    await eventually(lambda: events_hub.subscriber_count() == 0 and bus.subscriber_count() == 0)


async def test_many_subscriptions_of_one_key_cost_one_execution_per_event(
    make_server: Callable[..., ThreadServer],
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's attack: many sockets x many ticketEvents subscriptions of one viewer key."""
    server = make_server(max_subscriptions_per_connection=20)
    calls = [0]
    real_execute = graphql.execute

    def counting_execute(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(bookbag.ws.protocol, "execute", counting_execute)
    merchant = make_merchant()
    sockets = [await connected(server, merchant.keys["viewer"]) for _ in range(10)]
    for ws in sockets:
        for _ in range(20):
            await ws.subscribe(EVENTS_PLAIN)
    events_hub = server.app.state.bookbag.runtime.ticket_events_hub
    await eventually(lambda: events_hub.subscriber_count(merchant.merchant_id) == 200)
    calls[0] = 0
    seen: list[TicketEvent] = []
    server.app.state.bookbag.services.bus.add_listener(seen.append)
    await create_ticket(server.http, merchant.keys["partner"])
    for ws in sockets:
        for _ in range(20 * len(seen)):
            message = await ws.receive()
            assert message["type"] == "next" and message["payload"]["data"]["ticketEvents"]["kind"], message
    assert calls[0] == len(seen) >= 1
    for ws in sockets:
        await ws.close()


async def test_compressed_connections_take_the_slow_path_in_order_and_still_share_one_execution(
    make_server: Callable[..., ThreadServer],
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """permessage-deflate: no shared frame bytes, so every event goes through each subscriber's own task
    and the ASGI send; the payload is still executed once per event, and events keep their order."""
    server = make_server(ws_deflate=True)
    calls = [0]
    real_execute = graphql.execute

    def counting_execute(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(bookbag.ws.protocol, "execute", counting_execute)
    merchant = make_merchant()
    sockets = [await connected(server, merchant.keys["viewer"]) for _ in range(5)]
    for ws in sockets:
        await ws.subscribe(EVENTS_PLAIN)
    events_hub = server.app.state.bookbag.runtime.ticket_events_hub
    await eventually(lambda: events_hub.subscriber_count(merchant.merchant_id) == 5)
    seen: list[TicketEvent] = []
    server.app.state.bookbag.services.bus.add_listener(seen.append)
    for n in range(3):
        await create_ticket(server.http, merchant.keys["partner"], subject=f"ticket {n}")
    await eventually(lambda: len(seen) >= 3)
    expected = [(e.kind, e.ticket_id) for e in seen]
    for ws in sockets:
        got = [(await ws.next_data("1"))["ticketEvents"] for _ in expected]
        assert [(g["kind"], g["ticketId"]) for g in got] == expected
    assert calls[0] == len(expected)
    for ws in sockets:
        await ws.close()


async def test_the_event_hub_keeps_order_when_a_push_declines_and_reports_overflow() -> None:
    """workflow.live.ticket_hub on its own: what a push declines goes to the subscriber's queue, nothing is
    pushed past queued events, and a subscriber too far behind is told so."""
    from workflow.live.bus import Overflowed
    from workflow.live.ticket_hub import TicketEventHub

    bus = EventBus()
    hub = TicketEventHub(bus, max_pending=5)
    pushed: list[str] = []
    accept = [True]

    def push(event: TicketEvent) -> bool:
        if accept[0]:
            pushed.append(str(event.ticket_id))
        return accept[0]

    def publish(*ticket_ids: str, merchant: str = "m1") -> None:
        for ticket_id in ticket_ids:
            bus.publish(TicketEvent(kind="created", merchant_id=merchant, ticket_id=ticket_id))

    async with hub.subscribe("m1", push=push) as events:
        stream = aiter(events)
        publish("a", "b")
        publish("x", merchant="m2")  # another merchant: never offered
        await eventually(lambda: pushed == ["a", "b"])
        accept[0] = False  # the connection is slow now
        publish("c")
        await asyncio.sleep(0.05)
        accept[0] = True  # ready again, but "c" is queued: "d" must not overtake it
        publish("d")
        await asyncio.sleep(0.05)
        assert pushed == ["a", "b"]
        assert [(await anext(stream)).ticket_id for _ in range(2)] == ["c", "d"]
        waiting = asyncio.ensure_future(anext(stream))  # drained: the task waits, pushes resume
        publish("e")
        await eventually(lambda: pushed == ["a", "b", "e"])
        accept[0] = False
        publish(*"fghijkl")  # more than max_pending behind
        with pytest.raises(Overflowed):
            await asyncio.wait_for(waiting, 5)
    assert hub.subscriber_count() == 0 and hub.channel_count() == 0 and bus.subscriber_count() == 0


# -- refused operations -----------------------------------------------------------------------------------


async def test_refused_operations_are_answered_with_an_error_message(
    make_server: Callable[..., ThreadServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    server = make_server(max_tokens=60, max_query_depth=3)
    merchant, other = make_merchant(), make_merchant()
    foreign = await create_ticket(server.http, other.keys["partner"])
    ws = await connected(server, merchant.keys["viewer"])
    over_tokens = " ".join(["kind ticketId at data"] * 20)
    cases = {
        "tokens (ticketEvents)": ("subscription { ticketEvents { " + over_tokens + " } }", None, "tokens"),
        "tokens (queueUpdates)": ("subscription { queueUpdates { " + "version " * 70 + "} }", None, "tokens"),
        "tokens (query)": ("query { me { " + "role " * 70 + "} }", None, "tokens"),
        "validation": ("subscription { ticketEvents { nope } }", None, "nope"),
        "depth": (
            "subscription { queueUpdates { stages { oldestTicket { messages { body } } } } }",
            None,
            "depth",
        ),
        "syntax": ("subscription { ticketEvents { kind ", None, "syntax"),
        "foreign ticket": (TICKET_EVENTS, {"id": foreign["id"]}, "NOT_FOUND"),
    }
    for name, (query, variables, expected) in cases.items():
        sid = await ws.subscribe(query, variables)
        message = await ws.receive()
        assert message["id"] == sid and message["type"] == "error", (name, message)
        errors = message["payload"]
        assert isinstance(errors, list) and errors, (name, message)
        text_of = json.dumps(errors).lower()
        assert expected.lower() in text_of, (name, errors)
        with pytest.raises(TimeoutError):  # an error message ends the operation: no complete after it
            await ws.receive(timeout=0.2)
    # The socket is still open and usable.
    sid = await ws.subscribe("subscription { queueUpdates { openCount } }")
    assert (await ws.next_data(sid)) == {"queueUpdates": {"openCount": 0}}
    await ws.close()


# -- caps and sizes ---------------------------------------------------------------------------------------


async def test_connections_are_capped_per_key_and_per_merchant(
    make_server: Callable[..., ThreadServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    server = make_server(ws_max_connections_per_key=2, ws_max_connections_per_merchant=3)
    merchant, other = make_merchant(), make_merchant()
    viewers = [await connected(server, merchant.keys["viewer"]) for _ in range(2)]
    over_key = await WsClient.open(server.ws, merchant.keys["viewer"])
    code, reason, _ = await closed_with(over_key)
    assert code == 4429 and "API key" in reason and "limit 2" in reason

    agent = await connected(server, merchant.keys["agent"])  # the merchant's third
    over_merchant = await WsClient.open(server.ws, merchant.keys["agent"])
    code, reason, _ = await closed_with(over_merchant)
    assert code == 4429 and "merchant" in reason and "limit 3" in reason

    # Another merchant is not affected, and the refused ones took no slot.
    elsewhere = [await connected(server, other.keys["viewer"]) for _ in range(2)]
    sid = await viewers[0].subscribe(QUEUE_UPDATES)
    await viewers[0].next_data(sid)

    # A closed connection frees its slot.
    await viewers[1].close()
    connections = server.app.state.bookbag.ws_connections
    await eventually(lambda: connections.count(merchant_id=merchant.merchant_id) == 2)
    again = await connected(server, merchant.keys["agent"])
    for ws in [viewers[0], agent, again, *elsewhere]:
        await ws.close()
    await eventually(lambda: connections.count() == 0)


async def test_a_message_over_the_body_cap_closes_the_socket(
    make_server: Callable[..., ThreadServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    server = make_server(max_body_bytes=4096)  # ThreadServer leaves uvicorn's own 16 MiB: the handler caps
    merchant = make_merchant()
    ws = await connected(server, merchant.keys["viewer"])
    padded = "subscription { queueUpdates { openCount } }" + " " * 3000  # under the cap: fine
    assert (await ws.next_data(await ws.subscribe(padded))) == {"queueUpdates": {"openCount": 0}}
    await ws.conn.send(json.dumps({"id": "big", "type": "subscribe", "payload": {"query": "#" + "x" * 5000}}))
    code, reason, _ = await closed_with(ws)
    assert code == 1009 and "4096" in reason
    multibyte = await connected(server, merchant.keys["viewer"])  # 1,500 characters, 4,500 bytes
    await multibyte.conn.send(
        json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": "#" + "€" * 1500}}, ensure_ascii=False
        )
    )
    code, _, _ = await closed_with(multibyte)
    assert code == 1009


# -- revocation and lifetime --------------------------------------------------------------------------------


async def test_revoking_keys_closes_their_open_sockets_at_once(
    make_server: Callable[..., ThreadServer], make_merchant: Callable[..., MerchantKeys], database: Database
) -> None:
    server = make_server(auth_cache_seconds=60)  # not the periodic check: the revocation itself closes
    merchant = make_merchant(roles=("admin", "viewer", "partner"))
    second_admin = make_merchant()  # a different merchant's admin cannot revoke these keys
    viewer = await connected(server, merchant.keys["viewer"])
    sid = await viewer.subscribe(QUEUE_UPDATES)
    await viewer.next_data(sid)
    admin = await connected(server, merchant.keys["admin"])
    events_sid = await admin.subscribe(TICKET_EVENTS)
    await create_ticket(server.http, merchant.keys["partner"])
    await viewer.next_data(sid)
    assert (await admin.next_data(events_sid))["ticketEvents"]["kind"] == "created"

    refused = await gql(server.http, second_admin.keys["admin"], REVOKE, {"id": merchant.key_ids["viewer"]})
    assert refused["revokeApiKey"]["errors"] == [{"code": "NOT_FOUND"}]
    revoked = await gql(server.http, merchant.keys["admin"], REVOKE, {"id": merchant.key_ids["viewer"]})
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"]
    code, reason, took = await closed_with(viewer, timeout=5)
    assert (code, reason) == (4403, "API key revoked") and took < 2

    # The admin key revokes itself over its own socket: the socket closes, nothing more runs on it.
    keys_before = key_count(database, merchant.merchant_id)
    sid = await admin.subscribe(REVOKE, {"id": merchant.key_ids["admin"]})
    code, reason, took = await closed_with(admin, timeout=5)
    assert (code, reason) == (4403, "API key revoked") and took < 2
    assert key_count(database, merchant.merchant_id) == keys_before
    connections = server.app.state.bookbag.ws_connections
    await eventually(lambda: connections.count(merchant_id=merchant.merchant_id) == 0)
    # And the keys cannot open new ones.
    for key in (merchant.keys["viewer"], merchant.keys["admin"]):
        code, _, _ = await closed_with(await WsClient.open(server.ws, key))
        assert code == 4403


async def test_a_revoked_admin_socket_cannot_subscribe_again(
    make_server: Callable[..., ThreadServer], make_merchant: Callable[..., MerchantKeys], database: Database
) -> None:
    """Revoked where this server hears nothing of it: the next subscribe re-checks the key (auth cache off)
    and refuses, so the socket cannot mint a fresh admin key."""
    server = make_server(auth_cache_seconds=0)
    merchant = make_merchant(roles=("admin",))
    admin = await connected(server, merchant.keys["admin"])
    keys_before = key_count(database, merchant.merchant_id)
    revoke_in_sql(database, merchant.key_ids["admin"])
    await admin.subscribe(MINT)
    code, reason, _ = await closed_with(admin, timeout=5)
    assert (code, reason) == (4403, "API key revoked")
    assert key_count(database, merchant.merchant_id) == keys_before


async def test_a_key_revoked_elsewhere_closes_its_sockets_within_the_auth_cache_time(
    make_server: Callable[..., ThreadServer], make_merchant: Callable[..., MerchantKeys], database: Database
) -> None:
    server = make_server(auth_cache_seconds=1)
    merchant = make_merchant(roles=("viewer", "partner"))
    viewer = await connected(server, merchant.keys["viewer"])
    sid = await viewer.subscribe(QUEUE_UPDATES)
    await viewer.next_data(sid)
    revoke_in_sql(database, merchant.key_ids["viewer"])
    code, reason, took = await closed_with(viewer, timeout=6)
    assert (code, reason) == (4403, "API key revoked")
    assert took < 1 + 1.5  # one check period (= the auth cache time) plus slack for a busy machine


async def test_a_connection_is_closed_after_its_maximum_lifetime(
    make_server: Callable[..., ThreadServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    server = make_server(ws_max_lifetime_seconds=1.0)
    merchant = make_merchant(roles=("viewer",))
    started = time.monotonic()
    ws = await connected(server, merchant.keys["viewer"])
    sid = await ws.subscribe(QUEUE_UPDATES)
    await ws.next_data(sid)
    code, reason, _ = await closed_with(ws, timeout=5)
    lived = time.monotonic() - started
    assert code == 1001 and "maximum connection lifetime" in reason
    assert 0.9 <= lived < 3
    connections = server.app.state.bookbag.ws_connections
    await eventually(lambda: connections.count() == 0)


async def test_a_key_revoked_with_the_cli_closes_its_sockets_on_a_running_server(
    make_server: Callable[..., ThreadServer],
    make_merchant: Callable[..., MerchantKeys],
    database: Database,
    database_url: str,
) -> None:
    """``bookbag keys revoke`` runs in its own process: on PostgreSQL its NOTIFY closes the server's sockets
    of the key at once (the 60 s auth cache does not matter); on SQLite the server's key check closes them
    within the auth-cache time (2 s here)."""
    cache_seconds = 60 if database.is_postgres else 2
    server = make_server(auth_cache_seconds=cache_seconds)
    merchant = make_merchant(roles=("viewer", "partner"))
    viewer = await connected(server, merchant.keys["viewer"])
    sid = await viewer.subscribe(QUEUE_UPDATES)
    await viewer.next_data(sid)
    prefix = merchant.keys["viewer"].split("_")[1]
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ["BOOKBAG_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "bookbag.cli", "keys", "revoke", "--merchant", merchant.slug, prefix]
    cli = await asyncio.create_subprocess_exec(
        *command, env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await cli.communicate()
    assert cli.returncode == 0, err.decode()
    assert merchant.key_ids["viewer"] in out.decode()
    code, reason, took = await closed_with(viewer, timeout=10)
    assert (code, reason) == (4403, "API key revoked")
    assert took < (2 if database.is_postgres else cache_seconds + 1.5)

    unknown = [sys.executable, "-m", "bookbag.cli", "keys", "revoke", "--merchant", merchant.slug, "key_nope"]
    failed = await asyncio.create_subprocess_exec(
        *unknown, env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await failed.communicate()
    assert (
        failed.returncode != 0 and err.decode().strip().startswith("error: ") and "not found" in err.decode()
    )


async def test_handshakes_from_one_address_are_paced_and_the_excess_refused_with_a_retry_hint(
    make_server: Callable[..., ThreadServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    """At 2 handshakes a second per address and at most 5 s of waiting, 11 of 14 simultaneous sockets from
    127.0.0.1 get their turn (at 0, 0.5, ... 5 s) and 3 are refused at once (429 RATE_LIMITED, Retry-After);
    another address (127.0.0.2) is not behind them."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    server = make_server(ws_handshakes_per_address_per_second=2.0)
    merchant = make_merchant()
    opened: list[float] = []
    refused: list[InvalidStatus] = []
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def open_one(local: str) -> Any:
        try:
            conn = await connect(
                server.ws,
                subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                local_addr=(local, 0),
                open_timeout=30,
            )
        except InvalidStatus as status:
            refused.append(status)
            return None
        opened.append(loop.time() - started)
        return conn

    crowd = [asyncio.create_task(open_one("127.0.0.1")) for _ in range(14)]
    await eventually(lambda: len(refused) == 3, what="three handshakes refused")
    other = await open_one("127.0.0.2")  # its own turn: not behind 127.0.0.1's queue
    assert other is not None and len(opened) < 11
    conns = [c for c in await asyncio.gather(*crowd) if c is not None]
    assert len(conns) == 11 and len(opened) == 12
    for status in refused:
        assert status.response.status_code == 429
        assert status.response.headers["retry-after"] == "5"
        body = json.loads(status.response.body or b"{}")
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    # The admitted sockets work as usual.
    ws = WsClient(conns[-1])
    await ws.conn.send(
        json.dumps(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {merchant.keys['viewer']}"}}
        )
    )
    await ws.ack()
    for conn in [*conns, other]:
        await conn.close()
