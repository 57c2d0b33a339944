"""The reports' roll-ups, maintained in the unit of work that changes a ticket.

What a ticket contributes to the reports is a function of its own rows: the ticket (created, first
response, resolution, SLA due and breach times, team, category, priority, channel), its stage transitions,
action requests, classification corrections and escalation firings. :func:`contributions` computes it as a
multiset of entries ``(day, metric, key, team, category, priority, channel, bin) → (n, total)``.
``ticket_report_states`` keeps each ticket's last contribution, and at the end of every unit of work that
touched tickets (``storage.db.Database.add_commit_hook``) :func:`maintain` recomputes the touched tickets'
contributions and adds the difference to ``report_counts``, once per split dimension (all tickets, team,
category, priority, channel): a report reads only the rows of its split, whose number grows with days ×
metrics × bins × that dimension's values, not with the product of all four. So a correction that changes a ticket's category
moves its whole history to the new category; a reopened ticket's resolution is taken back; repeating the
work changes nothing (the difference is then empty).

Dimensions are the ticket's current team, category, priority and channel ('' when unset); days are UTC.

Durations go into log-scale histogram bins (:func:`duration_bin`, 8 bins per doubling of ``seconds + 1``), so
a percentile read from the bins (:func:`bin_value`, the bin's geometric middle) is within 4.5 % of the exact
nearest-rank value (measured on ``seconds + 1``); the mean is exact (the sums are kept).

Metrics (``key`` in brackets): ``created``; ``closed`` (an open → resolved/closed move); ``reopened``;
``stage`` [``from>to``] with durations; ``first_response`` and ``resolution`` (seconds from creation);
``sla_first_response`` and ``sla_resolution`` [``met``/``missed``], counted when the response or resolution
happens; ``sla_breach`` (the scheduler's mark); ``escalation`` [rule id]; ``action`` [``actor|type|effect|status``];
``approval_wait`` [``approved``/``rejected``] (seconds from the request to the decision); ``correction``
[``old>new`` category].

On PostgreSQL the touched tickets' state rows are locked (``FOR UPDATE``, in id order) before anything is
read, so two transactions changing one ticket apply their differences one after the other.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from storage.db import Database, touched_tickets
from storage.tables import (
    ActionRequest,
    ClassificationCorrection,
    EscalationFiring,
    ReportCount,
    StageTransition,
    Ticket,
    TicketReportState,
)
from workflow.stages import CLOSED_STAGES

BINS_PER_DOUBLING = 8
HOOK_NAME = "report_rollups"
BATCH = 500
# The split dimensions, in the order of an entry's (team, category, priority, channel); '' is "all tickets".
DIMENSIONS = ("", "team", "category", "priority", "channel")

# (day, metric, key, team_id, category, priority, channel, bin)
EntryKey = tuple[str, str, str, str, str, str, str, int]


def duration_bin(seconds: float) -> int:
    return math.floor(BINS_PER_DOUBLING * math.log2(max(0.0, seconds) + 1.0))


def bin_value(index: int) -> float:
    """The value a bin stands for: the geometric middle of its range (on ``seconds + 1``)."""
    return float(2.0 ** ((index + 0.5) / BINS_PER_DOUBLING) - 1.0)


# The largest relative error of bin_value on (seconds + 1): half a bin, on a log scale.
RELATIVE_ERROR = 2.0 ** (0.5 / BINS_PER_DOUBLING) - 1.0


def _day(at: datetime) -> str:
    return at.date().isoformat()


class _Contribution:
    def __init__(self, ticket: Any) -> None:
        self.dims = (ticket.team_id or "", ticket.category or "", ticket.priority or "", ticket.channel or "")
        self.counts: Counter[EntryKey] = Counter()
        self.totals: dict[EntryKey, float] = {}

    def count(self, at: datetime, metric: str, key: str = "") -> None:
        self.counts[(_day(at), metric, key, *self.dims, -1)] += 1

    def duration(self, at: datetime, metric: str, seconds: float, key: str = "") -> None:
        seconds = max(0.0, seconds)
        entry = (_day(at), metric, key, *self.dims, duration_bin(seconds))
        self.counts[entry] += 1
        self.totals[entry] = self.totals.get(entry, 0.0) + seconds

    def entries(self) -> dict[EntryKey, tuple[int, float]]:
        return {k: (n, float(self.totals.get(k, 0.0))) for k, n in self.counts.items()}


def contributions(
    ticket: Any,
    transitions: Iterable[Any],
    actions: Iterable[Any],
    corrections: Iterable[Any],
    firings: Iterable[Any],
) -> dict[EntryKey, tuple[int, float]]:
    """What one ticket adds to the roll-ups, from its own rows (see the module docstring)."""
    c = _Contribution(ticket)
    c.count(ticket.created_at, "created")
    for t in transitions:
        if t.from_stage is None:
            continue
        if t.seconds_in_from_stage is not None:
            c.duration(t.at, "stage", t.seconds_in_from_stage, f"{t.from_stage}>{t.to_stage}")
        closes = t.to_stage in CLOSED_STAGES
        if closes != (t.from_stage in CLOSED_STAGES):
            c.count(t.at, "closed" if closes else "reopened")
    if ticket.first_responded_at is not None:
        first = ticket.first_responded_at
        c.duration(first, "first_response", (first - ticket.created_at).total_seconds())
        if ticket.first_response_due_at is not None:
            c.count(first, "sla_first_response", "met" if first <= ticket.first_response_due_at else "missed")
    if ticket.resolved_at is not None:
        resolved = ticket.resolved_at
        c.duration(resolved, "resolution", (resolved - ticket.created_at).total_seconds())
        if ticket.resolution_due_at is not None:
            c.count(resolved, "sla_resolution", "met" if resolved <= ticket.resolution_due_at else "missed")
    if ticket.sla_breached_at is not None:
        c.count(ticket.sla_breached_at, "sla_breach")
    for f in firings:
        c.count(f.fired_at, "escalation", f.rule_id)
    for a in actions:
        c.count(a.created_at, "action", f"{a.actor}|{a.type}|{a.effect}|{a.status}")
        if a.effect == "require_approval" and a.decided_at is not None:
            c.duration(a.decided_at, "approval_wait", (a.decided_at - a.created_at).total_seconds(), a.status)
    for k in corrections:
        if k.category is not None:
            c.count(k.created_at, "correction", f"{k.old_category or ''}>{k.category}")
    return c.entries()


@cache
def _ticket_columns() -> Any:
    t = Ticket.__table__  # type: ignore[attr-defined]
    return select(
        t.c.id,
        t.c.merchant_id,
        t.c.team_id,
        t.c.category,
        t.c.priority,
        t.c.channel,
        t.c.created_at,
        t.c.first_responded_at,
        t.c.first_response_due_at,
        t.c.resolved_at,
        t.c.resolution_due_at,
        t.c.sla_breached_at,
    )


def _grouped(rows: Iterable[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.ticket_id, []).append(row)
    return grouped


Entries = dict[EntryKey, tuple[int, float]]


def _current(session: Session, ids: Sequence[str]) -> tuple[dict[str, str], dict[str, Entries]]:
    """The touched tickets' contributions now, read with Core statements (the committed rows plus this
    transaction's own changes, not objects the session may hold from before a lock was taken)."""
    t = Ticket.__table__  # type: ignore[attr-defined]
    tickets = {r.id: r for r in session.execute(_ticket_columns().where(t.c.id.in_(ids)))}
    merchant_of = {tid: r.merchant_id for tid, r in tickets.items()}
    merchants = sorted(set(merchant_of.values()))
    if not tickets:
        return {}, {}

    def rows(model: Any, *columns: Any) -> dict[str, list[Any]]:
        table: Table = model.__table__
        query = select(table.c.ticket_id, *(table.c[c] for c in columns)).where(
            table.c.merchant_id.in_(merchants), table.c.ticket_id.in_(ids)
        )
        return _grouped(session.execute(query))

    transitions = rows(StageTransition, "from_stage", "to_stage", "seconds_in_from_stage", "at")
    actions = rows(ActionRequest, "actor", "type", "effect", "status", "created_at", "decided_at")
    corrections = rows(ClassificationCorrection, "old_category", "category", "created_at")
    firings = rows(EscalationFiring, "rule_id", "fired_at")
    return merchant_of, {
        tid: contributions(
            ticket,
            transitions.get(tid, ()),
            actions.get(tid, ()),
            corrections.get(tid, ()),
            firings.get(tid, ()),
        )
        for tid, ticket in tickets.items()
    }


def _stored(session: Session, ids: Sequence[str], lock: bool) -> dict[str, Entries]:
    query = (
        select(TicketReportState.ticket_id, TicketReportState.entries)  # type: ignore[call-overload]
        .where(col(TicketReportState.ticket_id).in_(ids))
        .order_by(col(TicketReportState.ticket_id))
    )
    if lock:
        query = query.with_for_update()
    stored: dict[str, Entries] = {}
    for ticket_id, entries in session.execute(query):
        stored[ticket_id] = {
            (e[0], e[1], e[2], e[3], e[4], e[5], e[6], int(e[7])): (int(e[8]), float(e[9])) for e in entries
        }
    return stored


def _insert(session: Session, model: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model.__table__)


def apply(session: Session, ticket_ids: Iterable[str]) -> int:
    """Bring the roll-ups in step with the given tickets; returns how many count rows changed."""
    ids = sorted(set(ticket_ids))
    changed = 0
    for start in range(0, len(ids), BATCH):
        changed += _apply_batch(session, ids[start : start + BATCH])
    return changed


def _apply_batch(session: Session, ids: list[str]) -> int:
    lock = session.get_bind().dialect.name == "postgresql"
    stored = _stored(session, ids, lock)
    merchant_of, current = _current(session, ids)
    # Differences per merchant (a batch may mix merchants: the scheduler's tick), each counted once per
    # split dimension.
    per_row: dict[tuple[str, str, str, str, str, str, int], list[float]] = {}
    for tid, entries in current.items():
        before = stored.get(tid, {})
        for key in entries.keys() | before.keys():
            n1, t1 = entries.get(key, (0, 0.0))
            n0, t0 = before.get(key, (0, 0.0))
            if n1 == n0 and t1 == t0:
                continue
            day, metric, what, *dims, index = key
            for dim, value in zip(DIMENSIONS, ("", *dims), strict=True):
                delta = per_row.setdefault((merchant_of[tid], dim, day, metric, what, value, index), [0, 0.0])
                delta[0] += n1 - n0
                delta[1] += t1 - t0
    rows = [
        {
            "merchant_id": merchant,
            "dim": dim,
            "day": date.fromisoformat(day),
            "metric": metric,
            "key": what,
            "value": value,
            "bin": index,
            "n": int(n),
            "total": float(total),
        }
        for (merchant, dim, day, metric, what, value, index), (n, total) in sorted(per_row.items())
        if n or total
    ]
    if rows:
        insert = _insert(session, ReportCount)
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["merchant_id", "dim", "metric", "day", "key", "value", "bin"],
                set_={
                    "n": ReportCount.n + insert.excluded.n,
                    "total": ReportCount.total + insert.excluded.total,
                },
            ),
            rows,
        )
    states = [
        {
            "ticket_id": tid,
            "merchant_id": merchant_of[tid],
            "entries": [[*key, n, total] for key, (n, total) in sorted(entries.items())],
        }
        for tid, entries in current.items()
        if entries != stored.get(tid)
    ]
    if states:
        insert = _insert(session, TicketReportState)
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["ticket_id"], set_={"entries": insert.excluded.entries}
            ),
            states,
        )
    return len(rows)


def maintain(session: Session) -> None:
    """The commit hook: the roll-ups follow the tickets this unit of work touched."""
    ids = touched_tickets(session)
    if ids:
        apply(session, ids)


def install(database: Database) -> None:
    """Keep the roll-ups in every unit of work of ``database`` (the composition root calls this)."""
    database.add_commit_hook(HOOK_NAME, maintain)


def rebuild(database: Database, merchant_id: str) -> int:
    """Recount a merchant's roll-ups from its tickets (after the migration, or to repair): idempotent, one
    short unit of work per batch of tickets, so other writers (on SQLite: every merchant's) wait for one
    batch at most. Returns the number of tickets read."""
    with database.read_only() as session:
        ids = list(
            session.execute(
                select(col(Ticket.id)).where(col(Ticket.merchant_id) == merchant_id).order_by(col(Ticket.id))
            ).scalars()
        )
    for start in range(0, len(ids), BATCH):
        with database.unit_of_work() as session:
            _apply_batch(session, ids[start : start + BATCH])
    return len(ids)
