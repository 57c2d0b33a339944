"""Tickets: reading and listing them (with DB-backed cursors), stage transitions, assignment, partner
updates, messages and classification corrections. Ingest (creating a ticket) lives in ``workflow.tickets.ingest``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Text, and_, case, cast, func, not_, or_
from sqlmodel import Session, col, select

from policy import Actor
from storage.db import insert_later
from storage.search import search_condition, search_words
from storage.tables import ClassificationCorrection, Message, StageTransition, Team, Ticket
from workflow import audit
from workflow.errors import DomainError, ErrorCode, invalid, not_found
from workflow.live.bus import TicketEvent, publish_after_commit
from workflow.queue import breached_clause, bump_queue_version
from workflow.rulesets.versions import ActiveRuleset, active_ruleset
from workflow.services import WorkflowServices
from workflow.stages import CLOSED_STAGES, MESSAGE_AUTHORS, PRIORITIES
from workflow.tenancy.agents import count_open_tickets, get_agent, get_team
from workflow.tenancy.principal import TICKET_WRITERS, Principal, Role
from workflow.tickets.facts import stored_ticket_facts, with_action
from workflow.tickets.sla import apply_sla

MAX_BODY = 50_000
MAX_SUBJECT = 500
MAX_TAGS = 50
MAX_TAG = 60


@dataclass(frozen=True)
class TicketFilter:
    stage: str | None = None
    category: str | None = None
    priority: str | None = None
    team_id: str | None = None
    assignee_id: str | None = None
    tag: str | None = None
    text: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    open_only: bool = False
    search: str | None = None  # words over subject, body, customer, order id, tags (storage.search)
    customer_email: str | None = None  # exact, case-insensitive
    order_id: str | None = None  # exact
    needs_human: bool | None = None
    sla_breached: bool | None = None  # breached or overdue at ``now`` (workflow.queue.breached_clause)
    now: datetime | None = None  # the clock reading ``sla_breached`` is judged at


class TicketSort(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    STAGE_AGE = "stage_age"  # how long a ticket has been in its stage
    PRIORITY = "priority"  # urgent → low, then newest first


@dataclass(frozen=True)
class TicketOrder:
    """``descending`` means: newest, most recently updated, longest in its stage, most urgent first."""

    sort: TicketSort = TicketSort.CREATED
    descending: bool = True


@dataclass(frozen=True)
class TicketPage:
    items: list[Ticket]
    end_cursor: str | None
    has_next_page: bool


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


def snapshot(ticket: Ticket) -> dict[str, Any]:
    """The audit view of a ticket's mutable state."""
    return {
        "stage": ticket.stage,
        "priority": ticket.priority,
        "category": ticket.category,
        "team_id": ticket.team_id,
        "assignee_id": ticket.assignee_id,
        "tags": list(ticket.tags),
        "needs_human": ticket.needs_human,
        "version": ticket.version,
    }


def get_ticket(session: Session, principal: Principal, ticket_id: str, *, for_update: bool = False) -> Ticket:
    query = select(Ticket).where(Ticket.id == ticket_id, Ticket.merchant_id == principal.merchant_id)
    if for_update:
        query = query.with_for_update()
    ticket = session.exec(query).first()
    if ticket is None:
        raise not_found("ticket", "ticketId")
    return ticket


def get_tickets_by_ids(session: Session, merchant_id: str, ids: Sequence[str]) -> dict[str, Ticket]:
    if not ids:
        return {}
    rows = session.exec(
        select(Ticket).where(Ticket.merchant_id == merchant_id, col(Ticket.id).in_(list(ids)))
    )
    return {t.id: t for t in rows}


_PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


_SORT_COLUMNS = ("id", "created_at", "updated_at", "stage_entered_at", "priority")


def _ticket_column(name: str) -> Any:
    return col(getattr(Ticket, name))


def _sort_keys(order: TicketOrder, column: Callable[[str], Any] = _ticket_column) -> list[tuple[Any, bool]]:
    """(expression, ascending) per key of ``order``, ending with the id that makes the order total;
    ``column`` gives a column by name (the ticket's, or a subquery's)."""
    d = order.descending
    if order.sort is TicketSort.PRIORITY:
        rank = case(_PRIORITY_RANK, value=column("priority"), else_=len(_PRIORITY_RANK))
        return [(rank, d), (column("created_at"), not d), (column("id"), not d)]
    key = {
        TicketSort.CREATED: (column("created_at"), not d),
        TicketSort.UPDATED: (column("updated_at"), not d),
        TicketSort.STAGE_AGE: (column("stage_entered_at"), d),  # longest in stage = entered earliest
    }[order.sort]
    return [key, (column("id"), key[1])]


def _key_values(ticket: Ticket, order: TicketOrder) -> list[Any]:
    if order.sort is TicketSort.PRIORITY:
        return [_PRIORITY_RANK.get(ticket.priority, len(_PRIORITY_RANK)), ticket.created_at.isoformat()]
    at = {
        TicketSort.CREATED: ticket.created_at,
        TicketSort.UPDATED: ticket.updated_at,
        TicketSort.STAGE_AGE: ticket.stage_entered_at,
    }[order.sort]
    return [at.isoformat()]


DEFAULT_ORDER = TicketOrder()


def encode_cursor(ticket: Ticket, order: TicketOrder = DEFAULT_ORDER) -> str:
    if order == DEFAULT_ORDER:
        # json.dumps([created_at, id]) spelled out (ids and ISO timestamps need no escaping): one per edge.
        # The newest-first cursor keeps the form it had before the list could be sorted.
        raw = f'["{ticket.created_at.isoformat()}", "{ticket.id}"]'.encode()
    else:
        sort = f"{order.sort.value}:{'desc' if order.descending else 'asc'}"
        raw = json.dumps([sort, *_key_values(ticket, order), ticket.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor() -> DomainError:
    return invalid("after is not a cursor returned by this API for this order", "after")


def decode_cursor(cursor: str, order: TicketOrder = DEFAULT_ORDER) -> tuple[Any, ...]:
    """The key values and id a cursor holds, checked against ``order`` (a cursor of another order is refused)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, json.JSONDecodeError):
        raise _bad_cursor() from None
    if not isinstance(values, list) or not all(isinstance(v, str | int) for v in values):
        raise _bad_cursor()
    if order == DEFAULT_ORDER:
        expected_head: list[Any] = []
    else:
        expected_head = [f"{order.sort.value}:{'desc' if order.descending else 'asc'}"]
        if values[:1] != expected_head:
            raise _bad_cursor()
    keys = values[len(expected_head) :]
    kinds = ["rank", "at"] if order.sort is TicketSort.PRIORITY else ["at"]
    if len(keys) != len(kinds) + 1:
        raise _bad_cursor()
    parsed: list[Any] = []
    for kind, value in zip(kinds, keys, strict=False):
        if kind == "rank":
            if not isinstance(value, int) or isinstance(value, bool):
                raise _bad_cursor()
            parsed.append(value)
            continue
        try:
            at = datetime.fromisoformat(str(value))
        except ValueError:
            raise _bad_cursor() from None
        if (
            at.tzinfo is None
        ):  # this API's cursors always carry UTC; a naive time cannot be compared with them
            raise _bad_cursor()
        parsed.append(at)
    parsed.append(str(keys[-1]))
    return tuple(parsed)


def _after(keys: list[tuple[Any, bool]], values: Sequence[Any]) -> Any:
    """Rows strictly after ``values`` in the order ``keys`` (a keyset condition)."""
    expr, ascending = keys[0]
    beyond = expr > values[0] if ascending else expr < values[0]
    if len(keys) == 1:
        return beyond
    return or_(beyond, and_(expr == values[0], _after(keys[1:], values[1:])))


def _filtered(query: Any, merchant_id: str, flt: TicketFilter, dialect: str) -> Any:
    query = query.where(Ticket.merchant_id == merchant_id)
    if flt.stage:
        query = query.where(Ticket.stage == flt.stage)
    if flt.open_only:
        query = query.where(col(Ticket.stage).not_in(CLOSED_STAGES))
    if flt.category:
        query = query.where(Ticket.category == flt.category)
    if flt.priority:
        query = query.where(Ticket.priority == flt.priority)
    if flt.team_id:
        query = query.where(Ticket.team_id == flt.team_id)
    if flt.assignee_id:
        query = query.where(Ticket.assignee_id == flt.assignee_id)
    if flt.tag:
        # JSON arrays are stored as text on both backends; match the quoted element.
        query = query.where(cast(col(Ticket.tags), Text).contains(json.dumps(flt.tag.strip().lower())))
    if flt.text:
        if len(flt.text) > 200:
            raise invalid("text filter must be at most 200 characters", "text")
        pattern = f"%{flt.text.lower()}%"
        query = query.where(
            or_(func.lower(Ticket.subject).like(pattern), func.lower(Ticket.body).like(pattern))
        )
    if flt.search is not None:
        if len(flt.search) > 200:
            raise invalid("search must be at most 200 characters", "search")
        words = search_words(flt.search)
        if words:
            query = query.where(search_condition(dialect, words))
    if flt.customer_email:
        # Stored as sent; emails are compared case-insensitively (both spellings hit the index's prefix).
        email = flt.customer_email.strip()
        query = query.where(col(Ticket.customer_email).in_(sorted({email, email.lower()})))
    if flt.order_id:
        query = query.where(Ticket.order_id == flt.order_id.strip())
    if flt.needs_human is not None:
        query = query.where(Ticket.needs_human == flt.needs_human)
    if flt.sla_breached is not None:
        if flt.now is None:
            raise ValueError("the slaBreached filter needs the clock reading (TicketFilter.now)")
        breached = breached_clause(flt.now)
        query = query.where(breached if flt.sla_breached else not_(breached))
    if flt.created_after:
        query = query.where(col(Ticket.created_at) >= flt.created_after)
    if flt.created_before:
        query = query.where(col(Ticket.created_at) < flt.created_before)
    return query


def list_tickets(
    session: Session,
    principal: Principal,
    flt: TicketFilter,
    *,
    first: int,
    after: str | None,
    max_page: int = 100,
    order: TicketOrder = DEFAULT_ORDER,
) -> TicketPage:
    """One page in ``order`` (newest first by default); the cursor holds the sort key(s) and id of the
    last row seen, so the next page is a keyset read whatever the size of the list."""
    if not 1 <= first <= max_page:
        raise invalid(f"first must be between 1 and {max_page}", "first")
    dialect = session.connection().dialect.name
    keys = _sort_keys(order)
    ordering = [expr.asc() if ascending else expr.desc() for expr, ascending in keys]
    if dialect == "postgresql" and flt.search and search_words(flt.search):
        rows = _searched_page(session, principal.merchant_id, flt, order, after, first + 1)
    else:
        query = _filtered(select(Ticket), principal.merchant_id, flt, dialect)
        if after:
            query = query.where(_after(keys, decode_cursor(after, order)))
        rows = list(session.exec(query.order_by(*ordering).limit(first + 1)))
    items = rows[:first]
    return TicketPage(
        items=items,
        end_cursor=encode_cursor(items[-1], order) if items else None,
        has_next_page=len(rows) > first,
    )


def _searched_page(
    session: Session, merchant_id: str, flt: TicketFilter, order: TicketOrder, after: str | None, limit: int
) -> list[Ticket]:
    """A searched page on PostgreSQL: every match first (a MATERIALIZED CTE of ids and sort keys, which
    only the GIN index answers), then the page. Asked in one query, the planner takes the words for common
    and walks the newest tickets computing each one's document: about 1 s for two words with few matches
    at 100k tickets, against a few ms this way (bench/search_report_bench.py)."""
    keys = _sort_keys(order)
    hits_query = _filtered(
        select(*(_ticket_column(c) for c in _SORT_COLUMNS)), merchant_id, flt, "postgresql"
    )
    if after:
        hits_query = hits_query.where(_after(keys, decode_cursor(after, order)))
    hits = hits_query.cte("search_hits").prefix_with("MATERIALIZED")
    hit_keys = _sort_keys(order, lambda name: hits.c[name])
    page = (
        select(hits.c.id)
        .order_by(*(expr.asc() if ascending else expr.desc() for expr, ascending in hit_keys))
        .limit(limit)
        .subquery("search_page")
    )
    query = select(Ticket).join(page, page.c.id == col(Ticket.id))
    return list(session.exec(query.order_by(*(e.asc() if a else e.desc() for e, a in keys))))


def count_tickets(session: Session, principal: Principal, flt: TicketFilter) -> int:
    return int(
        session.exec(
            _filtered(
                select(func.count()).select_from(Ticket),
                principal.merchant_id,
                flt,
                session.connection().dialect.name,
            )
        ).one()
    )


def _check_version(ticket: Ticket, expected_version: int | None) -> None:
    if expected_version is not None and ticket.version != expected_version:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"ticket is at version {ticket.version}, not {expected_version}: reload and retry",
            "expectedVersion",
        )


def new_version(session: Session, ticket: Ticket, now: datetime) -> None:
    """Record a change to the ticket: its next version (what `expectedVersion` is checked against) at ``now``.
    Whether the queue changed too is the caller's to say (``bump_queue_version``)."""
    ticket.version += 1
    ticket.updated_at = now
    session.add(ticket)


def _touch(session: Session, services: WorkflowServices, ticket: Ticket) -> None:
    new_version(session, ticket, services.clock())
    bump_queue_version(session, ticket.merchant_id)


def _changed(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    ticket: Ticket,
    *,
    audit_kind: str,
    event_kind: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ruleset_version: int | None = None,
    decision: dict[str, Any] | None = None,
    **event_data: Any,
) -> None:
    """Every change to a ticket: a new version, an audit entry, and an event published after commit."""
    _touch(session, services, ticket)
    audit.record(
        session,
        principal,
        kind=audit_kind,
        ticket_id=ticket.id,
        before=before,
        after=snapshot(ticket) if after is None else after,
        ruleset_version=ruleset_version,
        model_version=ticket.model_version,
        decision=decision,
    )
    event = TicketEvent(
        kind=event_kind,
        merchant_id=ticket.merchant_id,
        ticket_id=ticket.id,
        data={"version": ticket.version, "stage": ticket.stage, **event_data},
    )
    publish_after_commit(session, services.bus, event)


def set_assignee(session: Session, ticket: Ticket, agent_id: str | None) -> None:
    """Give ``ticket`` to ``agent_id`` (None: nobody), moving an open ticket's load between agents."""
    if agent_id == ticket.assignee_id:
        return
    if ticket.stage not in CLOSED_STAGES:
        count_open_tickets(session, ticket.assignee_id, -1)
        count_open_tickets(session, agent_id, 1)
    ticket.assignee_id = agent_id


def record_transition(
    session: Session,
    principal: Principal,
    ticket: Ticket,
    from_stage: str | None,
    to: str,
    *,
    at: datetime,
    seconds_in_from_stage: float | None = None,
) -> None:
    """One stage-transition row: the source of time-in-stage statistics."""
    insert_later(
        session,
        StageTransition,
        {
            "merchant_id": ticket.merchant_id,
            "ticket_id": ticket.id,
            "from_stage": from_stage,
            "to_stage": to,
            "seconds_in_from_stage": seconds_in_from_stage,
            "actor": principal.actor.value,
            "at": at,
        },
    )


def move_stage(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    ticket: Ticket,
    to: str,
    *,
    transitions: Mapping[str, tuple[str, ...]],
    ruleset_version: int | None,
    reason: str | None = None,
) -> None:
    """Move ``ticket`` along an edge of the ruleset's graph, recording the transition and the time spent."""
    if to not in transitions:
        raise DomainError(ErrorCode.TRANSITION_NOT_ALLOWED, f"unknown stage {to!r}", "to")
    if to not in transitions.get(ticket.stage, ()):
        allowed = ", ".join(transitions.get(ticket.stage, ())) or "none"
        raise DomainError(
            ErrorCode.TRANSITION_NOT_ALLOWED,
            f"cannot move from {ticket.stage} to {to} (allowed: {allowed})",
            "to",
        )
    now = services.clock()
    before = snapshot(ticket)
    spent = max(0.0, (now - ticket.stage_entered_at).total_seconds())
    record_transition(session, principal, ticket, ticket.stage, to, at=now, seconds_in_from_stage=spent)
    from_stage = ticket.stage
    if (from_stage in CLOSED_STAGES) != (to in CLOSED_STAGES):  # the assignee's open load changes
        count_open_tickets(session, ticket.assignee_id, -1 if to in CLOSED_STAGES else 1)
    ticket.stage = to
    ticket.stage_entered_at = now
    if to in CLOSED_STAGES and ticket.resolved_at is None:
        ticket.resolved_at = now
    elif to not in CLOSED_STAGES:
        ticket.resolved_at = None
    _changed(
        session,
        services,
        principal,
        ticket,
        audit_kind="ticket.transitioned",
        event_kind="transitioned",
        before=before,
        ruleset_version=ruleset_version,
        decision={"reason": reason} if reason else None,
        from_stage=from_stage,
        to_stage=to,
    )


def _require_permission(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    ticket: Ticket,
    action: dict[str, Any],
    active: ActiveRuleset | None = None,
) -> None:
    """AI agents are held to the permission rules on the direct mutations too, not only on requestAction:
    anything short of ``allow`` refuses (an approval has to be asked for through requestAction)."""
    if principal.actor is not Actor.AI:
        return
    active = active or active_ruleset(session, services, principal.merchant_id)
    facts = with_action(
        stored_ticket_facts(session, ticket, services.clock()), {**action, "actor": principal.actor.value}
    )
    decision = services.policy.decide(active.ruleset, facts)
    services.metrics.policy_decision(decision.effect, principal.actor.value, str(action.get("type", "")))
    if decision.effect != "allow":
        hint = "; ask for it with requestAction" if decision.effect == "require_approval" else ""
        raise DomainError(
            ErrorCode.POLICY_DENIED, f"{decision.explanation}{hint}", "ticketId", details=decision
        )


def transition_ticket(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    ticket_id: str,
    to: str,
    expected_version: int | None,
) -> Ticket:
    principal.require(*TICKET_WRITERS)
    ticket = get_ticket(session, principal, ticket_id, for_update=True)
    _check_version(ticket, expected_version)
    active = active_ruleset(session, services, principal.merchant_id)
    _require_permission(
        session, services, principal, ticket, {"type": "transition", "target_stage": to}, active
    )
    move_stage(
        session,
        services,
        principal,
        ticket,
        to,
        transitions=active.ruleset.transitions,
        ruleset_version=active.version,
    )
    return ticket


def assign_ticket(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    ticket_id: str,
    agent_id: str | None = None,
    team_id: str | None = None,
    expected_version: int | None = None,
) -> Ticket:
    principal.require(Role.ADMIN, Role.AGENT, Role.AI)
    if agent_id is None and team_id is None:
        raise invalid("give an agentId, a teamId or both", "agentId")
    ticket = get_ticket(session, principal, ticket_id, for_update=True)
    _check_version(ticket, expected_version)
    active = active_ruleset(session, services, principal.merchant_id)
    _require_permission(session, services, principal, ticket, {"type": "assign"}, active)
    before = snapshot(ticket)
    if team_id is not None:
        ticket.team_id = get_team(session, principal.merchant_id, team_id).id
    if agent_id is not None:
        set_assignee(session, ticket, get_agent(session, principal.merchant_id, agent_id).id)
    _changed(
        session,
        services,
        principal,
        ticket,
        audit_kind="ticket.assigned",
        event_kind="assigned",
        before=before,
        ruleset_version=active.version,
        assignee_id=ticket.assignee_id,
        team_id=ticket.team_id,
    )
    if agent_id is not None and "assigned" in active.ruleset.transitions.get(ticket.stage, ()):
        move_stage(
            session,
            services,
            principal,
            ticket,
            "assigned",
            transitions=active.ruleset.transitions,
            ruleset_version=active.version,
            reason="assigned to an agent",
        )
    return ticket


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
    _check_version(ticket, expected_version)
    before = {**snapshot(ticket), **_partner_fields(ticket)}
    if changes.tags is not None:
        ticket.tags = clean_tags(changes.tags)
    for name in _PARTNER_FIELDS:
        value = getattr(changes, name)
        if value is not None:
            setattr(ticket, name, value)
    validate_ticket_fields(ticket)
    _changed(
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


_AUTHOR_OF_ROLE = {
    Role.ADMIN: "agent",
    Role.AGENT: "agent",
    Role.AI: "ai",
    Role.PARTNER: "customer",
}


def message_author(principal: Principal) -> str:
    """Who a message posted with this key is from: human agents (and admins) as ``agent``, AI keys as
    ``ai``, partner systems relay the customer's words as ``customer``."""
    try:
        return _AUTHOR_OF_ROLE[principal.role]
    except KeyError:
        raise DomainError(
            ErrorCode.FORBIDDEN, f"a {principal.role.value} key cannot post messages", "authorType"
        ) from None


def add_message(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    ticket_id: str,
    body: str,
    author_type: str | None = None,
) -> Message:
    """Agents and AI reply as themselves; partners relay customer messages (author ``customer``).

    The author comes from the caller's key, never from the input: ``author_type``, when given, must be the
    key's own author (so a client can state what it expects), and ``system`` is written only by Bookbag
    itself (scheduler, workflow), never through this function."""
    principal.require(*TICKET_WRITERS)
    if not body.strip():
        raise invalid("message body is empty", "body")
    if len(body) > MAX_BODY:
        raise invalid(f"message body must be at most {MAX_BODY} characters", "body")
    author = message_author(principal)
    if author_type is not None and author_type != author:
        if author_type not in MESSAGE_AUTHORS:
            raise invalid(f"author must be one of {', '.join(MESSAGE_AUTHORS)}", "authorType")
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"a message's author comes from the API key: a {principal.role.value} key posts as {author}, "
            f"not {author_type}",
            "authorType",
        )
    ticket = get_ticket(session, principal, ticket_id, for_update=True)
    _require_permission(session, services, principal, ticket, {"type": "reply"})
    now = services.clock()
    message = Message(
        merchant_id=principal.merchant_id,
        ticket_id=ticket.id,
        author_type=author,
        author_key_id=principal.key_id,
        body=body,
        created_at=now,
    )
    session.add(message)
    if author in ("agent", "ai") and ticket.first_responded_at is None:
        ticket.first_responded_at = now
    _changed(
        session,
        services,
        principal,
        ticket,
        audit_kind="message.added",
        event_kind="message_added",
        after={"message_id": message.id, "author": author},
        message_id=message.id,
        author=author,
    )
    return message


def list_messages(session: Session, merchant_id: str, ticket_id: str) -> list[Message]:
    return list(
        session.exec(
            select(Message)
            .where(Message.merchant_id == merchant_id, Message.ticket_id == ticket_id)
            .order_by(col(Message.created_at), col(Message.id))
        )
    )


def messages_by_ticket_ids(
    session: Session, merchant_id: str, ticket_ids: Sequence[str]
) -> dict[str, list[Message]]:
    grouped: dict[str, list[Message]] = {tid: [] for tid in ticket_ids}
    if not ticket_ids:
        return grouped
    rows = session.exec(
        select(Message)
        .where(Message.merchant_id == merchant_id, col(Message.ticket_id).in_(list(ticket_ids)))
        .order_by(col(Message.created_at), col(Message.id))
    )
    for message in rows:
        grouped[message.ticket_id].append(message)
    return grouped


def correct_classification(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    ticket_id: str,
    category: str | None = None,
    priority: str | None = None,
) -> Ticket:
    """An agent's correction: applied to the ticket and stored as training data for the next model."""
    principal.require(Role.ADMIN, Role.AGENT)
    if category is None and priority is None:
        raise invalid("give a category, a priority or both", "category")
    labels = services.classifier.info.labels
    if category is not None and category not in labels:
        raise invalid(f"unknown category {category!r}; one of: {', '.join(labels)}", "category")
    if priority is not None and priority not in PRIORITIES:
        raise invalid(f"unknown priority {priority!r}; one of: {', '.join(PRIORITIES)}", "priority")
    ticket = get_ticket(session, principal, ticket_id, for_update=True)
    before = snapshot(ticket)
    session.add(
        ClassificationCorrection(
            merchant_id=principal.merchant_id,
            ticket_id=ticket.id,
            subject=ticket.subject,
            body=ticket.body,
            old_category=ticket.category,
            old_priority=ticket.priority,
            category=category,
            priority=priority,
            model_version=ticket.model_version,
            api_key_id=principal.key_id,
            created_at=services.clock(),  # the workflow's clock, as every other row it writes
        )
    )
    if category is not None:
        ticket.category = category
    if priority is not None and priority != ticket.priority:
        ticket.priority = priority
        apply_sla(ticket, active_ruleset(session, services, principal.merchant_id).ruleset)
    _changed(
        session,
        services,
        principal,
        ticket,
        audit_kind="classification.corrected",
        event_kind="updated",
        before=before,
        corrected=True,
    )
    return ticket


def corrections_as_training_rows(session: Session, merchant_id: str) -> list[dict[str, Any]]:
    """Corrections in the seed set's column layout, for ``bookbag classifier train --data``."""
    rows = session.exec(
        select(ClassificationCorrection)
        .where(ClassificationCorrection.merchant_id == merchant_id)
        .order_by(col(ClassificationCorrection.created_at))
    )
    latest: dict[str, dict[str, Any]] = {}
    for c in rows:  # the newest correction of a ticket wins
        row = latest.setdefault(
            c.ticket_id,
            {
                "subject": c.subject,
                "body": c.body,
                "category": c.old_category,
                "priority": c.old_priority,
                "source": f"correction/{c.ticket_id}",
            },
        )
        if c.category:
            row["category"] = c.category
        if c.priority:
            row["priority"] = c.priority
    return list(latest.values())


def team_names(session: Session, merchant_id: str, team_ids: Sequence[str]) -> dict[str, str]:
    if not team_ids:
        return {}
    rows = session.exec(select(Team).where(Team.merchant_id == merchant_id, col(Team.id).in_(list(team_ids))))
    return {t.id: t.name for t in rows}
