"""Partner updates of a ticket's tags, customer and order fields, and the bounds shared with ingest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage.tables import Ticket
from workflow.errors import invalid
from workflow.services import WorkflowServices
from workflow.tenancy.principal import TICKET_WRITERS, Principal
from workflow.tickets.changes import check_version, record_change, snapshot
from workflow.tickets.read import get_ticket

MAX_BODY = 50_000


MAX_SUBJECT = 500


MAX_TAGS = 50


MAX_TAG = 60


@dataclass(frozen=True)
class TicketUpdate:
    """Partner-editable fields; ``None`` leaves a field as it is."""

    tags: list[str] | None = None
    customer_email: str | None = None
    customer_name: str | None = None
    customer_vip: bool | None = None
    customer_lifetime_value: float | None = None
    customer_order_count: int | None = None
    order_id: str | None = None
    order_total: float | None = None
    order_currency: str | None = None
    order_financial_status: str | None = None
    order_fulfillment_status: str | None = None
    order_created_at: datetime | None = None
    order_delivered_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def clean_tags(tags: Sequence[str]) -> list[str]:
    cleaned = sorted({t.strip().lower() for t in tags if t.strip()})
    if len(cleaned) > MAX_TAGS:
        raise invalid(f"at most {MAX_TAGS} tags", "tags")
    for tag in cleaned:
        if len(tag) > MAX_TAG:
            raise invalid(f"tags must be at most {MAX_TAG} characters", "tags")
    return cleaned


def update_ticket(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    ticket_id: str,
    changes: TicketUpdate,
    expected_version: int | None = None,
) -> Ticket:
    principal.require(*TICKET_WRITERS)
    ticket = get_ticket(session, principal, ticket_id, for_update=True)
    check_version(ticket, expected_version)
    before = {**snapshot(ticket), **_partner_fields(ticket)}
    if changes.tags is not None:
        ticket.tags = clean_tags(changes.tags)
    for name in _PARTNER_FIELDS:
        value = getattr(changes, name)
        if value is not None:
            setattr(ticket, name, value)
    validate_ticket_fields(ticket)
    record_change(
        session,
        services,
        principal,
        ticket,
        audit_kind="ticket.updated",
        event_kind="updated",
        before=before,
        after={**snapshot(ticket), **_partner_fields(ticket)},
    )
    return ticket


_PARTNER_FIELDS = (
    "customer_email",
    "customer_name",
    "customer_vip",
    "customer_lifetime_value",
    "customer_order_count",
    "order_id",
    "order_total",
    "order_currency",
    "order_financial_status",
    "order_fulfillment_status",
    "order_created_at",
    "order_delivered_at",
)


def _partner_fields(ticket: Ticket) -> dict[str, Any]:
    values = {name: getattr(ticket, name) for name in _PARTNER_FIELDS}
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}


def validate_ticket_fields(ticket: Ticket) -> None:
    """Bounds shared by ingest and updates; raises INVALID_INPUT naming the field."""
    if len(ticket.subject) > MAX_SUBJECT:
        raise invalid(f"subject must be at most {MAX_SUBJECT} characters", "subject")
    if len(ticket.body) > MAX_BODY:
        raise invalid(f"body must be at most {MAX_BODY} characters", "body")
    if ticket.customer_email is not None and (
        "@" not in ticket.customer_email or len(ticket.customer_email) > 320
    ):
        raise invalid("customer email is not an email address", "customerEmail")
    for name in ("customer_lifetime_value", "order_total"):
        value = getattr(ticket, name)
        if value is not None and not (0 <= value < 1e12):
            raise invalid(f"{name} must be a non-negative amount", name)
    if ticket.customer_order_count is not None and not 0 <= ticket.customer_order_count < 10**9:
        raise invalid("customer order count must be non-negative", "customerOrderCount")
    if ticket.order_currency is not None and (
        len(ticket.order_currency) != 3 or not ticket.order_currency.isalpha()
    ):
        raise invalid("currency must be a 3-letter ISO code", "orderCurrency")
    for name in ("customer_name", "order_id", "order_financial_status", "order_fulfillment_status"):
        value = getattr(ticket, name)
        if value is not None and len(value) > 200:
            raise invalid(f"{name} must be at most 200 characters", name)
