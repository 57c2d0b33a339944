"""Rate limits on websockets, against a real uvicorn server: ``connection_init`` spends a token of the key's
bucket, and unknown keys from one address stop reaching the key lookup once its failed attempts are used up
(closed 4429, "rate limited", for a known key over its rate and for an address out of failed lookups; 4403
for a bad key); every ``subscribe`` spends a token too and is answered with an ``error`` message
(RATE_LIMITED, retryAfter) without closing the socket or treating the key as revoked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from websockets.exceptions import ConnectionClosed

from bookbag import graphql_http
from bookbag.app import create_app
from bookbag.settings import Settings
from storage.db import Database
from tests.conftest import MerchantKeys, count_calls
from workflow.live.bus import EventBus
from workflow.services import WorkflowServices

from .servers import ThreadServer, WsClient


@pytest.fixture
def server(
    database_url: str, database: Database, loaded_services: WorkflowServices
) -> Iterator[ThreadServer]:
    settings = Settings(
        env="test",
        database_url=database_url,
        run_migrations_on_start=False,
        scheduler_interval_seconds=0,
        rate_limit_key_per_second=0.01,  # no refill worth the name during the test
        rate_limit_key_burst=3,
        failed_auth_per_second=0.01,
        failed_auth_burst=3,
    )
    services = replace(loaded_services, bus=EventBus())
    with ThreadServer(create_app(settings, services=services, database=database)) as running:
        yield running


async def refused(ws: WsClient) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await ws.receive()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_connection_init_is_rate_limited_per_key_and_per_address(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys], monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = count_calls(monkeypatch, graphql_http, "authenticate")
    merchant, other = make_merchant(), make_merchant()

    opened = []
    for _ in range(3):  # the key's burst
        ws = await WsClient.open(server.ws, merchant.keys["viewer"])
        await ws.ack()
        opened.append(ws)
    assert await refused(await WsClient.open(server.ws, merchant.keys["viewer"])) == 4429
    ws_other = await WsClient.open(server.ws, other.keys["viewer"])  # another merchant's key connects
    await ws_other.ack()
    assert lookups.calls == 2  # one lookup per key; the rest came from the auth cache

    codes = [await refused(await WsClient.open(server.ws, f"bb_unknown_{n}")) for n in range(6)]
    assert codes == [4403] * 3 + [4429] * 3  # bad key while the address may look keys up, then rate limited
    assert (
        lookups.calls == 2 + 3
    )  # the address's three failed attempts; the other three never reached the database
    for ws in [*opened, ws_other]:
        await ws.close()


async def test_subscribe_spends_the_keys_rate_and_is_answered_with_an_error_not_a_revocation(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant = make_merchant()
    ws = await WsClient.open(server.ws, merchant.keys["viewer"])  # connection_init: 1 of the burst of 3
    await ws.ack()
    query = "subscription { queueUpdates { version } }"
    for _ in range(2):  # the rest of the burst
        sid = await ws.subscribe(query)
        assert "queueUpdates" in await ws.next_data(sid)
    refused_id = await ws.subscribe(query)
    message = await ws.receive()
    assert message["id"] == refused_id and message["type"] == "error", message
    [error] = message["payload"]
    assert error["extensions"]["code"] == "RATE_LIMITED" and error["extensions"]["retryAfter"] > 0
    # The socket stays open and the key is not treated as revoked: its open subscriptions keep working
    # (a ping/pong round trip answers), and no close frame came.
    await ws.conn.send('{"type": "ping"}')
    assert (await ws.receive())["type"] == "pong"
    await ws.close()
