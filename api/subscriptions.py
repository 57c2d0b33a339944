"""The Subscription root: ``queueUpdates``, ``ticketEvents`` and ``pendingActionUpdates``
(graphql-transport-ws only), each backed by one resolver in ``resolvers/subscriptions.py``."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers import subscriptions as s
from schema.actions import PendingActionsUpdate
from schema.queue import Queue
from schema.ticket_events import TicketEvent


@strawberry.type
class Subscription:
    queue_updates: AsyncGenerator[Queue, None] = strawberry.subscription(
        resolver=s.queue_updates,
        description="The merchant's queue: a current snapshot first, then one per (coalesced) change; "
        "`version` only increases.",
    )
    ticket_events: AsyncGenerator[TicketEvent, None] = strawberry.subscription(
        resolver=s.ticket_events,
        description="Committed events of one ticket, or of all the merchant's tickets when ticketId is omitted.",
    )
    pending_action_updates: AsyncGenerator[PendingActionsUpdate, None] = strawberry.subscription(
        resolver=s.pending_action_updates,
        description="Changes to the caller's approval inbox (`pendingActions`): a request its role may decide "
        "arrived, or one was approved or rejected. Roles that may decide: admin, agent, ai, partner.",
    )
