"""Input types. Bounds on strings and numbers are enforced by the workflow services (INVALID_INPUT)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from schema.enums import ActionType, Actor, Channel, MessageAuthor, Priority, Stage


@strawberry.input(description="The customer, as the store knows them.")
class CustomerInput:
    email: str | None = strawberry.field(default=None, description="Their email address.")
    name: str | None = strawberry.field(default=None, description="Their name.")
    vip: bool | None = strawberry.field(default=None, description="The store's VIP flag.")
    lifetime_value: float | None = strawberry.field(
        default=None, description="What they have spent, in the store's currency."
    )
    order_count: int | None = strawberry.field(default=None, description="How many orders they placed.")


@strawberry.input(description="The order a ticket is about.")
class OrderInput:
    id: str | None = strawberry.field(default=None, description="The store's order id.")
    total: float | None = strawberry.field(default=None, description="The order's total.")
    currency: str | None = strawberry.field(default=None, description="ISO 4217 code of the total.")
    financial_status: str | None = strawberry.field(default=None, description="The store's payment status.")
    fulfillment_status: str | None = strawberry.field(
        default=None, description="The store's shipping status."
    )
    created_at: datetime | None = strawberry.field(default=None, description="When it was placed.")
    delivered_at: datetime | None = strawberry.field(default=None, description="When it was delivered.")


@strawberry.input(description="A new ticket from a partner system or frontend.")
class CreateTicketInput:
    subject: str = strawberry.field(default="", description="The subject line.")
    body: str = strawberry.field(default="", description="The message body.")
    channel: Channel = strawberry.field(default=Channel.EMAIL, description="Where it came from.")
    customer: CustomerInput | None = strawberry.field(default=None, description="Who it is from.")
    order: OrderInput | None = strawberry.field(default=None, description="The order it is about.")
    tags: list[str] | None = strawberry.field(default=None, description="Tags to start with.")
    prior_contacts: int | None = strawberry.field(
        default=None, description="How often this customer wrote before (a classifier feature)."
    )


@strawberry.input(description="Which tickets to list; every given condition must hold.")
class TicketFilter:
    stage: Stage | None = strawberry.field(default=None, description="Only tickets in this stage.")
    category: str | None = strawberry.field(default=None, description="Only tickets of this category.")
    priority: Priority | None = strawberry.field(default=None, description="Only tickets of this priority.")
    team_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only tickets routed to this team."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only tickets assigned to this agent."
    )
    tag: str | None = strawberry.field(default=None, description="Only tickets carrying this tag.")
    text: str | None = strawberry.field(default=None, description="Substring of subject or body.")
    created_after: datetime | None = strawberry.field(
        default=None, description="Only tickets created at or after this time."
    )
    created_before: datetime | None = strawberry.field(
        default=None, description="Only tickets created before this time."
    )
    open_only: bool = strawberry.field(default=False, description="Only tickets not resolved or closed.")
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
    needs_human: bool | None = strawberry.field(
        default=None, description="Only tickets flagged (or not flagged) for a human."
    )
    sla_breached: bool | None = strawberry.field(
        default=None, description="Breached, or past a due time now (as the queue counts breaches)."
    )


@strawberry.enum(description="What a ticket list can be sorted by.")
class TicketSortField(Enum):
    CREATED = "created"
    UPDATED = "updated"
    STAGE_AGE = "stage_age"
    PRIORITY = "priority"


@strawberry.enum(description="Ascending or descending.")
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
    field: TicketSortField = strawberry.field(default=TicketSortField.CREATED, description="What to sort by.")
    direction: SortDirection = strawberry.field(
        default=SortDirection.DESC, description="Ascending or descending."
    )


@strawberry.input(description="A message to post on a ticket.")
class AddMessageInput:
    ticket_id: strawberry.ID = strawberry.field(description="The ticket.")
    body: str = strawberry.field(description="The message.")
    author_type: MessageAuthor | None = strawberry.field(
        default=None,
        description=(
            "Optional, and only ever the key's own author: agents and admins post as `AGENT`, AI keys as "
            "`AI`, partners relay `CUSTOMER` messages; anything else is `FORBIDDEN`. `SYSTEM` is Bookbag's own."
        ),
    )


@strawberry.input(description="Who should work a ticket; give an agent, a team or both.")
class AssignTicketInput:
    ticket_id: strawberry.ID = strawberry.field(description="The ticket.")
    agent_id: strawberry.ID | None = strawberry.field(default=None, description="The agent.")
    team_id: strawberry.ID | None = strawberry.field(default=None, description="The team.")
    expected_version: int | None = strawberry.field(
        default=None, description="Refuse with CONFLICT unless the ticket is at this version."
    )


@strawberry.input(description="Partner-editable fields of a ticket; absent fields stay as they are.")
class UpdateTicketInput:
    ticket_id: strawberry.ID = strawberry.field(description="The ticket.")
    expected_version: int | None = strawberry.field(
        default=None, description="Refuse with CONFLICT unless the ticket is at this version."
    )
    tags: list[str] | None = strawberry.field(default=None, description="Replaces the ticket's tags.")
    customer: CustomerInput | None = strawberry.field(default=None, description="New customer fields.")
    order: OrderInput | None = strawberry.field(default=None, description="New order fields.")


@strawberry.input(description="A move of a ticket to another stage.")
class TransitionTicketInput:
    ticket_id: strawberry.ID = strawberry.field(description="The ticket.")
    to: Stage = strawberry.field(description="The stage to move to; must be an edge of the ruleset's graph.")
    expected_version: int = strawberry.field(
        description="Refuse with CONFLICT unless the ticket is at this version."
    )


@strawberry.input(description="An agent's correction of a ticket's classification.")
class CorrectClassificationInput:
    ticket_id: strawberry.ID = strawberry.field(description="The ticket.")
    category: str | None = strawberry.field(default=None, description="The right category.")
    priority: Priority | None = strawberry.field(default=None, description="The right priority.")


@strawberry.input(
    description="An action asked for on a ticket; the rules decide. Give `type` for a built-in action, or "
    "`customType` for an external action type the merchant's active ruleset declares "
    "(`actions: {external: [...]}`); exactly one of the two."
)
class RequestActionInput:
    ticket_id: strawberry.ID = strawberry.field(description="The ticket.")
    type: ActionType | None = strawberry.field(default=None, description="What to do (a built-in type).")
    custom_type: str | None = strawberry.field(
        default=None,
        description="An external action type the active ruleset declares (e.g. `create_return_label`); "
        "another name is refused with INVALID_INPUT on `type`.",
    )
    amount: float | None = strawberry.field(
        default=None, description="The amount for money actions, in the order's currency."
    )
    params: JSON | None = strawberry.field(
        default=None, description="Other parameters of the action (a JSON object)."
    )


@strawberry.input(description="Narrows the approval inbox (`pendingActions`).")
class PendingActionFilter:
    ticket_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only requests on this ticket."
    )
    type: ActionType | None = strawberry.field(default=None, description="Only requests of this type.")
    custom_type: str | None = strawberry.field(
        default=None, description="Only requests of this ruleset-declared type."
    )
    actor: Actor | None = strawberry.field(default=None, description="Only requests by this actor.")


@strawberry.input(description="The action a simulation case asks for.")
class SimulationActionInput:
    type: ActionType = strawberry.field(description="What is asked for.")
    amount: float | None = strawberry.field(default=None, description="The amount, for money actions.")
    actor: Actor | None = strawberry.field(default=None, description="Who asks.")
    params: JSON | None = strawberry.field(default=None, description="Other parameters of the action.")


@strawberry.input(description="The ticket entered `stage` at `at`.")
class TimelineEntryInput:
    at: datetime = strawberry.field(description="When.")
    stage: Stage = strawberry.field(description="The stage the ticket is in from then.")


@strawberry.input(description="One case: raw `facts`, or an existing `ticketId` whose facts are computed.")
class SimulationCaseInput:
    facts: JSON | None = strawberry.field(
        default=None, description="Facts to evaluate (ticket.*, customer.*, order.*, …)."
    )
    ticket_id: strawberry.ID | None = strawberry.field(
        default=None, description="Take the facts from this stored ticket instead."
    )
    action: SimulationActionInput | None = strawberry.field(
        default=None, description="An action to decide on."
    )
    now: datetime | None = strawberry.field(
        default=None, description="The virtual clock: evaluate as if it were this time."
    )
    label: str | None = strawberry.field(default=None, description="A name for the case.")
    timeline: list[TimelineEntryInput] | None = strawberry.field(
        default=None,
        description="Stage history, oldest first; a ticket case uses the ticket's own history when omitted.",
    )
