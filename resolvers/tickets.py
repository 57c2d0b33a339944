"""Ticket queries and mutations: me, ticket, tickets, createTicket, addMessage, assign/update/transition,
correctClassification."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import strawberry
from sqlmodel import Session

from resolvers import roles
from resolvers.runner import mutate, query, require_role
from resolvers.snapshots import dump, load
from schema.common import Node, PageInfo, UserError
from schema.enums import Actor, Role
from schema.inputs import (
    AddMessageInput,
    AssignTicketInput,
    CorrectClassificationInput,
    CreateTicketInput,
    CustomerInput,
    OrderInput,
    SortDirection,
    TicketFilter,
    TicketOrder,
    TransitionTicketInput,
    UpdateTicketInput,
)
from schema.me import Me, Merchant
from schema.payloads import (
    Classification,
    CreateTicketPayload,
    MessagePayload,
    RoutingDecision,
    TicketPayload,
)
from schema.tickets import Agent, Info, Team, Ticket, TicketConnection, TicketEdge
from storage import tables
from workflow.errors import DomainError, invalid
from workflow.services import WorkflowServices
from workflow.tenancy.merchants import get_merchant
from workflow.tenancy.principal import Principal
from workflow.tickets import service as tickets_service
from workflow.tickets.ingest import TicketInput, create_tickets


async def me(info: Info) -> Me:
    ctx = info.context
    principal = ctx.auth
    merchant = await query(ctx, roles.ANY, lambda s, p: get_merchant(s, p.merchant_id))
    actor = None if principal.role.value == "viewer" else Actor(principal.actor.value)
    return Me(
        merchant=Merchant.from_model(merchant),
        role=Role(principal.role.value),
        actor=actor,
        key_id=strawberry.ID(principal.key_id) if principal.key_id else None,
    )


async def ticket(info: Info, id: strawberry.ID) -> Ticket | None:
    """Another merchant's ticket answers exactly like a missing one: null."""
    row = await info.context.loaders.ticket.load(str(id))
    return Ticket.from_model(row) if row else None


async def node(info: Info, id: strawberry.ID) -> Node | None:
    """Any object by its global id (the prefix names its type); null for unknown ids and for other
    merchants' objects, exactly like a missing one."""
    loaders = info.context.loaders
    key = str(id)
    if key.startswith("tkt_"):
        ticket = await loaders.ticket.load(key)
        return Ticket.from_model(ticket) if ticket else None
    if key.startswith("team_"):
        team = await loaders.team.load(key)
        return Team.from_model(team) if team else None
    if key.startswith("agt_"):
        agent = await loaders.agent.load(key)
        return Agent.from_model(agent) if agent else None
    return None


def _filter(flt: TicketFilter | None, now: datetime) -> tickets_service.TicketFilter:
    if flt is None:
        return tickets_service.TicketFilter()
    return tickets_service.TicketFilter(
        stage=flt.stage.value if flt.stage else None,
        category=flt.category,
        priority=flt.priority.value if flt.priority else None,
        team_id=str(flt.team_id) if flt.team_id else None,
        assignee_id=str(flt.assignee_id) if flt.assignee_id else None,
        tag=flt.tag,
        text=flt.text,
        created_after=flt.created_after,
        created_before=flt.created_before,
        open_only=flt.open_only,
        search=flt.search,
        customer_email=flt.customer_email,
        order_id=flt.order_id,
        needs_human=flt.needs_human,
        sla_breached=flt.sla_breached,
        now=now,
    )


def _order(order: TicketOrder | None) -> tickets_service.TicketOrder:
    if order is None:
        return tickets_service.DEFAULT_ORDER
    return tickets_service.TicketOrder(
        sort=tickets_service.TicketSort(order.field.value), descending=order.direction is SortDirection.DESC
    )


async def tickets(
    info: Info,
    filter: TicketFilter | None = None,
    first: int | None = None,
    after: str | None = None,
    order_by: TicketOrder | None = None,
) -> TicketConnection:
    """Newest first unless `orderBy` says otherwise. `first` defaults to 20 and is capped (see the error
    for the cap)."""
    ctx = info.context
    limits = ctx.runtime.limits
    size = limits.default_page_size if first is None else first
    flt = _filter(filter, ctx.runtime.services.clock())
    order = _order(order_by)
    page = await query(
        ctx,
        roles.READERS,
        lambda s, p: tickets_service.list_tickets(
            s, p, flt, first=size, after=after, max_page=limits.max_page_size, order=order
        ),
    )
    loader = ctx.loaders.ticket
    edges = []
    for row in page.items:
        loader.prime(row.id, row)
        edges.append(
            TicketEdge(cursor=tickets_service.encode_cursor(row, order), node=Ticket.from_model(row))
        )

    async def count_total() -> int:
        return await query(ctx, roles.READERS, lambda s, p: tickets_service.count_tickets(s, p, flt))

    return TicketConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            end_cursor=page.end_cursor,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
        ),
        count_total=count_total,
    )


def _finite(value: float | None, field: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise invalid(f"{field} must be a finite number", field)
    return value


def _customer_fields(customer: CustomerInput | None) -> dict[str, Any]:
    if customer is None:
        return {}
    values = {
        "customer_email": customer.email,
        "customer_name": customer.name,
        "customer_vip": customer.vip,
        "customer_lifetime_value": _finite(customer.lifetime_value, "customer.lifetimeValue"),
        "customer_order_count": customer.order_count,
    }
    return {k: v for k, v in values.items() if v is not None}


def _order_fields(order: OrderInput | None) -> dict[str, Any]:
    if order is None:
        return {}
    values = {
        "order_id": order.id,
        "order_total": _finite(order.total, "order.total"),
        "order_currency": order.currency,
        "order_financial_status": order.financial_status,
        "order_fulfillment_status": order.fulfillment_status,
        "order_created_at": order.created_at,
        "order_delivered_at": order.delivered_at,
    }
    return {k: v for k, v in values.items() if v is not None}


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


def _ticket_payload(
    snapshot: dict[str, Any] | None, error: DomainError | None, replayed: bool
) -> TicketPayload:
    if error is not None or snapshot is None:
        return TicketPayload(errors=[UserError.from_domain(error)] if error else [])
    row = load(tables.Ticket, snapshot["ticket"])
    return TicketPayload(ticket=Ticket.from_model(row) if row else None, replayed=replayed)


def ingest_group(
    session: Session, services: WorkflowServices, requests: Sequence[tuple[Principal, Any]]
) -> list[dict[str, Any] | DomainError]:
    """createTicket's batch service (see workflow.tickets.group_commit): one snapshot or refusal per request."""
    return [
        result
        if isinstance(result, DomainError)
        else {
            "ticket": dump(result.ticket),
            "routing": result.routing,
            "classification": result.prediction.to_facts(),
        }
        for result in create_tickets(session, services, requests)
    ]


async def create_ticket_resolver(
    info: Info, input: CreateTicketInput, idempotency_key: str | None = None
) -> CreateTicketPayload:
    """The ingest pipeline: classify, route, set SLA due times, move new → triaged as `system`, store."""
    try:
        fields = {**_customer_fields(input.customer), **_order_fields(input.order)}
    except DomainError as exc:
        return CreateTicketPayload(errors=[UserError.from_domain(exc)])
    data = TicketInput(
        subject=input.subject,
        body=input.body,
        channel=input.channel.value,
        tags=list(input.tags or []),
        prior_contacts=input.prior_contacts,
        **fields,
    )
    payload = {
        "subject": input.subject,
        "body": input.body,
        "channel": input.channel.value,
        "tags": data.tags,
        "prior_contacts": input.prior_contacts,
        **_jsonable(fields),
    }

    try:
        require_role(info.context.auth, roles.TICKET_WRITERS)
    except DomainError as exc:
        return CreateTicketPayload(errors=[UserError.from_domain(exc)])
    group = info.context.runtime.group_commit("createTicket", ingest_group)
    snapshot, error, replayed = await group.submit(
        info.context.auth, payload=payload, idempotency_key=idempotency_key, service_input=data
    )
    if error is not None or snapshot is None:
        return CreateTicketPayload(errors=[UserError.from_domain(error)] if error else [])
    row = load(tables.Ticket, snapshot["ticket"])
    return CreateTicketPayload(
        ticket=Ticket.from_model(row) if row else None,
        routing=RoutingDecision.from_dict(snapshot["routing"]),
        classification=Classification.from_dict(snapshot["classification"]),
        replayed=replayed,
    )


async def add_message(
    info: Info, input: AddMessageInput, idempotency_key: str | None = None
) -> MessagePayload:
    author = input.author_type.value if input.author_type else None
    payload = {"ticket_id": str(input.ticket_id), "body": input.body, "author_type": author}

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        message = tickets_service.add_message(
            session, services, principal, ticket_id=str(input.ticket_id), body=input.body, author_type=author
        )
        row = tickets_service.get_ticket(session, principal, message.ticket_id)
        return {"message": dump(message), "ticket": dump(row)}

    snapshot, error, replayed = await mutate(
        info.context,
        roles.TICKET_WRITERS,
        operation="addMessage",
        payload=payload,
        idempotency_key=idempotency_key,
        work=work,
    )
    if error is not None or snapshot is None:
        return MessagePayload(errors=[UserError.from_domain(error)] if error else [])
    from schema.tickets import Message

    message_row = load(tables.Message, snapshot["message"])
    ticket_row = load(tables.Ticket, snapshot["ticket"])
    return MessagePayload(
        message=Message.from_model(message_row) if message_row else None,
        ticket=Ticket.from_model(ticket_row) if ticket_row else None,
        replayed=replayed,
    )


async def assign_ticket(
    info: Info, input: AssignTicketInput, idempotency_key: str | None = None
) -> TicketPayload:
    agent_id = str(input.agent_id) if input.agent_id else None
    team_id = str(input.team_id) if input.team_id else None
    payload = {
        "ticket_id": str(input.ticket_id),
        "agent_id": agent_id,
        "team_id": team_id,
        "expected_version": input.expected_version,
    }

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        row = tickets_service.assign_ticket(
            session,
            services,
            principal,
            ticket_id=str(input.ticket_id),
            agent_id=agent_id,
            team_id=team_id,
            expected_version=input.expected_version,
        )
        return {"ticket": dump(row)}

    return _ticket_payload(
        *await mutate(
            info.context,
            roles.ASSIGNERS,
            operation="assignTicket",
            payload=payload,
            idempotency_key=idempotency_key,
            work=work,
        )
    )


async def update_ticket(
    info: Info, input: UpdateTicketInput, idempotency_key: str | None = None
) -> TicketPayload:
    try:
        fields = {**_customer_fields(input.customer), **_order_fields(input.order)}
    except DomainError as exc:
        return TicketPayload(errors=[UserError.from_domain(exc)])
    tags = list(input.tags) if input.tags is not None else None
    payload = {
        "ticket_id": str(input.ticket_id),
        "expected_version": input.expected_version,
        "tags": tags,
        **_jsonable(fields),
    }
    changes = tickets_service.TicketUpdate(tags=tags, **fields)

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        row = tickets_service.update_ticket(
            session,
            services,
            principal,
            ticket_id=str(input.ticket_id),
            changes=changes,
            expected_version=input.expected_version,
        )
        return {"ticket": dump(row)}

    return _ticket_payload(
        *await mutate(
            info.context,
            roles.TICKET_WRITERS,
            operation="updateTicket",
            payload=payload,
            idempotency_key=idempotency_key,
            work=work,
        )
    )


async def transition_ticket(
    info: Info, input: TransitionTicketInput, idempotency_key: str | None = None
) -> TicketPayload:
    payload = {
        "ticket_id": str(input.ticket_id),
        "to": input.to.value,
        "expected_version": input.expected_version,
    }

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        row = tickets_service.transition_ticket(
            session,
            services,
            principal,
            ticket_id=str(input.ticket_id),
            to=input.to.value,
            expected_version=input.expected_version,
        )
        return {"ticket": dump(row)}

    return _ticket_payload(
        *await mutate(
            info.context,
            roles.TICKET_WRITERS,
            operation="transitionTicket",
            payload=payload,
            idempotency_key=idempotency_key,
            work=work,
        )
    )


async def correct_classification(
    info: Info, input: CorrectClassificationInput, idempotency_key: str | None = None
) -> TicketPayload:
    priority = input.priority.value if input.priority else None
    payload = {"ticket_id": str(input.ticket_id), "category": input.category, "priority": priority}

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        row = tickets_service.correct_classification(
            session,
            services,
            principal,
            ticket_id=str(input.ticket_id),
            category=input.category,
            priority=priority,
        )
        return {"ticket": dump(row)}

    return _ticket_payload(
        *await mutate(
            info.context,
            roles.CORRECTORS,
            operation="correctClassification",
            payload=payload,
            idempotency_key=idempotency_key,
            work=work,
        )
    )
