"""A browser frontend on another origin, in Debian's chromium: a page served by a second tiny HTTP server
calls the API with ``fetch()`` (a preflighted POST: ``Authorization`` and JSON) and opens a websocket. From
the origin listed in ``BOOKBAG_CORS_ORIGINS`` both work and the page reads ``x-request-id``; from another
origin the browser refuses the call after the preflight (the mutation never runs) and the server refuses
the websocket."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import uvicorn

from bookbag.app import create_app
from bookbag.settings import Settings
from tests.admin_ui.admin_ui_support import LiveServer, Merchant
from tests.live.servers import free_socket

pytestmark = pytest.mark.browser

FRONTEND_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>A store's frontend</title></head><body>
<script>
  window.callApi = async (api, key, query) => {
    try {
      const response = await fetch(api + "/graphql", {
        method: "POST",
        headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json" },
        body: JSON.stringify({ query }),
      });
      return { ok: true, status: response.status, requestId: response.headers.get("x-request-id"),
               body: await response.json() };
    } catch (error) {
      return { ok: false, error: String(error) };
    }
  };
  window.openSocket = (url, key) => new Promise((resolve) => {
    const socket = new WebSocket(url, "graphql-transport-ws");
    socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init",
                                                       payload: { Authorization: "Bearer " + key } }));
    socket.onmessage = (event) => { resolve({ opened: true, message: JSON.parse(event.data) }); socket.close(); };
    socket.onclose = (event) => resolve({ opened: false, code: event.code });
  });
</script>
</body></html>
"""

ME = "{ me { role merchant { name } } }"
CREATE = 'mutation { createTicket(input: {subject: "from a page", body: "hello"}) { errors { code } } }'
TICKET_COUNT = "{ tickets { totalCount } }"


class FrontendHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(FRONTEND_PAGE)))
        self.end_headers()
        self.wfile.write(FRONTEND_PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class CrossOriginWorld:
    api: str  # the API server with BOOKBAG_CORS_ORIGINS set
    allowed: str  # the origin it lists
    other: str  # a page on an origin it does not list


def start_frontend() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FrontendHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> Iterator[CrossOriginWorld]:
    allowed_server, allowed = start_frontend()
    other_server, other = start_frontend()
    settings = Settings(
        env="test",
        database_url=str(live_server.database.engine.url),
        run_migrations_on_start=False,
        scheduler_interval_seconds=0,
        log_level="warning",
        cors_origins=allowed,  # type: ignore[arg-type]  # the environment's comma-separated form
    )
    app = create_app(settings, services=live_server.services, database=live_server.database)
    sock = free_socket()
    api = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="websockets-sansio"))
    thread = threading.Thread(target=api.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not api.started:
        assert thread.is_alive(), "the API server did not start"
        threading.Event().wait(0.05)
    try:
        yield CrossOriginWorld(api=f"http://127.0.0.1:{sock.getsockname()[1]}", allowed=allowed, other=other)
    finally:
        api.should_exit = True
        thread.join(timeout=10)
        sock.close()
        for server in (allowed_server, other_server):
            server.shutdown()
            server.server_close()


@pytest.fixture
def frontend(browser: Any) -> Iterator[Any]:
    """A page of its own browser context (no base URL: the test says which origin it loads)."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        context.close()


def test_a_page_on_the_listed_origin_calls_the_api(
    frontend: Any, world: CrossOriginWorld, merchant: Merchant, live_server: LiveServer
) -> None:
    frontend.goto(world.allowed + "/")
    key = merchant.keys["partner"]
    answer = frontend.evaluate("([api, key, query]) => window.callApi(api, key, query)", [world.api, key, ME])
    assert answer["ok"], answer
    assert answer["status"] == 200
    assert answer["body"] == {"data": {"me": {"role": "PARTNER", "merchant": {"name": merchant.name}}}}
    assert answer["requestId"], "x-request-id is exposed to the page"

    created = frontend.evaluate(
        "([api, key, query]) => window.callApi(api, key, query)", [world.api, key, CREATE]
    )
    assert created["body"]["data"]["createTicket"]["errors"] == []
    assert live_server.graphql(key, TICKET_COUNT)["tickets"]["totalCount"] == 1

    ws = world.api.replace("http://", "ws://") + "/graphql"
    opened = frontend.evaluate("([url, key]) => window.openSocket(url, key)", [ws, key])
    assert opened == {"opened": True, "message": {"type": "connection_ack"}}


def test_a_page_on_another_origin_is_refused(
    frontend: Any, world: CrossOriginWorld, merchant: Merchant, live_server: LiveServer
) -> None:
    frontend.goto(world.other + "/")
    key = merchant.keys["partner"]
    answer = frontend.evaluate("([api, key, query]) => window.callApi(api, key, query)", [world.api, key, ME])
    assert answer == {"ok": False, "error": "TypeError: Failed to fetch"}

    # The preflight failed, so the browser never sent the mutation: nothing was created.
    refused = frontend.evaluate(
        "([api, key, query]) => window.callApi(api, key, query)", [world.api, key, CREATE]
    )
    assert refused["ok"] is False
    assert live_server.graphql(key, TICKET_COUNT)["tickets"]["totalCount"] == 0

    ws = world.api.replace("http://", "ws://") + "/graphql"
    opened = frontend.evaluate("([url, key]) => window.openSocket(url, key)", [ws, key])
    assert opened["opened"] is False
    assert opened["code"] == 1006  # the handshake was answered 403: never opened

    # The admin UI's server, which lists no origin at all, refuses it too.
    at_live = frontend.evaluate(
        "([api, key, query]) => window.callApi(api, key, query)", [live_server.url, key, ME]
    )
    assert at_live["ok"] is False
