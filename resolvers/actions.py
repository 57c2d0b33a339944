"""Action requests: requestAction (the rules decide), approveAction, rejectAction, completeAction (a partner
system reports an external action's outcome), pendingActions (the approval inbox), previewAction (the
decision, without doing anything)."""

from __future__ import annotations

import json
from typing import Any

import strawberry
from sqlmodel import Session

from resolvers import roles
from resolvers.runner import api_error, mutate, query
from resolvers.snapshots import dump, load
from schema.actions import ActionRequest, ActionRequestConnection, ActionRequestEdge, Decision
from schema.common import PageInfo, UserError
from schema.enums import ActionOutcome
from schema.inputs import PendingActionFilter, RequestActionInput
from schema.payloads import ActionPayload, RequestActionPayload
from schema.tickets import Info
from storage import tables
from workflow import actions as actions_service
from workflow.errors import DomainError, ErrorCode
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal


def _params(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DomainError(ErrorCode.INVALID_INPUT, "params must be a JSON object", "params")
    # Round-trip so the stored/hashed payload is plain JSON whatever the transport delivered.
    parsed: dict[str, Any] = json.loads(json.dumps(value))
    return parsed


async def request_action(
    info: Info, input: RequestActionInput, idempotency_key: str | None = None
) -> RequestActionPayload:
    """Evaluate the active ruleset for the caller's actor at the ticket's stage: allow executes and records,
    require_approval creates a pending request, deny records and refuses (POLICY_DENIED)."""
    try:
        params = _params(input.params)
    except DomainError as exc:
        return RequestActionPayload(errors=[UserError.from_domain(exc)])
    payload = {
        "ticket_id": str(input.ticket_id),
        "type": input.type.value,
        "amount": input.amount,
        "params": params,
    }

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        outcome = actions_service.request_action(
            session,
            services,
            principal,
            ticket_id=str(input.ticket_id),
            type=input.type.value,
            amount=input.amount,
            params=params,
        )
        return {"action": dump(outcome.request), "decision": outcome.decision}

    snapshot, error, replayed = await mutate(
        info.context,
        roles.ACTION_REQUESTERS,
        operation="requestAction",
        payload=payload,
        idempotency_key=idempotency_key,
        work=work,
    )
    if error is not None or snapshot is None:
        return RequestActionPayload(errors=[UserError.from_domain(error)] if error else [])
    row = load(tables.ActionRequest, snapshot["action"])
    decision = Decision.from_dict(snapshot["decision"])
    errors = []
    if row is not None and row.status == "denied":
        # The denial is recorded (it is in the audit log and the action list), and the caller is told so.
        errors.append(
            UserError.from_domain(
                DomainError(
                    ErrorCode.POLICY_DENIED, decision.explanation or "denied by the active ruleset", "type"
                )
            )
        )
    return RequestActionPayload(
        action=ActionRequest.from_model(row) if row else None,
        decision=decision,
        errors=errors,
        replayed=replayed,
    )


def _action_payload(
    snapshot: dict[str, Any] | None, error: DomainError | None, replayed: bool
) -> ActionPayload:
    if error is not None or snapshot is None:
        return ActionPayload(errors=[UserError.from_domain(error)] if error else [])
    row = load(tables.ActionRequest, snapshot["action"])
    return ActionPayload(action=ActionRequest.from_model(row) if row else None, replayed=replayed)


async def approve_action(info: Info, id: strawberry.ID, idempotency_key: str | None = None) -> ActionPayload:
    """Only a role the deciding rule names as approver may approve; an internal action then executes, an
    external one goes EXECUTING (handed to the partner system)."""

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        return {
            "action": dump(actions_service.approve_action(session, services, principal, action_id=str(id)))
        }

    return _action_payload(
        *await mutate(
            info.context,
            roles.ACTION_DECIDERS,
            operation="approveAction",
            payload={"id": str(id)},
            idempotency_key=idempotency_key,
            work=work,
        )
    )


async def reject_action(
    info: Info, id: strawberry.ID, reason: str, idempotency_key: str | None = None
) -> ActionPayload:
    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        row = actions_service.reject_action(session, services, principal, action_id=str(id), reason=reason)
        return {"action": dump(row)}

    return _action_payload(
        *await mutate(
            info.context,
            roles.ACTION_DECIDERS,
            operation="rejectAction",
            payload={"id": str(id), "reason": reason},
            idempotency_key=idempotency_key,
            work=work,
        )
    )


async def complete_action(
    info: Info,
    id: strawberry.ID,
    outcome: ActionOutcome,
    external_ref: str | None = None,
    message: str | None = None,
    idempotency_key: str | None = None,
) -> ActionPayload:
    """A partner system reports how an EXECUTING external action ended: SUCCEEDED → EXECUTED, FAILED →
    FAILED (the ticket is flagged for a human). The same report again answers as before (`replayed`); a
    different one, or an action that is not executing, is CONFLICT."""

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        done = actions_service.complete_action(
            session,
            services,
            principal,
            action_id=str(id),
            outcome=outcome.value,
            external_ref=external_ref,
            message=message,
        )
        return {"action": dump(done.request), "changed": done.changed}

    snapshot, error, replayed = await mutate(
        info.context,
        roles.ACTION_COMPLETERS,
        operation="completeAction",
        payload={"id": str(id), "outcome": outcome.value, "external_ref": external_ref, "message": message},
        idempotency_key=idempotency_key,
        work=work,
    )
    payload = _action_payload(snapshot, error, replayed)
    if snapshot is not None and not snapshot.get("changed", True):
        payload.replayed = True
    return payload


def _pending_filter(flt: PendingActionFilter | None) -> actions_service.PendingFilter:
    if flt is None:
        return actions_service.PendingFilter()
    return actions_service.PendingFilter(
        ticket_id=str(flt.ticket_id) if flt.ticket_id else None,
        type=flt.type.value if flt.type else None,
        actor=flt.actor.value if flt.actor else None,
    )


async def pending_actions(
    info: Info,
    filter: PendingActionFilter | None = None,
    first: int | None = None,
    after: str | None = None,
) -> ActionRequestConnection:
    """The approval inbox: requests waiting for a decision that the caller's role may take, oldest first."""
    ctx = info.context
    limits = ctx.runtime.limits
    size = limits.default_page_size if first is None else first
    flt = _pending_filter(filter)
    page = await query(
        ctx,
        roles.ACTION_DECIDERS,
        lambda s, p: actions_service.pending_actions(
            s, p, flt, first=size, after=after, max_page=limits.max_page_size
        ),
    )
    edges = [
        ActionRequestEdge(
            cursor=actions_service.encode_action_cursor(row), node=ActionRequest.from_model(row)
        )
        for row in page.items
    ]

    async def count_total() -> int:
        return await query(ctx, roles.ACTION_DECIDERS, lambda s, p: actions_service.count_pending(s, p, flt))

    return ActionRequestConnection(
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        count_total=count_total,
    )


async def preview_action(info: Info, input: RequestActionInput) -> Decision:
    """What `requestAction` would decide for the caller right now; records and changes nothing."""
    try:
        params = _params(input.params)
    except DomainError as exc:
        raise api_error(exc) from None
    services = info.context.runtime.services
    decision = await query(
        info.context,
        roles.ACTION_REQUESTERS,
        lambda s, p: actions_service.preview_action(
            s,
            services,
            p,
            ticket_id=str(input.ticket_id),
            type=input.type.value,
            amount=input.amount,
            params=params,
        ),
    )
    return Decision.from_dict(decision)
