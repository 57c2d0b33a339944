"""Stage transitions along the ruleset's graph: the transition row (time in stage), the open-ticket count
when a ticket opens or closes, and the ``transitionTicket`` mutation."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlmodel import Session

from storage.db import insert_later
from storage.tables import StageTransition, Ticket
from workflow.errors import DomainError, ErrorCode
from workflow.rulesets.versions import active_ruleset
from workflow.services import WorkflowServices
from workflow.stages import CLOSED_STAGES
from workflow.tenancy.agents import count_open_tickets
from workflow.tenancy.principal import TICKET_WRITERS, Principal
from workflow.tickets.changes import check_version, record_change, require_permission, snapshot
from workflow.tickets.read import get_ticket


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
    record_change(
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
    check_version(ticket, expected_version)
    active = active_ruleset(session, services, principal.merchant_id)
    require_permission(
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
