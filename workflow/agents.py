"""The merchant's people and teams, and choosing an assignee within a team.

Strategies: ``round_robin`` (next eligible member after the team's cursor) and ``least_loaded`` (fewest
open tickets). Both skip unavailable agents and agents at capacity, and can require skills.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func
from sqlmodel import Session, col, select

from storage.tables import Agent, Team, TeamMember, Ticket
from workflow.errors import DomainError, ErrorCode, invalid, not_found
from workflow.principal import Principal, Role
from workflow.stages import OPEN_STAGES

STRATEGIES = ("round_robin", "least_loaded")


def create_team(session: Session, principal: Principal, *, name: str) -> Team:
    principal.require(Role.ADMIN)
    name = name.strip()
    if not name or len(name) > 100:
        raise invalid("team name must be 1-100 characters", "name")
    if get_team_by_name(session, principal.merchant_id, name) is not None:
        raise DomainError(ErrorCode.CONFLICT, f"team {name!r} exists", "name")
    team = Team(merchant_id=principal.merchant_id, name=name)
    session.add(team)
    session.flush()
    return team


# Statements on the ingest path are built once (with bound parameters) instead of on every ticket.
@cache
def _team_by_name() -> Any:
    return select(Team).where(Team.merchant_id == bindparam("merchant_id"), Team.name == bindparam("name"))


@cache
def _team_members() -> Any:
    return (
        select(Agent.id, Agent.available, Agent.skills, Agent.capacity)
        .join(TeamMember, col(TeamMember.agent_id) == col(Agent.id))
        .where(TeamMember.team_id == bindparam("team_id"), Agent.merchant_id == bindparam("merchant_id"))
        .order_by(col(Agent.created_at), col(Agent.id))
    )


@cache
def _open_load() -> Any:
    return (
        select(Ticket.assignee_id, func.count())
        .where(
            Ticket.merchant_id == bindparam("merchant_id"),
            col(Ticket.assignee_id).in_(bindparam("agent_ids", expanding=True)),
            col(Ticket.stage).in_(OPEN_STAGES),
        )
        .group_by(Ticket.assignee_id)
    )


def get_team_by_name(session: Session, merchant_id: str, name: str) -> Team | None:
    team: Team | None = session.exec(
        _team_by_name(), params={"merchant_id": merchant_id, "name": name}
    ).first()
    return team


def get_team(session: Session, merchant_id: str, team_id: str) -> Team:
    team = session.get(Team, team_id)
    if team is None or team.merchant_id != merchant_id:
        raise not_found("team", "teamId")
    return team


def list_teams(session: Session, merchant_id: str) -> list[Team]:
    return list(session.exec(select(Team).where(Team.merchant_id == merchant_id).order_by(col(Team.name))))


def create_agent(
    session: Session,
    principal: Principal,
    *,
    name: str,
    email: str,
    teams: Sequence[str] = (),
    skills: Sequence[str] = (),
    capacity: int = 10,
    available: bool = True,
) -> Agent:
    principal.require(Role.ADMIN)
    if not name.strip() or len(name) > 200:
        raise invalid("agent name must be 1-200 characters", "name")
    if "@" not in email or len(email) > 320:
        raise invalid("agent email is not an email address", "email")
    if not 0 <= capacity <= 1000:
        raise invalid("capacity must be between 0 and 1000", "capacity")
    exists = session.exec(
        select(Agent).where(Agent.merchant_id == principal.merchant_id, Agent.email == email)
    ).first()
    if exists is not None:
        raise DomainError(ErrorCode.CONFLICT, f"an agent with email {email!r} exists", "email")
    agent = Agent(
        merchant_id=principal.merchant_id,
        name=name.strip(),
        email=email,
        skills=sorted(set(skills)),
        capacity=capacity,
        available=available,
    )
    session.add(agent)
    session.flush()
    for team_name in teams:
        team = get_team_by_name(session, principal.merchant_id, team_name)
        if team is None:
            raise not_found(f"team {team_name!r}", "teams")
        session.add(TeamMember(team_id=team.id, agent_id=agent.id, merchant_id=principal.merchant_id))
    session.flush()
    return agent


def get_agent(session: Session, merchant_id: str, agent_id: str) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None or agent.merchant_id != merchant_id:
        raise not_found("agent", "agentId")
    return agent


def set_availability(session: Session, principal: Principal, *, agent_id: str, available: bool) -> Agent:
    principal.require(Role.ADMIN, Role.AGENT)
    agent = get_agent(session, principal.merchant_id, agent_id)
    agent.available = available
    session.add(agent)
    return agent


def list_agents(session: Session, merchant_id: str) -> list[Agent]:
    return list(session.exec(select(Agent).where(Agent.merchant_id == merchant_id).order_by(col(Agent.name))))


def open_load(session: Session, merchant_id: str, agent_ids: Sequence[str]) -> dict[str, int]:
    if not agent_ids:
        return {}
    rows = session.exec(_open_load(), params={"merchant_id": merchant_id, "agent_ids": list(agent_ids)}).all()
    return {agent_id: int(n) for agent_id, n in rows if agent_id is not None}


@dataclass(frozen=True)
class _Member:
    """What choosing an assignee reads of an agent (plain values: comparing ORM models is slow)."""

    id: str
    available: bool
    skills: frozenset[str]
    capacity: int


class Assigner:
    """Chooses assignees for one merchant within one unit of work.

    Team members and their open-ticket counts are read once per team and then kept up to date in memory as
    tickets are handed out, so a batch of new tickets is spread as if each had been assigned on its own
    (the tickets it assigns need not be written yet).
    """

    def __init__(self, session: Session, merchant_id: str) -> None:
        self._session = session
        self._merchant_id = merchant_id
        self._members: dict[str, list[_Member]] = {}
        self._load: dict[str, int] = {}

    def pick(self, team: Team, *, strategy: str = "least_loaded", skills: Sequence[str] = ()) -> str | None:
        """The id of the agent to assign within ``team`` (counted as one more open ticket for them), or None
        when nobody is available with spare capacity."""
        if strategy not in STRATEGIES:
            raise invalid(f"unknown assignment strategy {strategy!r}", "strategy")
        members = self._team_members(team)
        needed = set(skills)
        load = self._load
        eligible = [
            i
            for i, m in enumerate(members)
            if m.available and needed.issubset(m.skills) and load[m.id] < m.capacity
        ]
        if not eligible:
            return None
        if strategy == "least_loaded":  # fewest open tickets; ties go to the longest-standing member
            chosen = min(eligible, key=lambda i: (load[members[i].id], i))
        else:  # round robin: the first eligible member after the cursor, then advance the cursor past them
            count, start, allowed = len(members), team.round_robin_cursor, set(eligible)
            chosen = next(
                (start + step) % count for step in range(count) if (start + step) % count in allowed
            )
            team.round_robin_cursor = (chosen + 1) % count
            self._session.add(team)
        agent_id = members[chosen].id
        load[agent_id] += 1
        return agent_id

    def _team_members(self, team: Team) -> list[_Member]:
        members = self._members.get(team.id)
        if members is None:
            params = {"team_id": team.id, "merchant_id": self._merchant_id}
            members = [
                _Member(row.id, row.available, frozenset(row.skills or ()), row.capacity)
                for row in self._session.execute(_team_members(), params)
            ]
            self._members[team.id] = members
            unknown = [m.id for m in members if m.id not in self._load]
            counted = open_load(self._session, self._merchant_id, unknown)
            self._load.update({agent_id: counted.get(agent_id, 0) for agent_id in unknown})
        return members


def pick_assignee(
    session: Session,
    merchant_id: str,
    team: Team,
    *,
    strategy: str = "least_loaded",
    skills: Sequence[str] = (),
) -> Agent | None:
    """The agent to assign within ``team``, or None when nobody is available with spare capacity."""
    agent_id = Assigner(session, merchant_id).pick(team, strategy=strategy, skills=skills)
    return None if agent_id is None else session.get(Agent, agent_id)
