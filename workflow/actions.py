"""Action requests: the rules decide, per actor and stage, whether an action runs now, waits for an
approver, or is refused; every decision is recorded with the exact facts it saw so it can be replayed.

Bookbag does not call the store itself: an executed ``refund`` (say) is recorded and announced as an event
for the partner system that carries it out. Actions with an effect inside Bookbag (reply, tag, assign,
transition, close, set_priority) are applied to the ticket; a ``note`` is kept in the audit log only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from storage.tables import ActionRequest, Message, Ticket
from workflow import audit
from workflow.errors import DomainError, ErrorCode, forbidden, invalid, not_found
from workflow.events import TicketEvent, publish_after_commit
from workflow.facts import stored_ticket_facts, with_action
from workflow.principal import Principal, Role
from workflow.queue import bump_queue_version
from workflow.rulesets import ActiveRuleset, active_ruleset
from workflow.services import WorkflowServices
from workflow.sla import apply_sla
from workflow.stages import ACTION_TYPES, PRIORITIES
from workflow.tickets import clean_tags, get_ticket, move_stage, set_assignee

MAX_PARAMS_BYTES = 8192
DEFAULT_APPROVERS = ("admin", "agent")  # a handoff without named approvers goes to the humans


@dataclass(frozen=True)
class ActionOutcome:
    request: ActionRequest
    decision: dict[str, Any]


def _scalar_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if isinstance(v, str | int | float | bool) and len(k) <= 60}


def request_action(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    ticket_id: str,
    type: str,
    amount: float | None = None,
    params: dict[str, Any] | None = None,
) -> ActionOutcome:
    principal.require(Role.ADMIN, Role.AGENT, Role.AI, Role.PARTNER)
    if type not in ACTION_TYPES:
        raise invalid(f"unknown action type {type!r}; one of: {', '.join(ACTION_TYPES)}", "type")
    if amount is not None and (not math.isfinite(amount) or amount < 0 or amount >= 1e12):
        raise invalid("amount must be a non-negative number", "amount")
    params = dict(params or {})
    if len(json.dumps(params, default=str)) > MAX_PARAMS_BYTES:
        raise invalid(f"params must be at most {MAX_PARAMS_BYTES} bytes of JSON", "params")
    ticket = get_ticket(session, principal, ticket_id, for_update=True)
    active = active_ruleset(session, services, principal.merchant_id)
    now = services.clock()
    action_facts = {**_scalar_params(params), "type": type, "actor": principal.actor.value, "amount": amount}
    facts = with_action(stored_ticket_facts(session, ticket, now), action_facts)
    decision = services.policy.decide(active.ruleset, facts)
    status = {"allow": "executed", "require_approval": "pending_approval", "deny": "denied"}[decision.effect]
    approvers = list(decision.approvers) or (list(DEFAULT_APPROVERS) if status == "pending_approval" else [])
    request = ActionRequest(
        merchant_id=principal.merchant_id,
        ticket_id=ticket.id,
        type=type,
        amount=amount,
        params=params,
        actor=principal.actor.value,
        api_key_id=principal.key_id,
        status=status,
        effect=decision.effect,
        matched_rules=list(decision.matched_rules),
        deciding_rules=list(decision.deciding_rules),
        approvers=approvers,
        handoff=decision.handoff,
        explanation=decision.explanation,
        ruleset_version=active.version,
        facts=facts,
        created_at=now,
    )
    session.add(request)
    session.flush()
    decision_dict = decision.to_dict()
    audit.record(
        session,
        principal,
        kind="action.decided",
        ticket_id=ticket.id,
        after={"action_id": request.id, "type": type, "amount": amount, "status": status},
        ruleset_version=active.version,
        model_version=ticket.model_version,
        facts=facts,
        decision=decision_dict,
    )
    if decision.handoff and not ticket.needs_human:
        ticket.needs_human = True
        session.add(ticket)
    if status == "executed":
        _execute(session, services, principal, ticket, request, active)
    else:
        bump_queue_version(session, ticket.merchant_id)
    publish_after_commit(
        session,
        services.bus,
        TicketEvent(
            kind="action_decided",
            merchant_id=ticket.merchant_id,
            ticket_id=ticket.id,
            data={
                "action_id": request.id,
                "type": type,
                "status": status,
                "effect": decision.effect,
                "version": ticket.version,
            },
            queue_changed=status == "executed",
        ),
    )
    return ActionOutcome(request=request, decision=decision_dict)


def _execute(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    ticket: Ticket,
    request: ActionRequest,
    active: ActiveRuleset,
) -> None:
    params = request.params
    now = services.clock()
    transitions = active.ruleset.transitions
    if request.type == "reply":
        body = str(params.get("body", "")).strip()
        if not body:
            raise invalid("a reply needs params.body", "params")
        author = "ai" if request.actor == "ai" else "agent"
        session.add(
            Message(
                merchant_id=ticket.merchant_id,
                ticket_id=ticket.id,
                author_type=author,
                author_key_id=request.api_key_id,
                body=body,
                created_at=now,
            )
        )
        if ticket.first_responded_at is None:
            ticket.first_responded_at = now
    elif request.type == "tag":
        tags = params.get("tags")
        if not isinstance(tags, list):
            raise invalid("a tag action needs params.tags (a list)", "params")
        ticket.tags = clean_tags([*ticket.tags, *map(str, tags)])
    elif request.type == "assign":
        from workflow.agents import get_agent

        agent_id = params.get("agentId") or params.get("agent_id")
        if not isinstance(agent_id, str):
            raise invalid("an assign action needs params.agentId", "params")
        set_assignee(session, ticket, get_agent(session, ticket.merchant_id, agent_id).id)
    elif request.type == "set_priority":
        priority = params.get("priority")
        if priority not in PRIORITIES:
            raise invalid(
                f"a set_priority action needs params.priority, one of {', '.join(PRIORITIES)}", "params"
            )
        ticket.priority = str(priority)
        apply_sla(ticket, active.ruleset)
    elif request.type in ("transition", "close"):
        to = "closed" if request.type == "close" else params.get("to")
        if not isinstance(to, str):
            raise invalid("a transition action needs params.to", "params")
        move_stage(
            session,
            services,
            principal,
            ticket,
            to,
            transitions=transitions,
            ruleset_version=active.version,
            reason=f"action {request.id}",
        )
    ticket.version += 1
    ticket.updated_at = now
    session.add(ticket)
    bump_queue_version(session, ticket.merchant_id)
    audit.record(
        session,
        principal,
        kind="action.executed",
        ticket_id=ticket.id,
        after={
            "action_id": request.id,
            "type": request.type,
            "amount": request.amount,
            "params": request.params,
        },
        ruleset_version=request.ruleset_version,
    )


def get_action(
    session: Session, principal: Principal, action_id: str, *, for_update: bool = False
) -> ActionRequest:
    query = select(ActionRequest).where(
        ActionRequest.id == action_id, ActionRequest.merchant_id == principal.merchant_id
    )
    if for_update:
        query = query.with_for_update()
    request = session.exec(query).first()
    if request is None:
        raise not_found("action request", "id")
    return request


def _decide(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    action_id: str,
    *,
    status: str,
    reason: str | None = None,
) -> ActionRequest:
    """Approve or reject a pending request: only a named approver role may, and the decision is audited."""
    request = get_action(session, principal, action_id, for_update=True)
    if request.status != "pending_approval":
        raise DomainError(
            ErrorCode.CONFLICT, f"action request is {request.status}, not pending approval", "id"
        )
    if principal.role.value not in request.approvers:
        raise forbidden(f"only {', '.join(request.approvers)} may decide this request")
    request.status = status
    request.reason = reason
    request.decided_by_key_id = principal.key_id
    request.decided_at = services.clock()
    session.add(request)
    after: dict[str, Any] = {"action_id": request.id, "status": status}
    if reason is not None:
        after["reason"] = reason
    audit.record(
        session,
        principal,
        kind=f"action.{status}",
        ticket_id=request.ticket_id,
        after=after,
        ruleset_version=request.ruleset_version,
    )
    return request


def approve_action(
    session: Session, services: WorkflowServices, principal: Principal, *, action_id: str
) -> ActionRequest:
    request = _decide(session, services, principal, action_id, status="approved")
    ticket = get_ticket(session, principal, request.ticket_id, for_update=True)
    active = active_ruleset(session, services, principal.merchant_id)
    _execute(session, services, principal, ticket, request, active)
    publish_after_commit(
        session,
        services.bus,
        TicketEvent(
            kind="action_approved",
            merchant_id=ticket.merchant_id,
            ticket_id=ticket.id,
            data={"action_id": request.id, "type": request.type, "version": ticket.version},
        ),
    )
    return request


def reject_action(
    session: Session, services: WorkflowServices, principal: Principal, *, action_id: str, reason: str
) -> ActionRequest:
    if not reason.strip() or len(reason) > 2000:
        raise invalid("a rejection needs a reason of 1-2000 characters", "reason")
    request = _decide(session, services, principal, action_id, status="rejected", reason=reason.strip())
    # A rejection leaves the ticket and the queue as they were: no queue version bump, no snapshot refresh.
    publish_after_commit(
        session,
        services.bus,
        TicketEvent(
            kind="action_rejected",
            merchant_id=principal.merchant_id,
            ticket_id=request.ticket_id,
            data={"action_id": request.id, "type": request.type},
            queue_changed=False,
        ),
    )
    return request


def list_actions(
    session: Session,
    principal: Principal,
    *,
    ticket_id: str | None = None,
    status: str | None = None,
    first: int = 100,
) -> list[ActionRequest]:
    query = select(ActionRequest).where(ActionRequest.merchant_id == principal.merchant_id)
    if ticket_id is not None:
        query = query.where(ActionRequest.ticket_id == ticket_id)
    if status is not None:
        query = query.where(ActionRequest.status == status)
    return list(
        session.exec(query.order_by(col(ActionRequest.created_at).desc()).limit(max(1, min(first, 500))))
    )
