"""Action requests: requestAction (the rules decide), approveAction, rejectAction."""

from __future__ import annotations

import json
from typing import Any

import strawberry
from sqlmodel import Session

from resolvers import roles
from resolvers.runner import mutate
from resolvers.snapshots import dump, load
from schema.actions import ActionRequest, Decision
from schema.common import UserError
from schema.inputs import RequestActionInput
from schema.payloads import ActionPayload, RequestActionPayload
from schema.tickets import Info
from storage import tables
from workflow import actions as actions_service
from workflow.errors import DomainError, ErrorCode
from workflow.principal import Principal
from workflow.services import WorkflowServices


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
    """Only a role the deciding rule names as approver may approve; the action then executes."""

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
