"""Batch reads for the API's per-request DataLoaders: many ids in, one query out, always merchant-scoped.

Owned by the API (issue 5); kept apart from the services so DataLoaders never issue one query per row.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from storage.tables import ActionRequest, Agent, ApiKey, Team, TeamMember
from workflow.actions import count_pending
from workflow.tenancy.principal import Principal, Role


def teams_by_ids(session: Session, merchant_id: str, ids: Sequence[str]) -> dict[str, Team]:
    if not ids:
        return {}
    rows = session.exec(select(Team).where(Team.merchant_id == merchant_id, col(Team.id).in_(list(ids))))
    return {t.id: t for t in rows}


def agents_by_ids(session: Session, merchant_id: str, ids: Sequence[str]) -> dict[str, Agent]:
    if not ids:
        return {}
    rows = session.exec(select(Agent).where(Agent.merchant_id == merchant_id, col(Agent.id).in_(list(ids))))
    return {a.id: a for a in rows}


def actions_by_ticket_ids(
    session: Session, merchant_id: str, ticket_ids: Sequence[str]
) -> dict[str, list[ActionRequest]]:
    grouped: dict[str, list[ActionRequest]] = {tid: [] for tid in ticket_ids}
    if not ticket_ids:
        return grouped
    rows = session.exec(
        select(ActionRequest)
        .where(ActionRequest.merchant_id == merchant_id, col(ActionRequest.ticket_id).in_(list(ticket_ids)))
        .order_by(col(ActionRequest.created_at), col(ActionRequest.id))
    )
    for request in rows:
        grouped[request.ticket_id].append(request)
    return grouped


def team_ids_by_agent_ids(
    session: Session, merchant_id: str, agent_ids: Sequence[str]
) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {aid: [] for aid in agent_ids}
    if not agent_ids:
        return grouped
    rows = session.exec(
        select(TeamMember).where(
            TeamMember.merchant_id == merchant_id, col(TeamMember.agent_id).in_(list(agent_ids))
        )
    )
    for member in rows:
        grouped[member.agent_id].append(member.team_id)
    return grouped


def key_names_by_ids(session: Session, merchant_id: str, ids: Sequence[str]) -> dict[str, str]:
    """API keys' names (what the audit trail and the inbox show for who did something)."""
    if not ids:
        return {}
    rows = session.exec(
        select(ApiKey.id, ApiKey.name).where(ApiKey.merchant_id == merchant_id, col(ApiKey.id).in_(list(ids)))
    )
    return {key_id: name for key_id, name in rows}


def pending_counts_by_roles(session: Session, merchant_id: str, roles: Sequence[str]) -> dict[str, int]:
    """The size of each role's approval inbox."""
    return {
        role: count_pending(session, Principal(merchant_id=merchant_id, role=Role(role), key_id=None))
        for role in roles
    }
