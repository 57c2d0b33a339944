"""Reading tickets: one by id (merchant-scoped), many by ids, and the filtered, sorted list with keyset
cursors (on PostgreSQL a searched page reads the matches first)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Text, and_, case, cast, func, not_, or_
from sqlmodel import Session, col, select

from storage.search import search_condition, search_words
from storage.tables import Team, Ticket
from workflow.errors import DomainError, invalid, not_found
from workflow.queue import breached_clause
from workflow.stages import CLOSED_STAGES
from workflow.tenancy.principal import Principal


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


def team_names(session: Session, merchant_id: str, team_ids: Sequence[str]) -> dict[str, str]:
    if not team_ids:
        return {}
    rows = session.exec(select(Team).where(Team.merchant_id == merchant_id, col(Team.id).in_(list(team_ids))))
    return {t.id: t.name for t in rows}
