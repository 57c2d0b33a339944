"""Tickets and what hangs off them: customer and order facts, SLA, team, assignee, messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from runtime.context import RequestContext
from schema.common import Node, PageInfo
from schema.enums import Channel, MessageAuthor, Priority, Stage
from storage import tables

if TYPE_CHECKING:
    from schema.actions import ActionRequest

Info = strawberry.Info[RequestContext, None]


@strawberry.type
class Customer:
    email: str | None = strawberry.field(
        description="The customer's email address, as the partner system sent it."
    )
    name: str | None = strawberry.field(description="The customer's name.")
    vip: bool = strawberry.field(
        description="The store marks this customer as a VIP (a fact the rules read: `customer.vip`)."
    )
    lifetime_value: float | None = strawberry.field(
        description="What the customer has spent at the store, in the store's currency."
    )
    order_count: int | None = strawberry.field(description="How many orders the customer has placed.")


@strawberry.type(name="OrderFacts")
class OrderFacts:
    id: str | None = strawberry.field(description="The store's order id the ticket is about (searchable).")
    total: float | None = strawberry.field(description="The order's total, in `currency`.")
    currency: str | None = strawberry.field(description="ISO 4217 code of the order's total.")
    financial_status: str | None = strawberry.field(
        description="The store's payment status of the order (e.g. paid, refunded)."
    )
    fulfillment_status: str | None = strawberry.field(
        description="The store's shipping status of the order (e.g. fulfilled, unfulfilled)."
    )
    created_at: datetime | None = strawberry.field(description="When the order was placed.")
    delivered_at: datetime | None = strawberry.field(description="When the order was delivered, if it was.")


@strawberry.type
class Sla:
    first_response_due_at: datetime | None = strawberry.field(
        description="When the first reply is due under the ruleset's SLA for the ticket's priority."
    )
    resolution_due_at: datetime | None = strawberry.field(
        description="When the ticket is due to be resolved."
    )
    first_responded_at: datetime | None = strawberry.field(
        description="When an agent or the AI first replied."
    )
    breached_at: datetime | None = strawberry.field(
        description="When the scheduler marked an SLA target missed (null: not breached)."
    )


@strawberry.type
class Team(Node):
    id: strawberry.ID = strawberry.field(description="Global id (`team_…`).")
    name: str = strawberry.field(description="The team's name, as rulesets route to it.")

    @classmethod
    def from_model(cls, row: tables.Team) -> Team:
        return cls(id=strawberry.ID(row.id), name=row.name)


@strawberry.type
class Agent(Node):
    id: strawberry.ID = strawberry.field(description="Global id (`agt_…`).")
    name: str = strawberry.field(description="The agent's display name.")
    email: str = strawberry.field(description="The agent's email address.")
    skills: list[str] = strawberry.field(description="Skills assignment strategies may match.")
    capacity: int = strawberry.field(description="How many open tickets the agent takes at most.")
    available: bool = strawberry.field(description="Whether assignment may give the agent new tickets.")

    @classmethod
    def from_model(cls, row: tables.Agent) -> Agent:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            email=row.email,
            skills=list(row.skills),
            capacity=row.capacity,
            available=row.available,
        )

    @strawberry.field
    async def teams(self, info: Info) -> list[Team]:
        team_ids = await info.context.loaders.agent_team_ids.load(self.id)
        teams = await info.context.loaders.team.load_many(team_ids)
        return [Team.from_model(t) for t in teams if t is not None]


@strawberry.type
class Message:
    id: strawberry.ID = strawberry.field(description="The message's id (`msg_…`).")
    ticket_id: strawberry.ID = strawberry.field(description="The ticket it belongs to.")
    author_type: MessageAuthor = strawberry.field(
        description="Who wrote it; set from the API key, never from input (SYSTEM only from Bookbag)."
    )
    body: str = strawberry.field(description="The text as written.")
    created_at: datetime = strawberry.field(description="When it was added.")

    @classmethod
    def from_model(cls, row: tables.Message) -> Message:
        return cls(
            id=strawberry.ID(row.id),
            ticket_id=strawberry.ID(row.ticket_id),
            author_type=MessageAuthor(row.author_type),
            body=row.body,
            created_at=row.created_at,
        )


_TICKET_COLUMNS = frozenset(tables.Ticket.model_fields)


def _columns(row: tables.Ticket) -> dict[str, Any]:
    """The row's column values. A loaded ORM row keeps them in its ``__dict__``; reading them there skips
    SQLAlchemy's attribute descriptor (40 reads per ticket, most of a 50-ticket page's conversion time). A
    row with anything unloaded or expired goes through the descriptors, which load it."""
    values = row.__dict__
    if values.keys() >= _TICKET_COLUMNS:
        return values
    return {name: getattr(row, name) for name in _TICKET_COLUMNS}


@strawberry.type
class Ticket(Node):
    id: strawberry.ID = strawberry.field(description="Global id (`tkt_…`).")
    channel: Channel = strawberry.field(description="Where the ticket came from.")
    subject: str = strawberry.field(description="The subject line.")
    body: str = strawberry.field(
        description="The customer's message exactly as it arrived (the rules and the classifier read it cleaned: quoted history, signatures and HTML removed)."
    )
    customer: Customer = strawberry.field(description="Who wrote in.")
    order: OrderFacts = strawberry.field(
        description="The order the ticket is about, if the partner system sent one."
    )
    category: str | None = strawberry.field(
        description="The classifier's category (or an agent's correction); `other` below the confidence threshold."
    )
    category_confidence: float | None = strawberry.field(
        description="The classifier's confidence in `category`, 0-1 (calibrated)."
    )
    priority: Priority = strawberry.field(
        description="The ticket's priority; routing rules may override the classifier's."
    )
    priority_confidence: float | None = strawberry.field(
        description="The classifier's confidence in its priority, 0-1."
    )
    model_version: str | None = strawberry.field(
        description="The classifier model that classified the ticket."
    )
    stage: Stage = strawberry.field(description="Where the ticket is in the workflow.")
    stage_entered_at: datetime = strawberry.field(
        description="When the ticket entered its current stage (the queue's age in stage)."
    )
    team_id: strawberry.ID | None = strawberry.field(description="The team the ticket is routed to.")
    assignee_id: strawberry.ID | None = strawberry.field(description="The agent the ticket is assigned to.")
    tags: list[str] = strawberry.field(description="Tags set by routing rules, escalations and agents.")
    needs_human: bool = strawberry.field(description="A rule asked for a human to take over.")
    routing_rule_id: str | None = strawberry.field(
        description="The routing rule that placed the ticket (null: none matched)."
    )
    sla: Sla = strawberry.field(description="The ticket's SLA targets and whether they were met.")
    resolved_at: datetime | None = strawberry.field(
        description="When the ticket reached a resolved or closed stage."
    )
    version: int = strawberry.field(
        description="Optimistic-concurrency version: pass it as `expectedVersion`."
    )
    created_at: datetime = strawberry.field(description="When the ticket was created.")
    updated_at: datetime = strawberry.field(description="When the ticket last changed.")

    @classmethod
    def from_model(cls, row: tables.Ticket) -> Ticket:
        v = _columns(row)
        team_id, assignee_id = v["team_id"], v["assignee_id"]
        return cls(
            id=strawberry.ID(v["id"]),
            channel=Channel(v["channel"]),
            subject=v["subject"],
            body=v["body"],
            customer=Customer(
                email=v["customer_email"],
                name=v["customer_name"],
                vip=v["customer_vip"],
                lifetime_value=v["customer_lifetime_value"],
                order_count=v["customer_order_count"],
            ),
            order=OrderFacts(
                id=v["order_id"],
                total=v["order_total"],
                currency=v["order_currency"],
                financial_status=v["order_financial_status"],
                fulfillment_status=v["order_fulfillment_status"],
                created_at=v["order_created_at"],
                delivered_at=v["order_delivered_at"],
            ),
            category=v["category"],
            category_confidence=v["category_confidence"],
            priority=Priority(v["priority"]),
            priority_confidence=v["priority_confidence"],
            model_version=v["model_version"],
            stage=Stage(v["stage"]),
            stage_entered_at=v["stage_entered_at"],
            team_id=strawberry.ID(team_id) if team_id else None,
            assignee_id=strawberry.ID(assignee_id) if assignee_id else None,
            tags=list(v["tags"]),
            needs_human=v["needs_human"],
            routing_rule_id=v["routing_rule_id"],
            sla=Sla(
                first_response_due_at=v["first_response_due_at"],
                resolution_due_at=v["resolution_due_at"],
                first_responded_at=v["first_responded_at"],
                breached_at=v["sla_breached_at"],
            ),
            resolved_at=v["resolved_at"],
            version=v["version"],
            created_at=v["created_at"],
            updated_at=v["updated_at"],
        )

    @strawberry.field
    async def team(self, info: Info) -> Team | None:
        if self.team_id is None:
            return None
        row = await info.context.loaders.team.load(self.team_id)
        return Team.from_model(row) if row else None

    @strawberry.field
    async def assignee(self, info: Info) -> Agent | None:
        if self.assignee_id is None:
            return None
        row = await info.context.loaders.agent.load(self.assignee_id)
        return Agent.from_model(row) if row else None

    @strawberry.field
    async def messages(self, info: Info) -> list[Message]:
        return [Message.from_model(m) for m in await info.context.loaders.messages.load(self.id)]

    @strawberry.field
    async def actions(self, info: Info) -> list[Annotated[ActionRequest, strawberry.lazy("schema.actions")]]:
        from schema.actions import ActionRequest

        return [ActionRequest.from_model(a) for a in await info.context.loaders.actions.load(self.id)]


@strawberry.type
class TicketEdge:
    cursor: str = strawberry.field(
        description="Pass as `after` to get the tickets after this one (same order only)."
    )
    node: Ticket = strawberry.field(description="The ticket.")


@strawberry.type
class TicketConnection:
    edges: list[TicketEdge] = strawberry.field(description="The page's tickets, in the requested order.")
    page_info: PageInfo = strawberry.field(description="Where this page sits.")
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        return await self.count_total()
