"""Queue metrics, the audit log, the classifier's identity, API keys, teams and agents."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlmodel import Session
from strawberry.scalars import JSON

from resolvers import roles
from resolvers.runner import ApiError, mutate, query
from resolvers.snapshots import dump, load
from resolvers.subscriptions import queue_from_snapshot
from schema.admin import (
    ApiKey,
    AuditEvent,
    ClassifierInfo,
    CreateApiKeyPayload,
    ForgetCustomerPayload,
    RevokeApiKeyPayload,
)
from schema.common import UserError
from schema.enums import Role
from schema.payloads import AgentPayload, TeamPayload
from schema.queue import Queue
from schema.tickets import Agent, Info, Team, Ticket
from storage import tables
from workflow import audit as audit_service
from workflow.queue import oldest_open_tickets as oldest_open
from workflow.queue import queue_snapshot
from workflow.services import WorkflowServices
from workflow.tenancy import agents as agents_service
from workflow.tenancy import merchants as merchants_service
from workflow.tenancy.principal import Principal
from workflow.tickets import lifecycle

MAX_AUDIT_PAGE = 500


async def queue(info: Info) -> Queue:
    ctx = info.context
    services = ctx.runtime.services
    snap = await query(ctx, roles.READERS, lambda s, p: queue_snapshot(s, p.merchant_id, services.clock()))
    return queue_from_snapshot(snap)


async def oldest_open_tickets(info: Info, first: int = 10) -> list[Ticket]:
    """The merchant's oldest open tickets (by creation), oldest first; at most 100."""
    if not 1 <= first <= 100:
        raise ApiError("INVALID_INPUT", "first must be between 1 and 100", "first")
    rows = await query(info.context, roles.READERS, lambda s, p: oldest_open(s, p.merchant_id, limit=first))
    return [Ticket.from_model(row) for row in rows]


async def audit_log(
    info: Info,
    ticket_id: strawberry.ID | None = None,
    kind: str | None = None,
    first: int = 100,
    before_id: strawberry.ID | None = None,
) -> list[AuditEvent]:
    """Newest first. Page backwards with `beforeId` (the last id seen); `first` is at most 500."""
    if not 1 <= first <= MAX_AUDIT_PAGE:
        raise ApiError("INVALID_INPUT", f"first must be between 1 and {MAX_AUDIT_PAGE}", "first")
    before = None
    if before_id is not None:
        if not str(before_id).isdigit():
            raise ApiError("INVALID_INPUT", "beforeId must be an audit event id", "beforeId")
        before = int(str(before_id))
    rows = await query(
        info.context,
        roles.READERS,
        lambda s, p: audit_service.list_audit(
            s, p, ticket_id=str(ticket_id) if ticket_id else None, kind=kind, first=first, before_id=before
        ),
    )
    return [AuditEvent.from_model(r) for r in rows]


async def classifier_info(info: Info) -> ClassifierInfo:
    info.context.auth  # noqa: B018 - any authenticated role may read it
    model = info.context.runtime.services.classifier.info
    return ClassifierInfo(
        version=model.version,
        labels=list(model.labels),
        priorities=list(model.priorities),
        trained_at=model.trained_at,
        data_hash=model.data_hash,
        metrics=JSON(dict(model.metrics)),
    )


async def teams(info: Info) -> list[Team]:
    rows = await query(info.context, roles.READERS, lambda s, p: agents_service.list_teams(s, p.merchant_id))
    return [Team.from_model(r) for r in rows]


async def agents(info: Info) -> list[Agent]:
    rows = await query(info.context, roles.READERS, lambda s, p: agents_service.list_agents(s, p.merchant_id))
    return [Agent.from_model(r) for r in rows]


async def api_keys(info: Info) -> list[ApiKey]:
    rows = await query(info.context, roles.ADMINS, merchants_service.list_api_keys)
    return [ApiKey.from_model(r) for r in rows]


async def create_api_key(info: Info, role: Role, name: str = "") -> CreateApiKeyPayload:
    """The secret is in this response only. Not idempotent by design: a replay would have to store it."""

    def work(session: Session, _services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        if len(name) > 200:
            from workflow.errors import invalid

            raise invalid("name must be at most 200 characters", "name")
        issued = merchants_service.create_api_key(
            session, merchant_id=principal.merchant_id, role=role.value, name=name
        )
        return {"key": dump(issued.key), "secret": issued.secret}

    snapshot, error, _ = await mutate(
        info.context, roles.ADMINS, operation="createApiKey", payload={}, idempotency_key=None, work=work
    )
    if error is not None or snapshot is None:
        return CreateApiKeyPayload(errors=[UserError.from_domain(error)] if error else [])
    row = load(tables.ApiKey, snapshot["key"])
    return CreateApiKeyPayload(api_key=ApiKey.from_model(row) if row else None, secret=snapshot["secret"])


async def forget_customer(info: Info, email: str) -> ForgetCustomerPayload:
    """Not idempotent by key: a stored response would keep the address this erases."""

    def work(session: Session, _services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        return lifecycle.forget_customer(session, principal, email).as_dict()

    snapshot, error, _ = await mutate(
        info.context, roles.ADMINS, operation="forgetCustomer", payload={}, idempotency_key=None, work=work
    )
    if error is not None or snapshot is None:
        return ForgetCustomerPayload(errors=[UserError.from_domain(error)] if error else [])
    return ForgetCustomerPayload(**snapshot)


async def revoke_api_key(info: Info, id: strawberry.ID) -> RevokeApiKeyPayload:
    def work(session: Session, _services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        return {"key": dump(merchants_service.revoke_api_key(session, principal, str(id)))}

    snapshot, error, _ = await mutate(
        info.context,
        roles.ADMINS,
        operation="revokeApiKey",
        payload={"id": str(id)},
        idempotency_key=None,
        work=work,
    )
    if error is not None or snapshot is None:
        return RevokeApiKeyPayload(errors=[UserError.from_domain(error)] if error else [])
    info.context.runtime.principals.forget_key(str(id))
    row = load(tables.ApiKey, snapshot["key"])
    return RevokeApiKeyPayload(api_key=ApiKey.from_model(row) if row else None)


async def create_team(info: Info, name: str) -> TeamPayload:
    def work(session: Session, _services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        return {"team": dump(agents_service.create_team(session, principal, name=name))}

    snapshot, error, _ = await mutate(
        info.context,
        roles.ADMINS,
        operation="createTeam",
        payload={"name": name},
        idempotency_key=None,
        work=work,
    )
    if error is not None or snapshot is None:
        return TeamPayload(errors=[UserError.from_domain(error)] if error else [])
    row = load(tables.Team, snapshot["team"])
    return TeamPayload(team=Team.from_model(row) if row else None)


async def create_agent(
    info: Info,
    name: str,
    email: str,
    team_ids: list[strawberry.ID] | None = None,
    skills: list[str] | None = None,
    capacity: int = 10,
    available: bool = True,
) -> AgentPayload:
    teams_ = [str(t) for t in team_ids or []]
    skills_ = list(skills or [])

    def work(session: Session, _services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        names = [agents_service.get_team(session, principal.merchant_id, t).name for t in teams_]
        row = agents_service.create_agent(
            session,
            principal,
            name=name,
            email=email,
            teams=names,
            skills=skills_,
            capacity=capacity,
            available=available,
        )
        return {"agent": dump(row)}

    snapshot, error, _ = await mutate(
        info.context, roles.ADMINS, operation="createAgent", payload={}, idempotency_key=None, work=work
    )
    if error is not None or snapshot is None:
        return AgentPayload(errors=[UserError.from_domain(error)] if error else [])
    row = load(tables.Agent, snapshot["agent"])
    return AgentPayload(agent=Agent.from_model(row) if row else None)
