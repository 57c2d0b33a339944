"""Tickets and what hangs off them: customer and order facts, SLA, team, assignee, messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from resolvers.context import RequestContext
from schema.common import Node, PageInfo
from schema.enums import Channel, MessageAuthor, Priority, Stage
from storage import tables

if TYPE_CHECKING:
    from schema.actions import ActionRequest

Info = strawberry.Info[RequestContext, None]


@strawberry.type
class Customer:
    email: str | None
    name: str | None
    vip: bool
    lifetime_value: float | None
    order_count: int | None


@strawberry.type(name="OrderFacts")
class OrderFacts:
    id: str | None
    total: float | None
    currency: str | None
    financial_status: str | None
    fulfillment_status: str | None
    created_at: datetime | None
    delivered_at: datetime | None


@strawberry.type
class Sla:
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    first_responded_at: datetime | None
    breached_at: datetime | None


@strawberry.type
class Team(Node):
    id: strawberry.ID
    name: str

    @classmethod
    def from_model(cls, row: tables.Team) -> Team:
        return cls(id=strawberry.ID(row.id), name=row.name)


@strawberry.type
class Agent(Node):
    id: strawberry.ID
    name: str
    email: str
    skills: list[str]
    capacity: int
    available: bool

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
    id: strawberry.ID
    ticket_id: strawberry.ID
    author_type: MessageAuthor
    body: str
    created_at: datetime

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
    id: strawberry.ID
    channel: Channel
    subject: str
    body: str
    customer: Customer
    order: OrderFacts
    category: str | None
    category_confidence: float | None
    priority: Priority
    priority_confidence: float | None
    model_version: str | None
    stage: Stage
    stage_entered_at: datetime
    team_id: strawberry.ID | None
    assignee_id: strawberry.ID | None
    tags: list[str]
    needs_human: bool = strawberry.field(description="A rule asked for a human to take over.")
    routing_rule_id: str | None
    sla: Sla
    resolved_at: datetime | None
    version: int = strawberry.field(
        description="Optimistic-concurrency version: pass it as `expectedVersion`."
    )
    created_at: datetime
    updated_at: datetime

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
    cursor: str
    node: Ticket


@strawberry.type
class TicketConnection:
    edges: list[TicketEdge]
    page_info: PageInfo
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        return await self.count_total()
