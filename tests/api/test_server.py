"""Against a real uvicorn server on 127.0.0.1 (random port): migrations on start, /healthz, HTTP GraphQL,
and websocket authentication in ``connection_init`` (graphql-transport-ws only)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette

from bookbag.app import admin_static_dir, create_app
from storage.db import Database
from tests.api.conftest import make_settings
from workflow.services import WorkflowServices
from workflow.tenancy.merchants import create_api_key, create_merchant


class ServerThread:
    def __init__(self, app: Starlette) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", ws="websockets"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def served(fresh_sqlite_url: str, services: WorkflowServices) -> Iterator[tuple[str, Database]]:
    """A server on an empty SQLite file: its lifespan must create the schema."""
    app = create_app(make_settings(fresh_sqlite_url, run_migrations_on_start=True), services=services)
    with ServerThread(app) as address:
        yield address, app.state.bookbag.db


async def test_real_server_migrates_serves_and_authenticates(served: tuple[str, Database]) -> None:
    address, db = served
    with db.unit_of_work() as session:
        merchant = create_merchant(session, name="Real Server Shop", slug="real-server")
        key = create_api_key(session, merchant_id=merchant.id, role="agent").secret
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        health = await client.get("/healthz")
        assert health.json() == {"status": "ok", "database": "sqlite"}
        denied = await client.post("/graphql", json={"query": "{ me { role } }"})
        assert denied.status_code == 401
        ok = await client.post(
            "/graphql",
            json={"query": "{ me { role merchant { slug } } }"},
            headers={"authorization": f"Bearer {key}"},
        )
        assert ok.json() == {"data": {"me": {"role": "AGENT", "merchant": {"slug": "real-server"}}}}
        assert ok.headers["x-request-id"]
        admin = await client.get("/admin/")
        if admin_static_dir() is not None:
            assert admin.status_code == 200 and "<html" in admin.text.lower()
        else:
            assert admin.status_code == 404

    url = f"ws://{address}/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ack["type"] == "connection_ack"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer wrong"}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    # The legacy graphql-ws protocol is not offered.
    async with websockets.connect(url, subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4406
