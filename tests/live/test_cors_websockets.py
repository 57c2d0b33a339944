"""The ``Origin`` check of ``/graphql`` websockets against a real uvicorn server with real websockets, on
SQLite and PostgreSQL: a browser's upgrade from an origin that is neither listed in
``BOOKBAG_CORS_ORIGINS`` nor the server's own is refused with a 403 (``ORIGIN_NOT_ALLOWED``) before anything
runs; a listed origin, the server's own origin and a client without ``Origin`` get through to
``connection_ack`` with a valid key. A real browser does the same in ``tests/admin_ui/test_cross_origin.py``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import replace
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bookbag.app import create_app
from bookbag.settings import Settings
from storage.db import Database
from tests.conftest import MerchantKeys
from workflow.live.bus import EventBus
from workflow.services import WorkflowServices

from .servers import ThreadServer, WsClient

FRONTEND = "http://frontend.example:5173"


@pytest.fixture
def make_server(
    database_url: str, database: Database, loaded_services: WorkflowServices
) -> Iterator[Callable[..., ThreadServer]]:
    running: list[ThreadServer] = []

    def make(**overrides: Any) -> ThreadServer:
        values: dict[str, Any] = {
            "env": "test",
            "database_url": database_url,
            "run_migrations_on_start": False,
            "scheduler_interval_seconds": 0,
            **overrides,
        }
        services = replace(loaded_services, bus=EventBus())
        server = ThreadServer(create_app(Settings(**values), services=services, database=database))
        running.append(server.__enter__())
        return server

    yield make
    for server in running:
        server.__exit__(None, None, None)


@pytest.fixture
def merchant(make_merchant: Callable[..., MerchantKeys]) -> MerchantKeys:
    return make_merchant()


async def open_and_ack(url: str, key: str, origin: str | None) -> dict[str, Any]:
    headers = {"Origin": origin} if origin is not None else None
    async with connect(url, subprotocols=["graphql-transport-ws"], additional_headers=headers) as conn:  # type: ignore[list-item]
        client = WsClient(conn)
        await conn.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
        )
        return await client.ack()


async def refused(url: str, origin: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, subprotocols=["graphql-transport-ws"], additional_headers={"Origin": origin}):  # type: ignore[list-item]
            pass
    return info.value


async def test_a_browser_from_another_origin_is_refused_before_anything_runs(
    make_server: Callable[..., ThreadServer], merchant: MerchantKeys
) -> None:
    server = make_server(cors_origins=FRONTEND)
    other_port = f"http://127.0.0.1:{server.port + 1}"
    for origin in ("https://evil.example", "http://frontend.example:5174", other_port, "null"):
        error = await refused(server.ws, origin)
        assert error.response.status_code == 403, origin
        body = json.loads(error.response.body or b"{}")
        assert body["errors"][0]["extensions"]["code"] == "ORIGIN_NOT_ALLOWED", origin
    # The server is fine afterwards, and still takes its listed origin.
    assert (await open_and_ack(server.ws, merchant.keys["agent"], FRONTEND))["type"] == "connection_ack"


async def test_listed_same_and_no_origin_are_accepted(
    make_server: Callable[..., ThreadServer], merchant: MerchantKeys
) -> None:
    server = make_server(cors_origins=f"https://elsewhere.example,{FRONTEND}")
    key = merchant.keys["agent"]
    for origin in (FRONTEND, "https://elsewhere.example", server.http, None):
        assert (await open_and_ack(server.ws, key, origin))["type"] == "connection_ack", origin


async def test_without_the_setting_only_the_servers_own_origin_and_non_browsers_get_in(
    make_server: Callable[..., ThreadServer], merchant: MerchantKeys
) -> None:
    server = make_server()
    key = merchant.keys["agent"]
    assert (await open_and_ack(server.ws, key, server.http))["type"] == "connection_ack"  # admin UI, GraphiQL
    assert (await open_and_ack(server.ws, key, None))["type"] == "connection_ack"  # a partner's service
    assert (await refused(server.ws, FRONTEND)).response.status_code == 403


async def test_a_refused_origin_with_a_valid_key_is_still_refused(
    make_server: Callable[..., ThreadServer], merchant: MerchantKeys
) -> None:
    # The check comes before authentication: a key does not make an unlisted page acceptable.
    server = make_server(cors_origins=FRONTEND)
    with pytest.raises(InvalidStatus) as info:
        await open_and_ack(server.ws, merchant.keys["admin"], "https://evil.example")
    assert info.value.response.status_code == 403


async def test_without_the_denial_response_extension_the_socket_is_closed_before_accept(
    database_url: str, database: Database, loaded_services: WorkflowServices
) -> None:
    # A server without ASGI's websocket.http.response extension gets a close before accept (it answers 403).
    settings = Settings(env="test", database_url=database_url, cors_origins=FRONTEND)  # type: ignore[arg-type]  # the environment's comma-separated form
    app = create_app(settings, services=replace(loaded_services, bus=EventBus()), database=database)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "scheme": "ws",
        "server": ("api.example", 80),
        "subprotocols": ["graphql-transport-ws"],
        "headers": [(b"origin", b"https://evil.example"), (b"host", b"api.example")],
    }
    await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008
