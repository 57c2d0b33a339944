"""The ingest pipeline: classify → route by the merchant's rules → SLA due times → new → triaged (as the
``system`` actor) → store → queue update, all in the caller's unit of work."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

import classifier
from classifier.cleaning import clean_body
from storage.tables import Team, Ticket
from workflow import audit
from workflow.errors import DomainError, invalid
from workflow.live.bus import TicketEvent, publish_after_commit
from workflow.queue import bump_queue_version, lock_queue
from workflow.rulesets.versions import active_ruleset
from workflow.services import WorkflowServices
from workflow.stages import CHANNELS
from workflow.tenancy.agents import Assigner, get_team_by_name
from workflow.tenancy.principal import TICKET_WRITERS, Principal
from workflow.tickets.facts import ticket_facts
from workflow.tickets.service import (
    clean_tags,
    move_stage,
    record_transition,
    set_assignee,
    snapshot,
    validate_ticket_fields,
)
from workflow.tickets.sla import apply_sla


@dataclass
class TicketInput:
    subject: str = ""
    body: str = ""
    channel: str = "email"
    customer_email: str | None = None
    customer_name: str | None = None
    customer_vip: bool = False
    customer_lifetime_value: float | None = None
    customer_order_count: int | None = None
    order_id: str | None = None
    order_total: float | None = None
    order_currency: str | None = None
    order_financial_status: str | None = None
    order_fulfillment_status: str | None = None
    order_created_at: datetime | None = None
    order_delivered_at: datetime | None = None
    tags: list[str] = field(default_factory=list)
    prior_contacts: int | None = None


@dataclass(frozen=True)
class IngestResult:
    ticket: Ticket
    prediction: classifier.Prediction
    routing: dict[str, Any]
    ruleset_version: int | None


def create_ticket(
    session: Session, services: WorkflowServices, principal: Principal, data: TicketInput
) -> IngestResult:
    """Ingest one ticket; an input that is refused raises its DomainError."""
    (result,) = create_tickets(session, services, [(principal, data)])
    if isinstance(result, DomainError):
        raise result
    return result


def create_tickets(
    session: Session, services: WorkflowServices, requests: Sequence[tuple[Principal, TicketInput]]
) -> list[IngestResult | DomainError]:
    """Ingest several tickets in the caller's unit of work, each exactly as it would be on its own.

    A request whose input is refused gets its DomainError in its place and writes nothing; the others go
    on. The work shared by a batch is done once: one classifier call, and per merchant one read of the
    active ruleset, of each routed-to team and of its members' load (kept up to date as tickets are
    assigned, so a batch is spread over agents as one-at-a-time ingest would spread it).
    """
    clock = services.clock()
    results: list[IngestResult | DomainError | None] = []
    accepted: list[tuple[int, Principal, Ticket, TicketInput]] = []
    for principal, data in requests:
        # One clock reading per batch, a microsecond apart in arrival order: listings (newest first by
        # created_at, then id) keep the order in which the requests came.
        now = clock + timedelta(microseconds=len(results))
        try:
            principal.require(*TICKET_WRITERS)
            ticket = _new_ticket(principal.merchant_id, data, now)
        except DomainError as exc:
            results.append(exc)
            continue
        accepted.append((len(results), principal, ticket, data))
        results.append(None)
    started = time.perf_counter()
    predictions = services.classifier.predict_batch(
        [_classifier_input(ticket, data) for _, _, ticket, data in accepted]
    )
    if accepted:
        services.metrics.classified(time.perf_counter() - started, len(accepted))
    # Each merchant's queue row is locked first, in id order: on PostgreSQL, concurrent batches (and other
    # processes) then ingest one merchant's tickets one batch at a time, so the load they read stays true
    # and the rows they update (team cursors, the queue version) are never taken in opposite orders.
    merchant_ids = sorted({principal.merchant_id for _, principal, _, _ in accepted})
    merchants = {m: _MerchantIngest(session, services, m) for m in merchant_ids}
    routed: list[_Routed] = []
    for (index, principal, ticket, _), prediction in zip(accepted, predictions, strict=True):
        merchant = merchants[principal.merchant_id]
        try:
            routed.append(merchant.route(principal, ticket, prediction))
        except DomainError as exc:  # e.g. a routing rule's tags push the ticket past the limit
            results[index] = exc  # refused before anything of it was written or counted
            continue
        results[index] = IngestResult(ticket, prediction, routed[-1].routing, merchant.active.version)
    # Every read is done: now the writes, one ticket after another (the audit and transition rows of the
    # whole batch go out as one multi-row INSERT per table).
    for one in routed:
        _store(session, services, one)
    return [r for r in results if r is not None]


def _new_ticket(merchant_id: str, data: TicketInput, now: datetime) -> Ticket:
    if not data.subject.strip() and not data.body.strip():
        raise invalid("a ticket needs a subject or a body", "body")
    if data.channel not in CHANNELS:
        raise invalid(f"channel must be one of {', '.join(CHANNELS)}", "channel")
    if data.prior_contacts is not None and not 0 <= data.prior_contacts < 10**6:
        raise invalid("prior contacts must be non-negative", "priorContacts")
    ticket = Ticket(
        merchant_id=merchant_id,
        channel=data.channel,
        subject=data.subject.strip(),
        body=data.body,
        customer_email=data.customer_email,
        customer_name=data.customer_name,
        customer_vip=data.customer_vip,
        customer_lifetime_value=data.customer_lifetime_value,
        customer_order_count=data.customer_order_count,
        order_id=data.order_id,
        order_total=data.order_total,
        order_currency=data.order_currency.upper() if data.order_currency else None,
        order_financial_status=data.order_financial_status,
        order_fulfillment_status=data.order_fulfillment_status,
        order_created_at=data.order_created_at,
        order_delivered_at=data.order_delivered_at,
        tags=clean_tags(data.tags),
        stage="new",
        created_at=now,
        updated_at=now,
        stage_entered_at=now,
    )
    validate_ticket_fields(ticket)
    return ticket


def _classifier_input(ticket: Ticket, data: TicketInput) -> classifier.TicketInput:
    return classifier.TicketInput(
        subject=ticket.subject,
        body=ticket.body,
        channel=ticket.channel,
        customer_vip=ticket.customer_vip,
        customer_lifetime_value=ticket.customer_lifetime_value,
        customer_order_count=ticket.customer_order_count,
        order_total=ticket.order_total,
        order_financial_status=ticket.order_financial_status,
        order_fulfillment_status=ticket.order_fulfillment_status,
        prior_contacts=data.prior_contacts,
    )


class _MerchantIngest:
    """What routing one merchant's new tickets reads once per unit of work: the active ruleset, the teams
    routed to, and (through the assigner) their members and load."""

    def __init__(self, session: Session, services: WorkflowServices, merchant_id: str) -> None:
        self.session = session
        self.services = services
        self.merchant_id = merchant_id
        self.system = Principal.system(merchant_id)
        lock_queue(session, merchant_id)
        self.active = active_ruleset(session, services, merchant_id)
        self.assigner = Assigner(session, merchant_id)
        self._teams: dict[str, Team | None] = {}

    def team(self, name: str) -> Team | None:
        if name not in self._teams:
            self._teams[name] = get_team_by_name(self.session, self.merchant_id, name)
        return self._teams[name]

    def route(self, principal: Principal, ticket: Ticket, prediction: classifier.Prediction) -> _Routed:
        """Classification, routing rules, SLA due times and the assignee, all on the unsaved ticket (the
        facts are taken as of its creation)."""
        ruleset = self.active.ruleset
        policy = self.services.policy
        ticket.category = prediction.category
        ticket.category_confidence = prediction.category_confidence
        ticket.priority = prediction.priority
        ticket.priority_confidence = prediction.priority_confidence
        ticket.model_version = prediction.model_version
        ticket.language = self.services.language.detect(clean_body(ticket.body) or ticket.subject)
        facts = ticket_facts(ticket, ticket.created_at)
        decision = policy.route(ruleset, facts)
        routing = decision.to_dict()
        updates = decision.set
        if updates.priority is not None:
            ticket.priority = updates.priority
        if updates.category is not None:
            ticket.category = updates.category
        if updates.tags:
            ticket.tags = clean_tags([*ticket.tags, *updates.tags])
        team = self.team(decision.team) if decision.team else None
        missing_team = decision.team is not None and team is None
        if missing_team:
            # Say what happened, not what the rule asked for: no team, and a human should look at it.
            routing["team"] = None
            routing["team_not_found"] = decision.team
            routing["note"] = (
                f"team {decision.team!r} does not exist; ticket left unassigned and flagged for a human"
            )
        ticket.team_id = team.id if team else None
        ticket.routing_rule_id = decision.rule_id
        # Either may flag the ticket: a matching handoff rule, the routing rule's `set: {needs_human: true}`,
        # or a route to a team that does not exist.
        ticket.needs_human = bool(policy.handoff(ruleset, facts)) or bool(updates.needs_human) or missing_team
        apply_sla(ticket, ruleset)
        agent_id = None
        if team is not None and decision.strategy:
            agent_id = self.assigner.pick(
                team, strategy=decision.strategy, skills=list(decision.skills or ())
            )
            if agent_id is not None:
                routing["assignee_id"] = agent_id
            else:
                routing["note"] = (
                    f"no available agent with capacity in team {team.name!r}; left in the team queue"
                )
        return _Routed(principal, ticket, routing, facts, agent_id, self)


@dataclass(frozen=True)
class _Routed:
    principal: Principal
    ticket: Ticket
    routing: dict[str, Any]
    facts: dict[str, Any]
    assignee_id: str | None
    merchant: _MerchantIngest


def _store(session: Session, services: WorkflowServices, routed: _Routed) -> None:
    """Write one routed ticket: its row, the created and routed audit entries, and the system's moves to
    ``triaged`` (and ``assigned`` when an agent was picked) where the ruleset's graph has those edges."""
    ticket, merchant = routed.ticket, routed.merchant
    version = merchant.active.version
    session.add(ticket)
    record_transition(session, routed.principal, ticket, None, "new", at=ticket.created_at)
    audit.record(
        session,
        routed.principal,
        kind="ticket.created",
        ticket_id=ticket.id,
        after=snapshot(ticket),
        ruleset_version=version,
        model_version=ticket.model_version,
    )
    audit.record(
        session,
        merchant.system,
        kind="ticket.routed",
        ticket_id=ticket.id,
        ruleset_version=version,
        model_version=ticket.model_version,
        facts=routed.facts,
        decision=routed.routing,
    )
    bump_queue_version(session, ticket.merchant_id)
    publish_after_commit(
        session,
        services.bus,
        TicketEvent(
            kind="created",
            merchant_id=ticket.merchant_id,
            ticket_id=ticket.id,
            data={
                "stage": "new",
                "category": ticket.category,
                "priority": ticket.priority,
                "version": ticket.version,
            },
        ),
    )
    transitions = merchant.active.ruleset.transitions
    if "triaged" in transitions.get("new", ()):
        move_stage(
            session,
            services,
            merchant.system,
            ticket,
            "triaged",
            transitions=transitions,
            ruleset_version=version,
            reason="classified and routed",
        )
    if routed.assignee_id is not None:
        set_assignee(session, ticket, routed.assignee_id)
        if "assigned" in transitions.get(ticket.stage, ()):
            move_stage(
                session,
                services,
                merchant.system,
                ticket,
                "assigned",
                transitions=transitions,
                ruleset_version=version,
                reason=f"routed by {ticket.routing_rule_id}",
            )
