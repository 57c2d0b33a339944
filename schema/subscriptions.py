"""The Subscription root: ``queueUpdates`` and ``ticketEvents`` (graphql-transport-ws only), each backed by
one resolver in ``resolvers/subscriptions.py``."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers import subscriptions as s
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
