"""The ingest pipeline: classify → route by the merchant's rules → SLA due times → new → triaged (as the
``system`` actor) → store → queue update, all in the caller's unit of work."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

import classifier
from storage.tables import Ticket
from workflow import audit
from workflow.agents import get_team_by_name, pick_assignee
from workflow.errors import invalid
from workflow.events import TicketEvent, publish_after_commit
from workflow.facts import ticket_facts
from workflow.principal import TICKET_WRITERS, Principal
from workflow.queue import bump_queue_version
from workflow.rulesets import active_ruleset
from workflow.services import WorkflowServices
from workflow.sla import apply_sla
from workflow.stages import CHANNELS, PRIORITIES
from workflow.tickets import clean_tags, move_stage, record_transition, snapshot, validate_ticket_fields


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
    principal.require(*TICKET_WRITERS)
    if not data.subject.strip() and not data.body.strip():
        raise invalid("a ticket needs a subject or a body", "body")
    if data.channel not in CHANNELS:
        raise invalid(f"channel must be one of {', '.join(CHANNELS)}", "channel")
    now = services.clock()
    ticket = Ticket(
        merchant_id=principal.merchant_id,
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
    if data.prior_contacts is not None and not 0 <= data.prior_contacts < 10**6:
        raise invalid("prior contacts must be non-negative", "priorContacts")

    prediction = services.classifier.predict(
        classifier.TicketInput(
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
    )
    ticket.category = prediction.category
    ticket.category_confidence = prediction.category_confidence
    ticket.priority = prediction.priority
    ticket.priority_confidence = prediction.priority_confidence
    ticket.model_version = prediction.model_version

    active = active_ruleset(session, services, principal.merchant_id)
    system = Principal.system(principal.merchant_id)
    facts = ticket_facts(ticket, now)
    decision = services.policy.route(active.ruleset, facts)
    routing = decision.to_dict()
    overrides = dict(decision.set or {})
    if overrides.get("priority") in PRIORITIES:
        ticket.priority = str(overrides["priority"])
    if "tags" in overrides and isinstance(overrides["tags"], list):
        ticket.tags = clean_tags([*ticket.tags, *map(str, overrides["tags"])])
    team = get_team_by_name(session, principal.merchant_id, decision.team) if decision.team else None
    if decision.team and team is None:
        routing["note"] = f"team {decision.team!r} does not exist; ticket left unassigned"
    ticket.team_id = team.id if team else None
    ticket.routing_rule_id = decision.rule_id
    ticket.needs_human = bool(services.policy.handoff(active.ruleset, facts))
    apply_sla(ticket, active.ruleset)
    # Pick the agent before the ticket is added to the session, so the candidates query does not flush a
    # half-built ticket (one INSERT per ticket, no UPDATE after it).
    agent = None
    if team is not None and decision.strategy:
        agent = pick_assignee(
            session,
            principal.merchant_id,
            team,
            strategy=decision.strategy,
            skills=list(decision.skills or ()),
        )
        if agent is not None:
            routing["assignee_id"] = agent.id
        else:
            routing["note"] = (
                f"no available agent with capacity in team {team.name!r}; left in the team queue"
            )

    session.add(ticket)
    record_transition(session, principal, ticket, None, "new", at=now)
    audit.record(
        session,
        principal,
        kind="ticket.created",
        ticket_id=ticket.id,
        after=snapshot(ticket),
        ruleset_version=active.version,
        model_version=ticket.model_version,
    )
    audit.record(
        session,
        system,
        kind="ticket.routed",
        ticket_id=ticket.id,
        ruleset_version=active.version,
        model_version=ticket.model_version,
        facts=facts,
        decision=routing,
    )
    bump_queue_version(session, ticket.merchant_id)
    publish_after_commit(
        session,
        services.bus,
        TicketEvent(
            kind="created",
            merchant_id=ticket.merchant_id,
            ticket_id=ticket.id,
            data={"stage": "new", "category": ticket.category, "priority": ticket.priority},
        ),
    )
    transitions = active.ruleset.transitions
    if "triaged" in transitions.get("new", ()):
        move_stage(
            session,
            services,
            system,
            ticket,
            "triaged",
            transitions=transitions,
            ruleset_version=active.version,
            reason="classified and routed",
        )
    if agent is not None:
        ticket.assignee_id = agent.id
        if "assigned" in transitions.get(ticket.stage, ()):
            move_stage(
                session,
                services,
                system,
                ticket,
                "assigned",
                transitions=transitions,
                ruleset_version=active.version,
                reason=f"routed by {decision.rule_id}",
            )
    return IngestResult(ticket=ticket, prediction=prediction, routing=routing, ruleset_version=active.version)
