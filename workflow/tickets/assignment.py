"""Assignment: the one place an assignee changes (keeping agents' open-ticket counts), and ``assignTicket``."""

from __future__ import annotations

from sqlmodel import Session

from storage.tables import Ticket
from workflow.errors import invalid
from workflow.rulesets.versions import active_ruleset
from workflow.services import WorkflowServices
from workflow.stages import CLOSED_STAGES
from workflow.tenancy.agents import count_open_tickets, get_agent, get_team
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.changes import check_version, record_change, require_permission, snapshot
from workflow.tickets.read import get_ticket
from workflow.tickets.transitions import move_stage


def set_assignee(session: Session, ticket: Ticket, agent_id: str | None) -> None:
    """Give ``ticket`` to ``agent_id`` (None: nobody), moving an open ticket's load between agents."""
    if agent_id == ticket.assignee_id:
        return
    if ticket.stage not in CLOSED_STAGES:
        count_open_tickets(session, ticket.assignee_id, -1)
        count_open_tickets(session, agent_id, 1)
    ticket.assignee_id = agent_id


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
    check_version(ticket, expected_version)
    active = active_ruleset(session, services, principal.merchant_id)
    require_permission(session, services, principal, ticket, {"type": "assign"}, active)
    before = snapshot(ticket)
    if team_id is not None:
        ticket.team_id = get_team(session, principal.merchant_id, team_id).id
    if agent_id is not None:
        set_assignee(session, ticket, get_agent(session, principal.merchant_id, agent_id).id)
    record_change(
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
