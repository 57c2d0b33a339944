"""``pendingActionUpdates`` over real websockets against a real uvicorn server, on SQLite and PostgreSQL: the
approver role's subscribers hear of a new request and of its decision, with the inbox's size for their role;
other roles and other merchants hear nothing; the document is executed once per event and role, and the
same bytes go to every subscriber of it; a role that may decide nothing is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import graphql
import pytest

import bookbag.ws.protocol
from bookbag.ws.protocol import MAX_FAST_QUERY_CHARS, fan_out_document
from tests.conftest import MerchantKeys
from tests.live.test_ws_isolation import connected, raw_next  # make_server: a fixture
from tests.waiting import eventually

from .servers import ThreadServer, WsClient, create_ticket, gql

UPDATES = "subscription { pendingActionUpdates { kind actionId ticketId status pendingCount } }"
REQUEST = """mutation($t: ID!, $amount: Float) {
  requestAction(input: {ticketId: $t, type: REFUND, amount: $amount}) { errors { code } action { id status } } }"""
APPROVE = "mutation($id: ID!) { approveAction(id: $id) { errors { code } action { status } } }"


@pytest.fixture
def server(make_server: Callable[..., ThreadServer]) -> ThreadServer:
    """The websocket tests' server (test_ws_isolation's factory, its default settings)."""
    return make_server()


async def test_the_inbox_is_pushed_to_its_approvers_only_executed_once_per_event(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys], monkeypatch: pytest.MonkeyPatch
) -> None:
    executions: list[Any] = []
    real_execute = graphql.execute

    def counting_execute(*args: Any, **kwargs: Any) -> Any:
        executions.append(kwargs.get("root_value"))
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(bookbag.ws.protocol, "execute", counting_execute)
    m, other = make_merchant(), make_merchant()
    ticket = await create_ticket(server.http, m.keys["partner"], subject="refund for a broken kettle")
    hub = server.app.state.bookbag.runtime.ticket_events_hub

    agents = [await connected(server, m.keys["agent"]) for _ in range(3)]
    admin = await connected(server, m.keys["admin"])
    elsewhere = await connected(server, other.keys["agent"])
    for ws in [*agents, admin, elsewhere]:
        await ws.subscribe(UPDATES)
    await eventually(lambda: hub.subscriber_count(m.merchant_id) == 4)
    await eventually(lambda: hub.subscriber_count(other.merchant_id) == 1)

    # An AI refund over 50 waits for an agent (the default ruleset): every agent socket hears of it.
    asked = await gql(server.http, m.keys["ai"], REQUEST, {"t": ticket["id"], "amount": 80.0})
    action_id = asked["requestAction"]["action"]["id"]
    frames = [await raw_next(ws) for ws in agents]
    assert frames[0] == frames[1] == frames[2]  # the very same bytes
    update = json.loads(frames[0])["payload"]["data"]["pendingActionUpdates"]
    assert update == {
        "kind": "action_decided",
        "actionId": action_id,
        "ticketId": ticket["id"],
        "status": "pending_approval",
        "pendingCount": 1,
    }

    approved = await gql(server.http, m.keys["agent"], APPROVE, {"id": action_id})
    assert approved["approveAction"]["action"]["status"] == "EXECUTING"
    frames = [await raw_next(ws) for ws in agents]
    assert frames[0] == frames[1] == frames[2]
    update = json.loads(frames[0])["payload"]["data"]["pendingActionUpdates"]
    assert (update["kind"], update["status"], update["pendingCount"]) == ("action_approved", "approved", 0)

    # The admin role may not decide this request, the other merchant's agent never sees it.
    for ws in (admin, elsewhere):
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.5)
    # Once per event for the one document and role (three agent sockets), never for the admin's.
    assert len(executions) == 2
    for ws in [*agents, admin, elsewhere]:
        await ws.close()


async def test_a_role_that_decides_nothing_is_refused(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ws = await WsClient.open(server.ws, m.keys["viewer"])
    await ws.ack()
    sid = await ws.subscribe(UPDATES)
    message = await ws.receive()
    assert message["id"] == sid and message["type"] in {"error", "next"}, message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    await ws.close()


async def test_a_document_off_the_fan_out_streams_through_strawberry(
    server: ThreadServer, make_merchant: Callable[..., MerchantKeys]
) -> None:
    """A document the fan-out does not take (over its size limit, here by a long comment) stays on
    Strawberry's own path: the resolver streams the same updates itself."""
    m = make_merchant()
    ticket = await create_ticket(server.http, m.keys["partner"])
    ws = await connected(server, m.keys["agent"])
    long_document = "#" + "x" * MAX_FAST_QUERY_CHARS + "\n" + UPDATES
    assert fan_out_document(long_document, None) is None
    sid = await ws.subscribe(long_document)
    bus = server.app.state.bookbag.services.bus
    await eventually(lambda: bus.subscriber_count(m.merchant_id) == 1)
    asked = await gql(server.http, m.keys["ai"], REQUEST, {"t": ticket["id"], "amount": 70.0})
    update = (await ws.next_data(sid))["pendingActionUpdates"]
    assert update == {
        "kind": "action_decided",
        "actionId": asked["requestAction"]["action"]["id"],
        "ticketId": ticket["id"],
        "status": "pending_approval",
        "pendingCount": 1,
    }
    await ws.close()
