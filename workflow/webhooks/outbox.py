"""The transactional outbox: webhook events written in the same transaction as the change they describe.

``workflow.live.bus.publish_after_commit`` is the one place events are emitted; it calls :func:`stage`, which
notes the event on the session. Just before the unit of work commits, :func:`write_outbox` reads the
merchants' enabled endpoints (one query per transaction) and, for each staged event some endpoint
subscribed to, writes one ``webhook_events`` row (its payload, the exact JSON text that will be signed) and
one ``webhook_deliveries`` row per subscribed endpoint. A rolled-back change drops them with everything
else; a committed one survives a crash, and the dispatcher sends it. A merchant without a subscribed
endpoint gets no rows at all.

``KIND_TO_TYPE`` maps the bus's ``TicketEvent.kind`` to the public event types. Kinds that are not
emitted yet on this branch (the action lifecycle's ``action_executing``, ``action_completed``,
``action_timed_out``) are mapped already; a kind missing from the table is simply not a webhook.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from storage.db import after_commit, before_commit
from storage.tables import ActionRequest, Ticket, WebhookDelivery, WebhookEndpoint, WebhookEvent, new_id

if TYPE_CHECKING:
    from workflow.live.bus import EventBus, TicketEvent

EVENT_TYPES: tuple[str, ...] = (
    "ticket.created",
    "ticket.transitioned",
    "ticket.assigned",
    "message.created",
    "action.requested",
    "action.approved",
    "action.rejected",
    "action.executing",
    "action.completed",
    "ticket.escalated",
    "ticket.sla_breached",
)
PING_TYPE = "webhook.ping"

KIND_TO_TYPE: dict[str, str] = {
    "created": "ticket.created",
    "transitioned": "ticket.transitioned",
    "assigned": "ticket.assigned",
    "message_added": "message.created",
    "action_decided": "action.requested",  # every decided request; data.status says how it was decided
    "action_approved": "action.approved",
    "action_rejected": "action.rejected",
    "action_executing": "action.executing",
    "action_completed": "action.completed",  # data.outcome: SUCCEEDED or FAILED
    "action_executed": "action.completed",
    "action_failed": "action.completed",
    # An external action nobody reported on in time: the ticket is flagged for a human, i.e. escalated.
    "action_timed_out": "ticket.escalated",
    "escalated": "ticket.escalated",
    "sla_breached": "ticket.sla_breached",
}

_STAGED = "bookbag_webhook_staged"
_TICKET_FIELDS = (
    "id",
    "stage",
    "priority",
    "category",
    "team_id",
    "assignee_id",
    "needs_human",
    "tags",
    "subject",
    "channel",
    "customer_email",
    "customer_name",
    "order_id",
    "order_total",
    "order_currency",
)


def stage(session: Session, bus: EventBus, event: TicketEvent) -> None:
    """Note ``event`` for the outbox of this transaction (written just before commit, if subscribed)."""
    type_ = KIND_TO_TYPE.get(event.kind)
    if type_ is None:
        return
    version = event.data.get("version")
    session.info.setdefault(_STAGED, []).append((type_, event, version if isinstance(version, int) else None))
    before_commit(session, "webhook_outbox", lambda s: write_outbox(s, bus))


def subscribed_endpoints(session: Session, merchant_ids: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    """(merchant, event type) → the ids of its enabled endpoints subscribed to that type."""
    rows = session.exec(
        select(WebhookEndpoint.id, WebhookEndpoint.merchant_id, WebhookEndpoint.event_types).where(
            col(WebhookEndpoint.merchant_id).in_(sorted(set(merchant_ids))),
            col(WebhookEndpoint.enabled).is_(True),
        )
    ).all()
    subscribed: dict[tuple[str, str], list[str]] = defaultdict(list)
    for endpoint_id, merchant_id, types in rows:
        for type_ in types:
            subscribed[(merchant_id, type_)].append(endpoint_id)
    return subscribed


def write_outbox(session: Session, bus: EventBus) -> None:
    staged: list[tuple[str, TicketEvent, int | None]] = session.info.pop(_STAGED, [])
    if not staged:
        return
    subscribed = subscribed_endpoints(session, (event.merchant_id for _, event, _ in staged))
    wanted = [
        (t, e, v, subscribed[(e.merchant_id, t)]) for t, e, v in staged if (e.merchant_id, t) in subscribed
    ]
    if not wanted:
        return
    session.flush()  # new tickets and actions of this transaction become readable by id
    now = bus.clock()
    events: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for type_, event, version, endpoint_ids in wanted:
        ticket = session.get(Ticket, event.ticket_id) if event.ticket_id else None
        event_id = new_id("evt")
        events.append(
            {
                "id": event_id,
                "merchant_id": event.merchant_id,
                "type": type_,
                "ticket_id": event.ticket_id,
                "payload": payload_text(session, type_, event, ticket, version),
                "created_at": now,
            }
        )
        deliveries.extend(
            new_delivery(event.merchant_id, event_id, endpoint_id, now) for endpoint_id in endpoint_ids
        )
    session.execute(insert(WebhookEvent.__table__), events)  # type: ignore[attr-defined]
    session.execute(insert(WebhookDelivery.__table__), deliveries)  # type: ignore[attr-defined]
    after_commit(session, bus.outbox_written)


def new_delivery(merchant_id: str, event_id: str, endpoint_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id("whd"),
        "merchant_id": merchant_id,
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    summary = {name: getattr(ticket, name) for name in _TICKET_FIELDS}
    summary["tags"] = list(ticket.tags)
    return summary


def payload_text(
    session: Session, type_: str, event: TicketEvent, ticket: Ticket | None, version: int | None
) -> str:
    """The JSON body: ``type``, ``timestamp`` (when the change happened) and ``data`` with the merchant, the
    ticket and ``ticket_version`` (the ticket's version right after this change, for ordering), the event's
    own fields, ``ticket`` (the ticket as committed) and, for action events, ``action`` (the request as
    committed: type, amount, params, status and the decision — what a partner needs to carry it out)."""
    data: dict[str, Any] = {
        "merchant_id": event.merchant_id,
        "ticket_id": event.ticket_id,
        "ticket_version": version if version is not None else (ticket.version if ticket else None),
    }
    data.update((k, v) for k, v in event.data.items() if k != "version")
    if ticket is not None:
        data["ticket"] = ticket_summary(ticket)
    action_id = event.data.get("action_id")
    if isinstance(action_id, str):
        action = session.get(ActionRequest, action_id)
        if action is not None and action.merchant_id == event.merchant_id:
            data["action"] = action.model_dump(mode="json", exclude={"facts", "merchant_id"})
    body = {"type": type_, "timestamp": event.at.isoformat(), "data": data}
    return json.dumps(body, separators=(",", ":"), default=str)
