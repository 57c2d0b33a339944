"""Input types. Bounds on strings and numbers are enforced by the workflow services (INVALID_INPUT)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from schema.enums import ActionType, Actor, Channel, MessageAuthor, Priority, Stage


@strawberry.input
class CustomerInput:
    email: str | None = None
    name: str | None = None
    vip: bool | None = None
    lifetime_value: float | None = None
    order_count: int | None = None


@strawberry.input
class OrderInput:
    id: str | None = None
    total: float | None = None
    currency: str | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None


@strawberry.input
class CreateTicketInput:
    subject: str = ""
    body: str = ""
    channel: Channel = Channel.EMAIL
    customer: CustomerInput | None = None
    order: OrderInput | None = None
    tags: list[str] | None = None
    prior_contacts: int | None = strawberry.field(
        default=None, description="How often this customer wrote before (a classifier feature)."
    )


@strawberry.input
class TicketFilter:
    stage: Stage | None = None
    category: str | None = None
    priority: Priority | None = None
    team_id: strawberry.ID | None = None
    assignee_id: strawberry.ID | None = None
    tag: str | None = None
    text: str | None = strawberry.field(default=None, description="Substring of subject or body.")
    created_after: datetime | None = None
    created_before: datetime | None = None
    open_only: bool = False
    search: str | None = strawberry.field(
        default=None,
        description=(
            "Words to find in the subject, body, customer email and name, order id and tags (all words must "
            "match, whole; `alice@example.com` or `#A-1001` as phrases). Indexed: FTS5 on SQLite, a GIN "
            "tsvector on PostgreSQL."
        ),
    )
    customer_email: str | None = strawberry.field(default=None, description="Exact customer email.")
    order_id: str | None = strawberry.field(default=None, description="Exact order id.")
    needs_human: bool | None = None
    sla_breached: bool | None = strawberry.field(
        default=None, description="Breached, or past a due time now (as the queue counts breaches)."
    )


@strawberry.enum
class TicketSortField(Enum):
    CREATED = "created"
    UPDATED = "updated"
    STAGE_AGE = "stage_age"
    PRIORITY = "priority"


@strawberry.enum
class SortDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.input(
    description=(
        "DESC: newest, most recently updated, longest in its stage, most urgent (then newest) first; ASC the "
        "reverse. A cursor is only valid for the order it was handed out with."
    )
)
class TicketOrder:
    field: TicketSortField = TicketSortField.CREATED
    direction: SortDirection = SortDirection.DESC


@strawberry.input
class AddMessageInput:
    ticket_id: strawberry.ID
    body: str
    author_type: MessageAuthor | None = strawberry.field(
        default=None,
        description=(
            "Optional, and only ever the key's own author: agents and admins post as `AGENT`, AI keys as "
            "`AI`, partners relay `CUSTOMER` messages; anything else is `FORBIDDEN`. `SYSTEM` is Bookbag's own."
        ),
    )


@strawberry.input
class AssignTicketInput:
    ticket_id: strawberry.ID
    agent_id: strawberry.ID | None = None
    team_id: strawberry.ID | None = None
    expected_version: int | None = None


@strawberry.input
class UpdateTicketInput:
    ticket_id: strawberry.ID
    expected_version: int | None = None
    tags: list[str] | None = strawberry.field(default=None, description="Replaces the ticket's tags.")
    customer: CustomerInput | None = None
    order: OrderInput | None = None


@strawberry.input
class TransitionTicketInput:
    ticket_id: strawberry.ID
    to: Stage
    expected_version: int


@strawberry.input
class CorrectClassificationInput:
    ticket_id: strawberry.ID
    category: str | None = None
    priority: Priority | None = None


@strawberry.input(
    description="Give `type` for a built-in action, or `customType` for an external action type the "
    "merchant's active ruleset declares (`actions: {external: [...]}`); exactly one of the two."
)
class RequestActionInput:
    ticket_id: strawberry.ID
    type: ActionType | None = None
    custom_type: str | None = strawberry.field(
        default=None,
        description="An external action type the active ruleset declares (e.g. `create_return_label`); "
        "another name is refused with INVALID_INPUT on `type`.",
    )
    amount: float | None = None
    params: JSON | None = None


@strawberry.input(description="Narrows the approval inbox (`pendingActions`).")
class PendingActionFilter:
    ticket_id: strawberry.ID | None = None
    type: ActionType | None = None
    custom_type: str | None = strawberry.field(default=None, description="A ruleset-declared type.")
    actor: Actor | None = None


@strawberry.input
class SimulationActionInput:
    type: ActionType
    amount: float | None = None
    actor: Actor | None = None
    params: JSON | None = None


@strawberry.input(description="The ticket entered `stage` at `at`.")
class TimelineEntryInput:
    at: datetime
    stage: Stage


@strawberry.input(description="One case: raw `facts`, or an existing `ticketId` whose facts are computed.")
class SimulationCaseInput:
    facts: JSON | None = None
    ticket_id: strawberry.ID | None = None
    action: SimulationActionInput | None = None
    now: datetime | None = strawberry.field(
        default=None, description="The virtual clock: evaluate as if it were this time."
    )
    label: str | None = None
    timeline: list[TimelineEntryInput] | None = strawberry.field(
        default=None,
        description="Stage history, oldest first; a ticket case uses the ticket's own history when omitted.",
    )
