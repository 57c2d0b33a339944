"""The merchant's people and teams, and choosing an assignee within a team.

Strategies: ``round_robin`` (next eligible member after the team's cursor) and ``least_loaded`` (fewest
open tickets). Both skip unavailable agents and agents at capacity, and can require skills.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlalchemy import select as sa_select  # more than four columns
from sqlmodel import Session, col, select

from storage.db import before_commit
from storage.tables import Agent, Team, TeamMember, Ticket
from workflow.errors import DomainError, ErrorCode, invalid, not_found
from workflow.queue import lock_queue
from workflow.stages import OPEN_STAGES
from workflow.tenancy.principal import Principal, Role

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
        sa_select(
            col(Agent.id),
            col(Agent.available),
            col(Agent.skills),
            col(Agent.capacity),
            col(Agent.open_tickets),
        )
        .join(TeamMember, col(TeamMember.agent_id) == col(Agent.id))
        .where(
            col(TeamMember.team_id) == bindparam("team_id"),
            col(Agent.merchant_id) == bindparam("merchant_id"),
        )
        .order_by(col(Agent.created_at), col(Agent.id))
    )


@cache
def _add_open_tickets() -> Any:
    return (
        update(Agent)
        .where(col(Agent.id) == bindparam("agent_id"))
        .values(open_tickets=Agent.open_tickets + bindparam("delta"))
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


_OPEN_COUNTS = "bookbag_open_ticket_deltas"


def count_open_tickets(session: Session, agent_id: str | None, delta: int) -> None:
    """Keep ``Agent.open_tickets`` in step: +1 when an open ticket gets the agent or one of theirs reopens,
    -1 when it leaves them or closes. The changes of a transaction are written at its end, one UPDATE per
    agent (after its other statements: on PostgreSQL every writer takes the queue row before agent rows)."""
    if agent_id is None or delta == 0:
        return
    deltas: dict[str, int] = session.info.setdefault(_OPEN_COUNTS, {})
    deltas[agent_id] = deltas.get(agent_id, 0) + delta
    before_commit(session, _OPEN_COUNTS, _write_open_counts)


def _pending_counts(session: Session) -> dict[str, int]:
    pending: dict[str, int] = session.info.get(_OPEN_COUNTS, {})
    return pending


def _write_open_counts(session: Session) -> None:
    deltas: dict[str, int] = session.info.pop(_OPEN_COUNTS, {})
    connection = session.connection()
    for agent_id, delta in sorted(deltas.items()):
        if delta:
            connection.execute(_add_open_tickets(), {"agent_id": agent_id, "delta": delta})


def recount_open_tickets(session: Session, merchant_id: str) -> int:
    """Set every agent's ``open_tickets`` of the merchant from the tickets themselves (a repair; the
    merchant's queue row is taken first, as ingest does); returns how many counts were wrong."""
    lock_queue(session, merchant_id)
    counted = dict(
        session.exec(
            select(Ticket.assignee_id, func.count())
            .where(Ticket.merchant_id == merchant_id, col(Ticket.stage).in_(OPEN_STAGES))
            .group_by(Ticket.assignee_id)
        ).all()
    )
    wrong = 0
    for agent in session.exec(select(Agent).where(Agent.merchant_id == merchant_id)):
        right = int(counted.get(agent.id, 0))
        if agent.open_tickets != right:
            wrong += 1
            agent.open_tickets = right
            session.add(agent)
    return wrong


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
            rows = list(self._session.execute(_team_members(), params))
            members = [_Member(r.id, r.available, frozenset(r.skills or ()), r.capacity) for r in rows]
            self._members[team.id] = members
            pending = _pending_counts(self._session)  # changes of this transaction not yet written
            for row in rows:  # an agent in two teams keeps the load counted so far
                self._load.setdefault(row.id, row.open_tickets + pending.get(row.id, 0))
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
