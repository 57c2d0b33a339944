"""The scheduler: time-based workflow (escalations whose ``after:`` has passed, SLA breaches) fired once.

:func:`run_due_work` is one tick: one unit of work, acting as the ``system`` actor, at a given ``now`` (a
virtual clock in tests and simulations, the wall clock in the server). Due work is always found again from
the database, so a restart or a crashed tick loses nothing: a rolled-back tick leaves no trace and the next
tick finds the same work.

Exactly once, with any number of processes:
- an escalation fires once per (ticket, rule, stay in a stage): the ``escalation_firings`` row with that
  unique key is inserted with ON CONFLICT DO NOTHING before anything is applied, and only the inserter acts;
- on PostgreSQL the due tickets are locked with ``FOR UPDATE SKIP LOCKED``, so two schedulers never work the
  same ticket at the same time (one skips it; the unique row settles any remaining race);
- an SLA breach is marked once: only a ticket whose ``sla_breached_at`` is still empty is picked (and
  locked the same way).

- an external action left executing past its deadline flags its ticket once: only an action whose
  ``timed_out_at`` is still empty is picked (and locked the same way; see ``workflow.actions``).

Decisions go to the audit log with the facts they saw; the queue version is bumped in the transaction; the
``escalated``, ``sla_breached`` and ``action_timed_out`` events are published after the commit, never for a
rolled-back tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from policy import EscalationRule, Ruleset
from storage.db import Database
from storage.tables import EscalationFiring, IdempotencyRecord, Merchant, Ticket
from workflow import actions, audit, idempotency
from workflow.errors import DomainError
from workflow.live.bus import TicketEvent, publish_after_commit
from workflow.queue import bump_queue_version
from workflow.rulesets.versions import ActiveRuleset, active_ruleset
from workflow.services import WorkflowServices
from workflow.stages import OPEN_STAGES
from workflow.tenancy.agents import get_team_by_name
from workflow.tenancy.principal import Principal
from workflow.tickets.facts import stored_ticket_facts
from workflow.tickets.service import clean_tags, move_stage, new_version, snapshot
from workflow.tickets.sla import apply_sla, breach_of

log = logging.getLogger(__name__)

PAGE = 500


@dataclass(frozen=True)
class FiredEscalation:
    merchant_id: str
    ticket_id: str
    rule_id: str
    stage: str
    stage_entered_at: datetime
    applied: dict[str, Any]
    skipped: dict[str, str]


@dataclass(frozen=True)
class MarkedBreach:
    merchant_id: str
    ticket_id: str
    sla: str  # first_response | resolution
    due_at: datetime


@dataclass
class TickReport:
    now: datetime
    escalations: list[FiredEscalation] = field(default_factory=list)
    breaches: list[MarkedBreach] = field(default_factory=list)
    timed_out_actions: list[str] = field(default_factory=list)  # action ids flagged this tick
    idempotency_pruned: int = 0
    skipped_locked: int = 0
    candidates_checked: int = 0
    more_due: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.escalations or self.breaches or self.timed_out_actions)


def run_due_work(
    database: Database,
    services: WorkflowServices,
    now: datetime,
    *,
    merchant_ids: Sequence[str] | None = None,
    max_items: int = 5000,
) -> TickReport:
    """One scheduler tick at ``now``: fire due escalations, mark SLA breaches, prune old idempotency keys.

    ``merchant_ids`` limits the escalations and breaches to those merchants (simulations, tests); the
    server passes None (every merchant)."""
    # Every service called below reads the time from services.clock: pin it to this tick's ``now``.
    tick_services = replace(services, clock=lambda: now)
    report = TickReport(now=now)
    # Look before taking the write lock (SQLite has one for the whole database): most ticks find nothing.
    # The merchants' active rulesets are read (and a new version parsed and compiled) here too, outside the
    # write transaction: parsing and compiling a large version inside it would hold every merchant's writes.
    # A version published after this look is taken up by the next tick.
    with database.read_only() as session:
        rulesets = _active_rulesets(session, tick_services, merchant_ids)
        if not _anything_due(session, rulesets, now, merchant_ids):
            return report
    with database.unit_of_work() as session:
        locking = session.get_bind().dialect.name == "postgresql"
        for merchant_id, active in rulesets.items():
            _fire_escalations(session, tick_services, merchant_id, active, now, report, locking, max_items)
        _mark_breaches(session, tick_services, now, report, locking, max_items, merchant_ids)
        timed_out = actions.time_out_executions(
            session, tick_services, now, locking=locking, limit=max_items, merchant_ids=merchant_ids
        )
        report.timed_out_actions = [request.id for request in timed_out]
        if len(timed_out) == max_items:
            report.more_due = True
        report.idempotency_pruned = idempotency.prune(session, now)
    return report


def _merchants(session: Session, merchant_ids: Sequence[str] | None) -> list[str]:
    if merchant_ids is not None:
        return list(merchant_ids)
    return list(session.exec(select(Merchant.id).order_by(col(Merchant.id))))


def _active_rulesets(
    session: Session, services: WorkflowServices, merchant_ids: Sequence[str] | None
) -> dict[str, ActiveRuleset]:
    """Each merchant's active ruleset, compiled into the engine when it has escalation rules."""
    rulesets = {}
    for merchant_id in _merchants(session, merchant_ids):
        active = active_ruleset(session, services, merchant_id)
        if _escalation_rules(active.ruleset):
            services.policy.load(active.ruleset)
        rulesets[merchant_id] = active
    return rulesets


def _anything_due(
    session: Session,
    rulesets: dict[str, ActiveRuleset],
    now: datetime,
    merchant_ids: Sequence[str] | None,
) -> bool:
    if session.exec(_breach_query(now, merchant_ids).limit(1)).first() is not None:
        return True
    if session.exec(actions.executions_due_query(now, merchant_ids).limit(1)).first() is not None:
        return True
    old_key = select(IdempotencyRecord.key).where(
        col(IdempotencyRecord.created_at) < now - idempotency.RETENTION
    )
    if session.exec(old_key.limit(1)).first() is not None:
        return True
    for merchant_id, active in rulesets.items():
        if any(_candidates(session, merchant_id, rule, now, 1) for rule in _escalation_rules(active.ruleset)):
            return True
    return False


# -- escalations ---------------------------------------------------------------------------------------------


def _escalation_rules(ruleset: Ruleset) -> list[EscalationRule]:
    return sorted(ruleset.escalations, key=lambda rule: (rule.after, rule.id))


def _not_fired(rule_id: str) -> Any:
    return ~exists().where(
        col(EscalationFiring.merchant_id) == col(Ticket.merchant_id),
        col(EscalationFiring.ticket_id) == col(Ticket.id),
        col(EscalationFiring.rule_id) == rule_id,
        col(EscalationFiring.stage_entered_at) == col(Ticket.stage_entered_at),
    )


def _candidates(
    session: Session, merchant_id: str, rule: EscalationRule, now: datetime, limit: int
) -> list[Ticket]:
    """Tickets in the rule's stages long enough, not yet fired for this stay (oldest first)."""
    # No stages: any open stage (a closed ticket has nobody left to escalate to).
    stages = list(rule.stages) if rule.stages else list(OPEN_STAGES)
    query = (
        select(Ticket)
        .where(
            Ticket.merchant_id == merchant_id,
            col(Ticket.stage).in_(stages),
            col(Ticket.stage_entered_at) <= now - rule.after,
            _not_fired(rule.id),
        )
        .order_by(col(Ticket.stage_entered_at), col(Ticket.id))
        .limit(limit)
    )
    return list(session.exec(query))


def _fire_escalations(
    session: Session,
    services: WorkflowServices,
    merchant_id: str,
    active: ActiveRuleset,
    now: datetime,
    report: TickReport,
    locking: bool,
    max_items: int,
) -> None:
    rules = _escalation_rules(active.ruleset)
    if not rules:
        return
    due_ids: list[str] = []
    seen: set[str] = set()
    for rule in rules:
        budget = max_items - report.candidates_checked
        if budget <= 0:
            report.more_due = True
            break
        candidates = _candidates(session, merchant_id, rule, now, min(budget, PAGE * 4))
        report.candidates_checked += len(candidates)
        if len(candidates) == min(budget, PAGE * 4):
            report.more_due = True
        for ticket in candidates:
            if ticket.id in seen:
                continue
            facts = stored_ticket_facts(session, ticket, now)
            due = {r.id for r in services.policy.escalations_due(active.ruleset, facts)}
            if rule.id in due:
                seen.add(ticket.id)
                due_ids.append(ticket.id)
    for start in range(0, len(due_ids), PAGE):
        for ticket in _lock(session, merchant_id, due_ids[start : start + PAGE], locking, report):
            _escalate_ticket(session, services, ticket, now, active.version, active.ruleset, report)


def _lock(
    session: Session, merchant_id: str, ids: list[str], locking: bool, report: TickReport
) -> list[Ticket]:
    """Re-read (and on PostgreSQL lock) the given tickets; rows another scheduler holds are skipped."""
    query = (
        select(Ticket)
        .where(Ticket.merchant_id == merchant_id, col(Ticket.id).in_(ids))
        .order_by(col(Ticket.id))
        .execution_options(populate_existing=True)
    )
    if locking:
        query = query.with_for_update(skip_locked=True)
    rows = list(session.exec(query))
    report.skipped_locked += len(ids) - len(rows)
    return rows


def _claim(session: Session, ticket: Ticket, rule_id: str, now: datetime) -> bool:
    """Insert the firing row; True only for the one transaction that inserted it."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {
        "merchant_id": ticket.merchant_id,
        "ticket_id": ticket.id,
        "rule_id": rule_id,
        "stage_entered_at": ticket.stage_entered_at,
        "fired_at": now,
    }
    statement = (
        insert(EscalationFiring)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["merchant_id", "ticket_id", "rule_id", "stage_entered_at"])
        .returning(col(EscalationFiring.id))
    )
    # RETURNING yields a row only when this statement inserted it (rowcount is unreliable across drivers).
    return session.execute(statement).first() is not None


def _escalate_ticket(
    session: Session,
    services: WorkflowServices,
    ticket: Ticket,
    now: datetime,
    ruleset_version: int | None,
    ruleset: Ruleset,
    report: TickReport,
) -> None:
    system = Principal.system(ticket.merchant_id)
    # the row is fresh (and locked): decide on what it is now
    facts = stored_ticket_facts(session, ticket, now)
    due = [
        r
        for r in _escalation_rules(ruleset)
        if r.id in {d.id for d in services.policy.escalations_due(ruleset, facts)}
    ]
    for rule in due:
        entered = ticket.stage_entered_at
        stage = ticket.stage
        if not _claim(session, ticket, rule.id, now):
            continue
        before = snapshot(ticket)
        applied, skipped = _apply(session, services, system, ticket, rule, ruleset, ruleset_version)
        if ticket.stage == stage:  # a transition records and bumps on its own
            new_version(session, ticket, now)
            bump_queue_version(session, ticket.merchant_id)
        decision = {
            "rule_id": rule.id,
            "after_seconds": rule.after.total_seconds(),
            "then": rule.then.to_dict(),
            "stage": stage,
            "stage_entered_at": entered.isoformat(),
            "applied": applied,
            "skipped": skipped,
        }
        audit.record(
            session,
            system,
            kind="ticket.escalated",
            ticket_id=ticket.id,
            before=before,
            after=snapshot(ticket),
            ruleset_version=ruleset_version,
            model_version=ticket.model_version,
            facts=facts,
            decision=decision,
        )
        publish_after_commit(
            session,
            services.bus,
            TicketEvent(
                kind="escalated",
                merchant_id=ticket.merchant_id,
                ticket_id=ticket.id,
                data={
                    "rule_id": rule.id,
                    "then": rule.then.to_dict(),
                    "stage": ticket.stage,
                    "version": ticket.version,
                },
                at=now,
            ),
        )
        report.escalations.append(
            FiredEscalation(
                merchant_id=ticket.merchant_id,
                ticket_id=ticket.id,
                rule_id=rule.id,
                stage=stage,
                stage_entered_at=entered,
                applied=applied,
                skipped=skipped,
            )
        )
        if ticket.stage != stage:
            break  # a new stay in a new stage: the remaining rules were about the old one


def _apply(
    session: Session,
    services: WorkflowServices,
    system: Principal,
    ticket: Ticket,
    rule: EscalationRule,
    ruleset: Ruleset,
    ruleset_version: int | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Carry out the rule's ``then``; what cannot apply is recorded, never raised (the firing stands)."""
    applied: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    then = rule.then
    if then.priority is not None:
        ticket.priority = then.priority
        apply_sla(ticket, ruleset)
        applied["priority"] = then.priority
    if then.tags:
        try:
            ticket.tags = clean_tags([*ticket.tags, *then.tags])
            applied["tags"] = list(then.tags)
        except DomainError as exc:
            skipped["tags"] = exc.message
    if then.needs_human is not None:
        ticket.needs_human = then.needs_human
        applied["needs_human"] = ticket.needs_human
    if then.team is not None:
        team = get_team_by_name(session, ticket.merchant_id, then.team)
        if team is None:
            skipped["team"] = f"team {then.team!r} does not exist"
        else:
            ticket.team_id = team.id
            applied["team"] = team.name
    target = then.transition
    if target is not None:
        transitions = ruleset.transitions
        if target == ticket.stage:
            skipped["transition"] = f"already in {target}"
        elif target not in transitions.get(ticket.stage, ()):
            skipped["transition"] = f"{ticket.stage} → {target} is not in the ruleset's graph"
        else:
            move_stage(
                session,
                services,
                system,
                ticket,
                target,
                transitions=dict(transitions),
                ruleset_version=ruleset_version,
                reason=f"escalation {rule.id}",
            )
            applied["transition"] = target
    return applied, skipped


# -- SLA breaches --------------------------------------------------------------------------------------------


def _breach_query(now: datetime, merchant_ids: Sequence[str] | None) -> Any:
    """Open tickets past a pending SLA due time and not yet marked. Each branch of the OR repeats the
    condition of its partial index (``storage.tables.FIRST_RESPONSE_PENDING``/``RESOLUTION_PENDING``), so
    SQLite and PostgreSQL read the two small indexes instead of scanning every ticket."""
    not_marked = col(Ticket.sla_breached_at).is_(None)
    return select(Ticket).where(
        col(Ticket.merchant_id).in_(list(merchant_ids)) if merchant_ids is not None else true(),
        col(Ticket.stage).in_(OPEN_STAGES),
        or_(
            and_(
                not_marked, col(Ticket.first_responded_at).is_(None), col(Ticket.first_response_due_at) < now
            ),
            and_(not_marked, col(Ticket.resolved_at).is_(None), col(Ticket.resolution_due_at) < now),
        ),
    )


def _mark_breaches(
    session: Session,
    services: WorkflowServices,
    now: datetime,
    report: TickReport,
    locking: bool,
    max_items: int,
    merchant_ids: Sequence[str] | None,
) -> None:
    query = (
        _breach_query(now, merchant_ids)
        .order_by(col(Ticket.merchant_id), col(Ticket.id))
        .limit(max_items)
        .execution_options(populate_existing=True)
    )
    if locking:
        query = query.with_for_update(skip_locked=True)
    tickets = list(session.exec(query))
    if len(tickets) == max_items:
        report.more_due = True
    bumped: set[str] = set()
    for ticket in tickets:
        kind = breach_of(ticket, now)
        if kind is None:
            continue
        due_at = ticket.first_response_due_at if kind == "first_response" else ticket.resolution_due_at
        assert due_at is not None  # breach_of found it passed
        system = Principal.system(ticket.merchant_id)
        before = snapshot(ticket)
        facts = stored_ticket_facts(session, ticket, now)
        ticket.sla_breached_at = due_at  # when it was breached, not when this tick noticed
        new_version(session, ticket, now)
        after = {**snapshot(ticket), "sla_breached_at": due_at.isoformat()}
        audit.record(
            session,
            system,
            kind="ticket.sla_breached",
            ticket_id=ticket.id,
            before=before,
            after=after,
            model_version=ticket.model_version,
            facts=facts,
            decision={"sla": kind, "due_at": due_at.isoformat(), "detected_at": now.isoformat()},
        )
        publish_after_commit(
            session,
            services.bus,
            TicketEvent(
                kind="sla_breached",
                merchant_id=ticket.merchant_id,
                ticket_id=ticket.id,
                data={
                    "sla": kind,
                    "due_at": due_at.isoformat(),
                    "stage": ticket.stage,
                    "version": ticket.version,
                },
                at=now,
            ),
        )
        if ticket.merchant_id not in bumped:
            bump_queue_version(session, ticket.merchant_id)
            bumped.add(ticket.merchant_id)
        report.breaches.append(
            MarkedBreach(merchant_id=ticket.merchant_id, ticket_id=ticket.id, sla=kind, due_at=due_at)
        )


# -- the loop in the server -------------------------------------------------------------------------------


class SchedulerLoop:
    """Runs :func:`run_due_work` every ``interval`` seconds (at once again while work is left over)."""

    def __init__(
        self,
        database: Database,
        services: WorkflowServices,
        *,
        interval: float,
        on_tick: Callable[[TickReport], None] | None = None,
    ) -> None:
        self._db = database
        self._services = services
        self._interval = interval
        self._on_tick = on_tick
        self.ticks = 0
        self.last_report: TickReport | None = None
        self._tick: asyncio.Future[TickReport] | None = None

    async def run(self) -> None:
        while True:
            more = False
            try:
                self._tick = asyncio.ensure_future(
                    asyncio.to_thread(run_due_work, self._db, self._services, self._services.clock())
                )
                # shielded: a cancelled loop leaves the tick's unit of work to finish (see drain)
                report = await asyncio.shield(self._tick)
                self.ticks += 1
                self.last_report = report
                more = report.more_due
                if report.changed:
                    log.info(
                        "scheduler: %d escalation(s), %d SLA breach(es), %d action timeout(s)",
                        len(report.escalations),
                        len(report.breaches),
                        len(report.timed_out_actions),
                    )
                if self._on_tick is not None:
                    self._on_tick(report)
            except asyncio.CancelledError:
                raise
            except Exception:  # the tick rolled back; the same work is found again next time
                log.exception("scheduler tick failed")
            await asyncio.sleep(0 if more else self._interval)

    async def drain(self) -> None:
        """After cancelling :meth:`run` (shutdown): wait until a tick that was in flight has committed or
        rolled back, so the server closes its database after the last unit of work, not during it."""
        tick = self._tick
        if tick is not None and not tick.done():
            await asyncio.gather(tick, return_exceptions=True)
