"""The ws_direct fast path's version fence: with an untested uvicorn (or ``BOOKBAG_FAST_PATHS=off``) the fan-out
never looks for a direct writer and every frame goes through the ASGI send, and subscribers receive exactly
the messages the direct path delivers."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from bookbag.app import create_app
from bookbag.fast_paths import FastPathsMode
from bookbag.settings import Settings
from storage.db import Database
from tests.conftest import MerchantKeys
from workflow.live.bus import EventBus
from workflow.services import WorkflowServices

from .servers import ThreadServer, WsClient, create_ticket
from .test_direct_frames import SUBSCRIPTION, WriteSpy, next_with_open_count

Versions = Callable[[str], str]


@pytest.fixture
def make_server(
    database_url: str, database: Database, loaded_services: WorkflowServices, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ThreadServer]]:
    running: list[ThreadServer] = []
    real_version = importlib.metadata.version

    def make(uvicorn_version: str | None = None, fast_paths: FastPathsMode = "auto") -> ThreadServer:
        settings = Settings(
            env="test",
            database_url=database_url,
            run_migrations_on_start=False,
            queue_coalesce_seconds=0.05,
            scheduler_interval_seconds=0,
            fast_paths=fast_paths,
        )
        services = replace(loaded_services, bus=EventBus())

        def version(distribution: str) -> str:
            if distribution == "uvicorn" and uvicorn_version is not None:
                return uvicorn_version
            return real_version(distribution)

        with monkeypatch.context() as patch:  # the check runs in create_app, at start-up
            patch.setattr(importlib.metadata, "version", version)
            app = create_app(settings, services=services, database=database)
        server = ThreadServer(app)
        running.append(server.__enter__())
        return server

    yield make
    for server in running:
        server.__exit__(None, None, None)


async def updates_for_one_ticket(server: ThreadServer, merchant: MerchantKeys) -> list[dict[str, Any]]:
    """What two subscribers of one merchant receive: the first snapshot, then the one after a ticket."""
    clients = [await WsClient.open(server.ws, merchant.keys["viewer"]) for _ in range(2)]
    sids = []
    received: list[dict[str, Any]] = []
    for ws in clients:
        await ws.ack()
        sids.append(await ws.subscribe(SUBSCRIPTION))
        received.append(await ws.next_data(sids[-1]))
    await create_ticket(server.http, merchant.keys["partner"])
    for ws, sid in zip(clients, sids, strict=True):
        received.append({"queueUpdates": await next_with_open_count(ws, sid, 1)})
        await ws.close()
    return received


@pytest.mark.parametrize("fence", ["untested uvicorn", "BOOKBAG_FAST_PATHS=off"])
async def test_the_fallback_sends_through_asgi_and_delivers_the_same_messages(
    fence: str,
    make_server: Callable[..., ThreadServer],
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = WriteSpy(monkeypatch)
    fast = make_server()
    assert fast.app.state.bookbag.fast_paths.ws_direct
    direct = await updates_for_one_ticket(fast, make_merchant())
    assert len(spy.writers) == 2 and all(w is not None for w in spy.writers)
    assert sum(written for _, written in spy.frames) >= 2  # the direct path delivered the second snapshots

    spy.writers.clear()
    spy.frames.clear()
    standard = (
        make_server(uvicorn_version="0.56.0")
        if fence == "untested uvicorn"
        else make_server(fast_paths="off")
    )
    assert not standard.app.state.bookbag.fast_paths.ws_direct
    through_asgi = await updates_for_one_ticket(standard, make_merchant())
    assert spy.writers == [] and spy.frames == []  # no writer was even looked for
    assert through_asgi == direct
    assert direct[-1]["queueUpdates"]["openCount"] == 1
