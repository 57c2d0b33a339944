"""The ``ticketEvents`` subscription's item: one committed change to a ticket (created, message added,
transitioned, assigned, action requested/decided, escalated, SLA breached…)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON


@strawberry.type(description="A change to a ticket, published after its transaction committed.")
class TicketEvent:
    kind: str = strawberry.field(
        description="created, message_added, transitioned, assigned, updated, action_decided, "
        "action_approved, action_rejected, action_executing (an external action handed to the partner system: "
        "`data` carries the action, the ticket's version, customer and order), action_completed, "
        "action_timed_out, escalated, sla_breached, …"
    )
    ticket_id: strawberry.ID | None = strawberry.field(description="The ticket.")
    at: datetime = strawberry.field(description="When it happened.")
    data: JSON = strawberry.field(description="What changed (version, stage, and the event's own fields).")
