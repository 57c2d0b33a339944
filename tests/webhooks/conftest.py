"""Fixtures for the webhook tests: a real HTTP receiver on a free local port, the API app with a clock the
test moves, and a dispatcher allowed to reach the local receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bookbag.app import create_app
from storage.db import Database
from tests.api.conftest import Api, make_settings
from tests.api.conftest import merchant as merchant
from tests.api.conftest import other_merchant as other_merchant
from tests.api.conftest import services as services
from workflow.live.bus import EventBus
from workflow.services import WorkflowServices
from workflow.webhooks.delivery import Sender
from workflow.webhooks.dispatcher import DispatchLimits, WebhookDispatcher


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


# What the receiver answers: (status, extra headers, body); it may sleep first.
Behaviour = Callable[["Received"], tuple[int, dict[str, str], bytes]]


def ok(_request: Received) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b"ok"


@dataclass
class Receiver:
    """A real HTTP server in a thread that records every POST and answers with ``behaviour``."""

    behaviour: Behaviour = ok
    received: list[Received] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)  # webhook-ids seen twice at once
    concurrent: int = 0
    max_concurrent: int = 0

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                request = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                webhook_id = request.headers.get("webhook-id", "")
                with lock:
                    receiver.received.append(request)
                    receiver.in_flight[webhook_id] = receiver.in_flight.get(webhook_id, 0) + 1
                    if receiver.in_flight[webhook_id] > 1:
                        receiver.overlaps.append(webhook_id)
                    receiver.concurrent += 1
                    receiver.max_concurrent = max(receiver.max_concurrent, receiver.concurrent)
                try:
                    status, headers, answer = receiver.behaviour(request)
                finally:
                    with lock:
                        receiver.in_flight[webhook_id] -= 1
                        receiver.concurrent -= 1
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up (timeout, capped read)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # several dispatchers connect at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(behaviour: Behaviour = ok) -> Receiver:
        r = Receiver(behaviour)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    # Starts at the real time: a receiver checks webhook-timestamp against its own clock, which the
    # dispatcher's signature uses (the workflow clock only decides what is due).
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def clocked_services(services: WorkflowServices, clock: Clock) -> WorkflowServices:
    return replace(services, clock=clock, bus=EventBus())


@pytest.fixture
def app(database_url: str, database: Database, clocked_services: WorkflowServices) -> Starlette:
    settings = make_settings(database_url, webhook_allow_private=True)
    return create_app(settings, services=clocked_services, database=database)


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client)


@pytest.fixture
async def dispatcher(
    database: Database, clocked_services: WorkflowServices
) -> AsyncIterator[WebhookDispatcher]:
    d = WebhookDispatcher(
        database, clocked_services, Sender(timeout=5.0, allow_private=True), limits=DispatchLimits()
    )
    yield d
    await d.sender.close()
