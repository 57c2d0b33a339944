"""GraphiQL at ``GET /graphql`` renders and works in Debian's chromium with every request to a host other
than 127.0.0.1 blocked: all its files come from this server (``bookbag.graphql_ide``). The page's query runs
with the key from GraphiQL's headers, and a subscription runs over the same-origin websocket."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import expect

from tests.admin_ui.admin_ui_support import LiveServer, Merchant

pytestmark = pytest.mark.browser


class Network:
    """Every request the page attempts: those to 127.0.0.1 go ahead, any other host is aborted."""

    def __init__(self) -> None:
        self.local: list[str] = []
        self.blocked: list[str] = []

    def handle(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            self.local.append(url)
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


def open_graphiql(page: Any, key: str, query: str) -> Network:
    """GraphiQL with ``query`` in its editor (from the page's address, as a shared link would have it)."""
    network = Network()
    page.context.route("**/*", network.handle)
    # GraphiQL keeps its headers editor in local storage: the key is there before the page starts.
    headers = json.dumps({"Authorization": f"Bearer {key}"})
    page.add_init_script(f"window.localStorage.setItem('graphiql:headers', {json.dumps(headers)});")
    page.goto(f"/graphql?q={quote(query)}")
    expect(page.locator(".graphiql-query-editor .CodeMirror")).to_be_visible()
    return network


def run_query(page: Any) -> None:
    page.locator(".graphiql-execute-button").click()


def response_text(page: Any) -> str:
    text: str = page.locator(".graphiql-response .CodeMirror").evaluate(
        "element => element.CodeMirror.getValue()"
    )
    return text


def test_graphiql_renders_and_runs_a_query_with_every_other_host_blocked(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    network = open_graphiql(page, merchant.keys["agent"], "query Me { me { role merchant { name } } }")
    assert page.title() == "Bookbag GraphiQL"
    run_query(page)
    expect(page.locator(".graphiql-response")).to_contain_text(merchant.name)
    answer = json.loads(response_text(page))
    assert answer == {"data": {"me": {"role": "AGENT", "merchant": {"name": merchant.name}}}}

    assert network.blocked == []  # nothing even tried another host
    loaded = {urlsplit(url).path for url in network.local}
    assert {
        "/graphql",
        "/graphql-ide/graphiql.min.css",
        "/graphql-ide/react.production.min.js",
        "/graphql-ide/react-dom.production.min.js",
        "/graphql-ide/graphiql.min.js",
        "/graphql-ide/graphiql-start.js",
    } <= loaded
    assert all(urlsplit(url).netloc == urlsplit(live_server.url).netloc for url in network.local)


def test_graphiql_subscribes_over_the_same_origin_websocket(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    # The page's websocket carries Origin http://127.0.0.1:<port>: the server's own origin is accepted with
    # no BOOKBAG_CORS_ORIGINS at all.
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    network = open_graphiql(
        page, merchant.keys["agent"], "subscription Queue { queueUpdates { version openCount } }"
    )
    run_query(page)
    expect(page.locator(".graphiql-response")).to_contain_text("openCount")
    answer = json.loads(response_text(page))
    assert answer["data"]["queueUpdates"]["openCount"] == 0
    assert network.blocked == []
    assert sockets == [live_server.url.replace("http://", "ws://") + "/graphql"]
