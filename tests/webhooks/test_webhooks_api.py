"""Webhooks end to end on SQLite and PostgreSQL: an admin registers an endpoint through GraphQL, changes
commit through the API, the dispatcher delivers signed events to a real HTTP receiver that verifies them
with ``standardwebhooks``; retries, the failure window, redelivery, pings, rotation and tenant isolation."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from storage.db import Database
from storage.tables import Ticket, WebhookDelivery, WebhookEvent
from tests.api.conftest import Api, create_ticket
from tests.conftest import MerchantKeys, count_rows
from tests.webhooks.conftest import Clock, Received, Receiver
from workflow.live.bus import TicketEvent, publish_after_commit
from workflow.services import WorkflowServices
from workflow.webhooks.dispatcher import MAX_ATTEMPTS, RETRY_DELAYS, WebhookDispatcher

CREATE_ENDPOINT = """
mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) {
    errors { code message field }
    secret
    endpoint { id url eventTypes enabled disabledReason }
  }
}
"""
UPDATE_ENDPOINT = """
mutation($input: UpdateWebhookEndpointInput!) {
  updateWebhookEndpoint(input: $input) {
    errors { code message field }
    endpoint { id enabled disabledReason failingSince eventTypes }
  }
}
"""
ENDPOINTS = "{ webhookEndpoints { id url enabled disabledReason disabledAt failingSince eventTypes } }"
DELIVERIES = """
query($e: ID, $s: String) {
  webhookDeliveries(endpointId: $e, status: $s) {
    id eventId eventType ticketId status attempts lastStatusCode lastError payload
    attemptLog { attempt ok statusCode latencyMs error responseExcerpt }
  }
}
"""
TRANSITION = """
mutation($id: ID!, $to: Stage!, $v: Int!) {
  transitionTicket(input: {ticketId: $id, to: $to, expectedVersion: $v}) {
    errors { code message } ticket { id stage version } }
}
"""
ROTATE = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { errors { code } secret endpoint { id } } }"
REDELIVER = """mutation($id: ID!) { redeliverWebhook(deliveryId: $id) {
  errors { code message } delivery { id eventId status } } }"""
PING = """mutation($id: ID!) { pingWebhookEndpoint(id: $id) {
  errors { code message } attempt { ok statusCode latencyMs error eventId } } }"""


async def register(
    api: Api, m: MerchantKeys, url: str, types: list[str] | None = None, **extra: Any
) -> tuple[str, str]:
    data = await api.ok(
        CREATE_ENDPOINT,
        {"input": {"url": url, "eventTypes": types or ["ticket.created", "ticket.transitioned"], **extra}},
        key=m.keys["admin"],
    )
    payload = data["createWebhookEndpoint"]
    assert payload["errors"] == [], payload
    return payload["endpoint"]["id"], payload["secret"]


def verified(secret: str, request: Received) -> dict[str, Any]:
    """The receiver's check, exactly as a partner would write it."""
    result: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return result


async def test_an_admin_registers_an_endpoint_and_a_created_ticket_is_delivered_signed(
    api: Api, merchant: MerchantKeys, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    endpoint_id, secret = await register(api, merchant, receiver.url)
    assert secret.startswith("whsec_")
    listed = (await api.ok(ENDPOINTS, key=merchant.keys["admin"]))["webhookEndpoints"]
    assert [e["id"] for e in listed] == [endpoint_id] and "secret" not in json.dumps(listed)

    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    results = await dispatcher.run_once()
    assert results and all(result.ok for _, result in results)

    bodies = [verified(secret, r) for r in receiver.received]
    created = [b for b in bodies if b["type"] == "ticket.created"]
    assert len(created) == 1
    data = created[0]["data"]
    assert data["ticket_id"] == ticket["id"] and data["merchant_id"] == merchant.merchant_id
    assert data["ticket_version"] == 1 and data["ticket"]["subject"] == "Where is my order?"
    # The same ingest moved the ticket to triaged: a later version, in its own event.
    transitioned = [b["data"] for b in bodies if b["type"] == "ticket.transitioned"]
    assert [t["to_stage"] for t in transitioned] == ["triaged"] and transitioned[0]["ticket_version"] == 2
    headers = receiver.received[0].headers
    assert headers["webhook-id"].startswith("evt_") and headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(receiver.received[0].body, headers)

    log = (await api.ok(DELIVERIES, {"e": endpoint_id}, key=merchant.keys["admin"]))["webhookDeliveries"]
    assert {d["status"] for d in log} == {"delivered"} and len(log) == 2
    attempt = log[0]["attemptLog"][0]
    assert attempt["ok"] and attempt["statusCode"] == 200 and attempt["latencyMs"] > 0
    assert attempt["responseExcerpt"] == "ok"


async def test_only_admins_manage_endpoints_and_bad_urls_and_types_are_refused(
    api: Api, merchant: MerchantKeys
) -> None:
    body = await api.raw(ENDPOINTS, key=merchant.keys["agent"])
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    data = await api.ok(
        CREATE_ENDPOINT,
        {"input": {"url": "https://example.com/h", "eventTypes": ["ticket.created"]}},
        key=merchant.keys["partner"],
    )
    assert data["createWebhookEndpoint"]["errors"][0]["code"] == "FORBIDDEN"
    cases = [
        ({"url": "ftp://example.com/h", "eventTypes": ["ticket.created"]}, "url"),
        ({"url": "https://user:pw@example.com/h", "eventTypes": ["ticket.created"]}, "url"),
        ({"url": "not a url", "eventTypes": ["ticket.created"]}, "url"),
        ({"url": "https://example.com/h", "eventTypes": ["ticket.exploded"]}, "eventTypes"),
        ({"url": "https://example.com/h", "eventTypes": []}, "eventTypes"),
    ]
    for input_, field in cases:
        data = await api.ok(CREATE_ENDPOINT, {"input": input_}, key=merchant.keys["admin"])
        errors = data["createWebhookEndpoint"]["errors"]
        assert [(e["code"], e["field"]) for e in errors] == [("INVALID_INPUT", field)], input_
    assert (await api.ok(ENDPOINTS, key=merchant.keys["admin"]))["webhookEndpoints"] == []


async def test_a_rolled_back_change_writes_and_sends_nothing(
    api: Api,
    database: Database,
    clocked_services: WorkflowServices,
    merchant: MerchantKeys,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
) -> None:
    await register(api, merchant, receiver.url)
    ticket_id = (await create_ticket(api, merchant.keys["partner"]))["ticket"]["id"]
    await dispatcher.run_once()
    before = len(receiver.received)
    events_before = count_rows(database, WebhookEvent, merchant.merchant_id)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), database.unit_of_work() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.version += 1
        session.add(ticket)
        event = TicketEvent(
            kind="transitioned",
            merchant_id=merchant.merchant_id,
            ticket_id=ticket_id,
            data={"version": ticket.version, "to": "closed"},
        )
        publish_after_commit(session, clocked_services.bus, event)
        raise Boom
    # A refused mutation through the API too (triaged → new is not an edge): nothing written either.
    data = await api.ok(TRANSITION, {"id": ticket_id, "to": "NEW", "v": 2}, key=merchant.keys["agent"])
    assert data["transitionTicket"]["errors"][0]["code"] == "TRANSITION_NOT_ALLOWED"

    assert count_rows(database, WebhookEvent, merchant.merchant_id) == events_before
    assert await dispatcher.run_once() == []
    assert len(receiver.received) == before


async def test_a_merchant_without_a_subscribed_endpoint_gets_no_outbox_rows(
    api: Api, database: Database, merchant: MerchantKeys, receiver: Receiver
) -> None:
    await register(api, merchant, receiver.url, ["ticket.sla_breached"])
    await create_ticket(api, merchant.keys["partner"])
    assert count_rows(database, WebhookEvent, merchant.merchant_id) == 0
    assert count_rows(database, WebhookDelivery, merchant.merchant_id) == 0


async def test_500s_are_retried_with_backoff_under_one_webhook_id_until_delivered(
    api: Api,
    database: Database,
    merchant: MerchantKeys,
    make_receiver: Callable[..., Receiver],
    dispatcher: WebhookDispatcher,
    clock: Clock,
) -> None:
    answers = iter([500, 503, 200])
    receiver = make_receiver(lambda _r: (next(answers), {}, b"x"))
    endpoint_id, secret = await register(api, merchant, receiver.url, ["ticket.created"])
    await create_ticket(api, merchant.keys["partner"])

    assert [r.status_code for _, r in await dispatcher.run_once()] == [500]
    assert await dispatcher.run_once() == []  # not due yet: backoff
    clock.advance(seconds=RETRY_DELAYS[0].total_seconds() * 1.21)
    assert [r.status_code for _, r in await dispatcher.run_once()] == [503]
    clock.advance(seconds=RETRY_DELAYS[0].total_seconds() * 1.21)
    assert await dispatcher.run_once() == []  # the second delay is longer than the first
    clock.advance(seconds=RETRY_DELAYS[1].total_seconds() * 1.21)
    assert [r.status_code for _, r in await dispatcher.run_once()] == [200]

    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1
    assert all(verified(secret, r)["type"] == "ticket.created" for r in receiver.received)
    log = (await api.ok(DELIVERIES, {"e": endpoint_id}, key=merchant.keys["admin"]))["webhookDeliveries"]
    assert len(log) == 1 and log[0]["status"] == "delivered" and log[0]["attempts"] == 3
    assert [(a["attempt"], a["statusCode"], a["error"]) for a in log[0]["attemptLog"]] == [
        (3, 200, None),
        (2, 503, "HTTP 503"),
        (1, 500, "HTTP 500"),
    ]
    endpoints = (await api.ok(ENDPOINTS, key=merchant.keys["admin"]))["webhookEndpoints"]
    assert endpoints[0]["failingSince"] is None and endpoints[0]["enabled"]


def next_due(database: Database, m: MerchantKeys) -> datetime | None:
    with database.read_only() as session:
        return session.exec(
            select(func.min(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.merchant_id == m.merchant_id, WebhookDelivery.status == "pending"
            )
        ).one()


async def test_an_endpoint_failing_for_a_day_is_disabled_with_the_reason_and_the_event_failed(
    api: Api,
    database: Database,
    merchant: MerchantKeys,
    make_receiver: Callable[..., Receiver],
    dispatcher: WebhookDispatcher,
    clock: Clock,
) -> None:
    receiver = make_receiver(lambda _r: (500, {}, b"down"))
    endpoint_id, _ = await register(api, merchant, receiver.url, ["ticket.created"])
    await create_ticket(api, merchant.keys["partner"])
    started = clock.now
    attempts = 0
    for _ in range(MAX_ATTEMPTS + 3):
        # Only this endpoint's: other tests' merchants share the database, and a day later their
        # deliveries are due too.
        attempts += sum(job.endpoint_id == endpoint_id for job, _ in await dispatcher.run_once())
        due = next_due(database, merchant)
        if due is None:
            break
        clock.now = max(clock.now, due)
    assert attempts == MAX_ATTEMPTS
    # The schedule: 11 attempts spread over more than a day (each delay stretched by 0-20 % of jitter).
    assert timedelta(hours=25.7) <= clock.now - started <= timedelta(hours=31)
    log = (await api.ok(DELIVERIES, {"e": endpoint_id}, key=merchant.keys["admin"]))["webhookDeliveries"]
    assert log[0]["status"] == "failed" and log[0]["attempts"] == MAX_ATTEMPTS
    endpoint = (await api.ok(ENDPOINTS, key=merchant.keys["admin"]))["webhookEndpoints"][0]
    assert endpoint["enabled"] is False
    assert "every delivery has failed since" in endpoint["disabledReason"]
    assert "HTTP 500" in endpoint["disabledReason"] and endpoint["failingSince"].startswith(
        str(started.date())
    )

    # A disabled endpoint is sent nothing; new changes write no rows for it.
    await create_ticket(api, merchant.keys["partner"])
    assert await dispatcher.run_once() == []
    # Enabling it again clears the reason and the failure streak.
    data = await api.ok(
        UPDATE_ENDPOINT, {"input": {"id": endpoint_id, "enabled": True}}, key=merchant.keys["admin"]
    )
    enabled = data["updateWebhookEndpoint"]["endpoint"]
    assert enabled["enabled"] and enabled["disabledReason"] is None and enabled["failingSince"] is None


async def test_redeliver_sends_the_same_webhook_id_again_and_a_ping_reports_its_attempt(
    api: Api, merchant: MerchantKeys, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    endpoint_id, secret = await register(api, merchant, receiver.url, ["ticket.created"])
    await create_ticket(api, merchant.keys["partner"])
    await dispatcher.run_once()
    log = (await api.ok(DELIVERIES, {"e": endpoint_id}, key=merchant.keys["admin"]))["webhookDeliveries"]
    data = await api.ok(REDELIVER, {"id": log[0]["id"]}, key=merchant.keys["admin"])
    again = data["redeliverWebhook"]["delivery"]
    assert again["eventId"] == log[0]["eventId"] and again["status"] == "pending"
    await dispatcher.run_once()
    assert [r.headers["webhook-id"] for r in receiver.received] == [log[0]["eventId"]] * 2
    data = await api.ok(REDELIVER, {"id": again["id"]}, key=merchant.keys["admin"])
    assert data["redeliverWebhook"]["errors"] == []

    ping = (await api.ok(PING, {"id": endpoint_id}, key=merchant.keys["admin"]))["pingWebhookEndpoint"]
    assert ping["errors"] == [] and ping["attempt"]["ok"] and ping["attempt"]["statusCode"] == 200
    assert verified(secret, receiver.received[-1])["type"] == "webhook.ping"


async def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(
    api: Api, merchant: MerchantKeys, receiver: Receiver, dispatcher: WebhookDispatcher, clock: Clock
) -> None:
    endpoint_id, old = await register(api, merchant, receiver.url, ["ticket.created"])
    data = await api.ok(ROTATE, {"id": endpoint_id}, key=merchant.keys["admin"])
    new = data["rotateWebhookSecret"]["secret"]
    assert new.startswith("whsec_") and new != old
    await create_ticket(api, merchant.keys["partner"])
    await dispatcher.run_once()
    request = receiver.received[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verified(new, request)
    verified(old, request)

    clock.advance(hours=25)
    await create_ticket(api, merchant.keys["partner"])
    await dispatcher.run_once()
    request = receiver.received[-1]
    verified(new, request)
    with pytest.raises(WebhookVerificationError):
        verified(old, request)


async def test_merchants_see_and_receive_only_their_own(
    api: Api,
    merchant: MerchantKeys,
    other_merchant: MerchantKeys,
    make_receiver: Callable[..., Receiver],
    dispatcher: WebhookDispatcher,
) -> None:
    mine, theirs = make_receiver(), make_receiver()
    my_endpoint, _ = await register(api, merchant, mine.url, ["ticket.created"])
    their_endpoint, their_secret = await register(api, other_merchant, theirs.url, ["ticket.created"])
    mine_ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]["id"]
    theirs_ticket = (await create_ticket(api, other_merchant.keys["partner"]))["ticket"]["id"]
    await dispatcher.run_once()
    assert [json.loads(r.body)["data"]["ticket_id"] for r in mine.received] == [mine_ticket]
    assert [verified(their_secret, r)["data"]["ticket_id"] for r in theirs.received] == [theirs_ticket]

    admin = merchant.keys["admin"]
    assert [e["id"] for e in (await api.ok(ENDPOINTS, key=admin))["webhookEndpoints"]] == [my_endpoint]
    mine_log = (await api.ok(DELIVERIES, key=admin))["webhookDeliveries"]
    assert {d["ticketId"] for d in mine_log} == {mine_ticket}
    body = await api.raw(DELIVERIES, {"e": their_endpoint}, key=admin)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    their_log = (await api.ok(DELIVERIES, key=other_merchant.keys["admin"]))["webhookDeliveries"]
    refused: list[tuple[str, dict[str, Any], str]] = [
        (UPDATE_ENDPOINT, {"input": {"id": their_endpoint, "enabled": False}}, "updateWebhookEndpoint"),
        (ROTATE, {"id": their_endpoint}, "rotateWebhookSecret"),
        (PING, {"id": their_endpoint}, "pingWebhookEndpoint"),
        (REDELIVER, {"id": their_log[0]["id"]}, "redeliverWebhook"),
    ]
    for document, variables, name in refused:
        data = await api.ok(document, variables, key=admin)
        assert data[name]["errors"][0]["code"] == "NOT_FOUND", name
    assert len(theirs.received) == 1  # the ping did not reach them
    theirs_now = (await api.ok(ENDPOINTS, key=other_merchant.keys["admin"]))["webhookEndpoints"]
    assert theirs_now[0]["enabled"] is True


async def test_action_events_carry_what_a_partner_needs(
    api: Api, database: Database, merchant: MerchantKeys, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    _, secret = await register(
        api, merchant, receiver.url, ["action.requested", "action.approved", "action.rejected"]
    )
    ticket_id = (await create_ticket(api, merchant.keys["partner"], order={"id": "1001"}))["ticket"]["id"]
    request = """mutation($t: ID!, $a: Float) { requestAction(input: {ticketId: $t, type: REFUND, amount: $a,
      params: {reason: "late"}}) { errors { code } action { id status } } }"""
    first = (await api.ok(request, {"t": ticket_id, "a": 900.0}, key=merchant.keys["ai"]))["requestAction"]
    second = (await api.ok(request, {"t": ticket_id, "a": 950.0}, key=merchant.keys["ai"]))["requestAction"]
    assert first["action"]["status"] == second["action"]["status"] == "PENDING_APPROVAL"
    approve = "mutation($id: ID!) { approveAction(id: $id) { errors { code } action { status } } }"
    reject = 'mutation($id: ID!) { rejectAction(id: $id, reason: "too much") { errors { code } } }'
    approved = await api.ok(approve, {"id": first["action"]["id"]}, key=merchant.keys["agent"])
    rejected = await api.ok(reject, {"id": second["action"]["id"]}, key=merchant.keys["agent"])
    assert approved["approveAction"]["errors"] == rejected["rejectAction"]["errors"] == []
    await dispatcher.run_once()
    bodies = [verified(secret, r) for r in receiver.received]
    kinds = Counter(b["type"] for b in bodies)
    assert kinds == {"action.requested": 2, "action.approved": 1, "action.rejected": 1}
    approved = next(b["data"] for b in bodies if b["type"] == "action.approved")
    action = approved["action"]
    assert action["id"] == first["action"]["id"] and action["type"] == "refund" and action["amount"] == 900.0
    assert action["params"] == {"reason": "late"} and "facts" not in action
    assert approved["ticket"]["order_id"] == "1001" and isinstance(approved["ticket_version"], int)
    with database.read_only() as session:
        types = set(
            session.exec(select(WebhookEvent.type).where(WebhookEvent.merchant_id == merchant.merchant_id))
        )
    assert types == set(kinds)


def test_a_copy_of_the_services_with_another_clock_leaves_the_bus_clock_alone(
    clocked_services: WorkflowServices, clock: Clock
) -> None:
    """The scheduler runs each tick on ``replace(services, clock=lambda: now)``, which shares the bus: the
    outbox must keep stamping rows with the workflow's clock, not the last tick's frozen time."""
    from dataclasses import replace

    frozen = replace(clocked_services, clock=lambda: datetime(2000, 1, 1))
    assert frozen.bus is clocked_services.bus
    assert clocked_services.bus.clock is clock
