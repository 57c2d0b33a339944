"""Subscription resolvers: ``queueUpdates`` (coalesced queue snapshots from the process's queue hub) and
``ticketEvents`` (committed ticket events from the event bus), each authorized for the key's merchant.

A snapshot is mapped to its GraphQL type once, however many subscribers receive it.

The websocket fan-out (``bookbag.ws.protocol``) runs ``ticketEvents`` through this resolver only for its
authorization: with a :class:`TicketEventsHandoff` in :data:`ticket_events_handoff` the resolver checks the
key's role and the ticket, records the ticket filter in the handoff and ends without waiting for events;
the fan-out then delivers the events itself, executing the document once per event for all subscribers.
``pendingActionUpdates`` (the approval inbox's changes) hands over the same way: its items are the ticket
events that change an inbox (:data:`workflow.actions.INBOX_EVENTS`) for the subscriber's role, executed once
per event, document and role.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from dataclasses import dataclass

import strawberry
from strawberry.scalars import JSON

from resolvers import roles
from resolvers.runner import ApiError, read, require_role
from schema.actions import PendingActionsUpdate
from schema.enums import Stage
from schema.queue import Queue, QueueStage, StageDuration
from schema.ticket_events import TicketEvent
from schema.tickets import Info
from workflow.actions import INBOX_EVENTS
from workflow.errors import DomainError
from workflow.live.bus import TicketEvent as BusEvent
from workflow.queue import QueueSnapshot
from workflow.tickets.service import get_ticket

# The version of the last snapshot this task's queueUpdates resolver yielded: the websocket fast path
# (bookbag.ws.protocol) continues from it without sending that snapshot twice.
last_queue_version: ContextVar[int] = ContextVar("last_queue_version", default=-1)


@dataclass
class TicketEventsHandoff:
    """Filled in by the ``ticketEvents`` resolver when the subscription is authorized."""

    authorized: bool = False
    ticket_id: str | None = None  # only this ticket's events, when the subscriber asked for one


# Set by the websocket fan-out in the operation's own task; None everywhere else (the resolver then streams).
ticket_events_handoff: ContextVar[TicketEventsHandoff | None] = ContextVar(
    "ticket_events_handoff", default=None
)

_MAPPED_CACHE = 64
_mapped: OrderedDict[int, tuple[QueueSnapshot, Queue]] = OrderedDict()


def queue_from_snapshot(snap: QueueSnapshot) -> Queue:
    """The GraphQL view of a snapshot, memoized by identity (the hub fans one object out to everyone)."""
    cached = _mapped.get(id(snap))
    if cached is not None and cached[0] is snap:
        return cached[1]
    now = snap.generated_at
    mapped = Queue(
        version=snap.version,
        generated_at=now,
        open_count=snap.open_count,
        stages=[
            QueueStage(
                stage=Stage(s.stage),
                count=s.count,
                oldest_open_at=s.oldest_open_at,
                oldest_age_seconds=s.age_seconds(now),
                sla_breached=s.sla_breached,
                oldest_ticket_id=strawberry.ID(s.oldest_ticket_id) if s.oldest_ticket_id else None,
            )
            for s in snap.stages
        ],
        time_in_stage=[
            StageDuration(
                from_stage=Stage(d.from_stage),
                to_stage=Stage(d.to_stage),
                count=d.count,
                mean_seconds=d.mean_seconds,
                p50_seconds=d.p50_seconds,
                p90_seconds=d.p90_seconds,
            )
            for d in snap.time_in_stage
        ],
    )
    _mapped[id(snap)] = (snap, mapped)
    while len(_mapped) > _MAPPED_CACHE:
        _mapped.popitem(last=False)
    return mapped


async def queue_updates(info: Info) -> AsyncGenerator[Queue, None]:
    ctx = info.context
    principal = ctx.auth
    try:
        require_role(principal, roles.READERS)
    except DomainError as exc:
        raise ApiError(exc.code.value, exc.message, exc.field) from None
    hub = ctx.runtime.queue_hub
    if hub is None:
        raise ApiError("UNAVAILABLE", "live queue updates are not enabled on this server")
    async with hub.subscribe(principal.merchant_id) as snapshots:
        async for snap in snapshots:
            last_queue_version.set(snap.version)
            yield queue_from_snapshot(snap)


async def ticket_events(
    info: Info, ticket_id: strawberry.ID | None = None
) -> AsyncGenerator[TicketEvent, None]:
    ctx = info.context
    principal = ctx.auth
    try:
        require_role(principal, roles.READERS)
        if ticket_id is not None:
            # Another merchant's ticket answers exactly like a missing one.
            await read(ctx, lambda session: get_ticket(session, principal, str(ticket_id)))
    except DomainError as exc:
        raise ApiError(exc.code.value, exc.message, exc.field) from None
    handoff = ticket_events_handoff.get()
    if handoff is not None:
        handoff.authorized = True
        handoff.ticket_id = None if ticket_id is None else str(ticket_id)
        return
    async with ctx.runtime.services.bus.subscribe(principal.merchant_id) as events:
        async for event in events:
            if ticket_id is not None and event.ticket_id != ticket_id:
                continue
            yield ticket_event_from(event)


def ticket_event_from(event: BusEvent) -> TicketEvent:
    """The GraphQL view of a committed ticket event."""
    return TicketEvent(
        kind=event.kind,
        ticket_id=strawberry.ID(event.ticket_id) if event.ticket_id else None,
        at=event.at,
        data=JSON(event.data),
    )


def concerns_inbox(event: BusEvent, role: str) -> bool:
    """Whether a committed event changes the approval inbox of ``role``: a request it may decide arrived,
    or one was decided."""
    if event.kind not in INBOX_EVENTS:
        return False
    if event.kind == "action_decided" and event.data.get("status") != "pending_approval":
        return False
    return role in event.data.get("approvers", ())


def pending_update_from(event: BusEvent) -> PendingActionsUpdate:
    status = event.data.get("status")
    if status is None:
        status = {"action_approved": "approved", "action_rejected": "rejected"}.get(event.kind)
    return PendingActionsUpdate(
        kind=event.kind,
        action_id=strawberry.ID(str(event.data.get("action_id", ""))),
        ticket_id=strawberry.ID(event.ticket_id) if event.ticket_id else None,
        at=event.at,
        status=status,
    )


async def pending_action_updates(info: Info) -> AsyncGenerator[PendingActionsUpdate, None]:
    ctx = info.context
    principal = ctx.auth
    try:
        require_role(principal, roles.ACTION_DECIDERS)
    except DomainError as exc:
        raise ApiError(exc.code.value, exc.message, exc.field) from None
    handoff = ticket_events_handoff.get()
    if handoff is not None:
        handoff.authorized = True
        return
    role = principal.role.value
    async with ctx.runtime.services.bus.subscribe(principal.merchant_id) as events:
        async for event in events:
            if concerns_inbox(event, role):
                yield pending_update_from(event)
