"""What every change to a ticket goes through: the audit snapshot, the version check (``expectedVersion``),
the next version, the audit entry and the event published after commit, and the AI agents' permission
check on the direct mutations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from policy import Actor
from storage.tables import Ticket
from workflow import audit
from workflow.errors import DomainError, ErrorCode
from workflow.live.bus import TicketEvent, publish_after_commit
from workflow.queue import bump_queue_version
from workflow.rulesets.versions import ActiveRuleset, active_ruleset
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal
from workflow.tickets.facts import stored_ticket_facts, with_action


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


def check_version(ticket: Ticket, expected_version: int | None) -> None:
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


def touch(session: Session, services: WorkflowServices, ticket: Ticket) -> None:
    new_version(session, ticket, services.clock())
    bump_queue_version(session, ticket.merchant_id)


def record_change(
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
    touch(session, services, ticket)
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


def require_permission(
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
