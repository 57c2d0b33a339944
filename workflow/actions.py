"""Action requests: the rules decide, per actor and stage, whether an action runs now, waits for an
approver, or is refused; every decision is recorded with the exact facts it saw so it can be replayed.

Internal actions (reply, tag, assign, transition, close, set_priority, note) are carried out inside
Bookbag when allowed or approved: ``executed`` at once (a ``note`` is kept in the audit log only).

External actions (:data:`EXTERNAL_ACTIONS`: refund, cancel_order, ...) are carried out by a partner system
(the store's backend, a Shopify app): allowed or approved, they become ``executing`` and the
``action_executing`` event carries everything the partner needs; the partner reports the outcome with
:func:`complete_action` (``executed`` or ``failed``). One left executing past the ruleset's
``execution_timeout`` flags its ticket for a human (:func:`time_out_executions`, run by the scheduler).
Denied and rejected requests never reach ``executing``.

Events (published after commit, each with the ticket's ``version``): ``action_decided``,
``action_approved``, ``action_rejected``, ``action_executing``, ``action_completed``, ``action_timed_out``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, cast, func, or_, true
from sqlalchemy.types import Text
from sqlmodel import Session, col, select

from policy import Decision
from storage.tables import ActionRequest, Message, Ticket
from workflow import audit
from workflow.errors import DomainError, ErrorCode, forbidden, invalid, not_found
from workflow.live.bus import TicketEvent, publish_after_commit
from workflow.queue import bump_queue_version
from workflow.rulesets.versions import ActiveRuleset, active_ruleset
from workflow.services import WorkflowServices
from workflow.stages import ACTION_TYPES, PRIORITIES
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.facts import stored_ticket_facts, with_action
from workflow.tickets.service import (
    clean_tags,
    decode_cursor,
    get_ticket,
    move_stage,
    new_version,
    set_assignee,
)
from workflow.tickets.sla import apply_sla

MAX_PARAMS_BYTES = 8192
MAX_EXTERNAL_REF = 200
MAX_OUTCOME_MESSAGE = 2000
DEFAULT_APPROVERS = ("admin", "agent")  # a handoff without named approvers goes to the humans
# Carried out by a partner system, not inside Bookbag: allowed or approved, they wait in ``executing``.
EXTERNAL_ACTIONS = frozenset(
    {"refund", "cancel_order", "change_shipping_address", "reship_order", "issue_discount"}
)
OUTCOMES = {"succeeded": "executed", "failed": "failed"}  # completeAction's outcome → the final status
# The events that change someone's approval inbox (``pendingActions``).
INBOX_EVENTS = frozenset({"action_decided", "action_approved", "action_rejected"})


@dataclass(frozen=True)
class ActionOutcome:
    request: ActionRequest
    decision: dict[str, Any]


def _scalar_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if isinstance(v, str | int | float | bool) and len(k) <= 60}


def _checked_params(type: str, amount: float | None, params: dict[str, Any] | None) -> dict[str, Any]:
    if type not in ACTION_TYPES:
        raise invalid(f"unknown action type {type!r}; one of: {', '.join(ACTION_TYPES)}", "type")
    if amount is not None and (not math.isfinite(amount) or amount < 0 or amount >= 1e12):
        raise invalid("amount must be a non-negative number", "amount")
    params = dict(params or {})
    if len(json.dumps(params, default=str)) > MAX_PARAMS_BYTES:
        raise invalid(f"params must be at most {MAX_PARAMS_BYTES} bytes of JSON", "params")
    return params


def _decide_on(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    ticket: Ticket,
    active: ActiveRuleset,
    type: str,
    amount: float | None,
    params: dict[str, Any],
) -> tuple[dict[str, Any], Decision]:
    """The facts the rules see for this action by this caller on this ticket now, and their decision."""
    action_facts = {**_scalar_params(params), "type": type, "actor": principal.actor.value, "amount": amount}
    facts = with_action(stored_ticket_facts(session, ticket, services.clock()), action_facts)
    return facts, services.policy.decide(active.ruleset, facts)


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
    params = _checked_params(type, amount, params)
    ticket = get_ticket(session, principal, ticket_id, for_update=True)
    active = active_ruleset(session, services, principal.merchant_id)
    now = services.clock()
    facts, decision = _decide_on(session, services, principal, ticket, active, type, amount, params)
    services.metrics.policy_decision(decision.effect, principal.actor.value, type)
    status = {"allow": "executed", "require_approval": "pending_approval", "deny": "denied"}[decision.effect]
    if status == "executed" and type in EXTERNAL_ACTIONS:
        status = "executing"
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
        handoff_reason=_handoff_reason(active, decision.handoff_rules),
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
    if decision.effect != "allow":
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
                "approvers": approvers,
                "version": ticket.version,
            },
            queue_changed=status == "executed",  # an internal action changed the ticket
        ),
    )
    if decision.effect == "allow":
        _carry_out(session, services, principal, ticket, request, active)
    return ActionOutcome(request=request, decision=decision_dict)


def _handoff_reason(active: ActiveRuleset, rule_ids: Sequence[str]) -> str | None:
    """The reasons the ruleset's handoff rules give, in the words of the ruleset (None: no handoff)."""
    wanted = set(rule_ids)
    reasons = [rule.reason or rule.id for rule in active.ruleset.handoff if rule.id in wanted]
    return "; ".join(reasons) or None


def _carry_out(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    ticket: Ticket,
    request: ActionRequest,
    active: ActiveRuleset,
) -> None:
    """An allowed or approved action: internal ones are applied now, external ones go to the partner."""
    if request.type in EXTERNAL_ACTIONS:
        _start_execution(session, services, principal, ticket, request, active)
    else:
        request.status = "executed"
        session.add(request)
        _execute(session, services, principal, ticket, request, active)


def _start_execution(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    ticket: Ticket,
    request: ActionRequest,
    active: ActiveRuleset,
) -> None:
    now = services.clock()
    request.status = "executing"
    request.executing_at = now
    request.execution_deadline_at = now + active.ruleset.execution_timeout
    session.add(request)
    new_version(session, ticket, now)
    audit.record(
        session,
        principal,
        kind="action.executing",
        ticket_id=ticket.id,
        after={
            "action_id": request.id,
            "type": request.type,
            "amount": request.amount,
            "params": request.params,
            "deadline": request.execution_deadline_at.isoformat(),
        },
        ruleset_version=request.ruleset_version,
    )
    publish_after_commit(
        session,
        services.bus,
        TicketEvent(
            kind="action_executing",
            merchant_id=ticket.merchant_id,
            ticket_id=ticket.id,
            data=execution_data(ticket, request),
            at=now,
            queue_changed=False,
        ),
    )


def execution_data(ticket: Ticket, request: ActionRequest) -> dict[str, Any]:
    """What a partner system needs to carry an external action out (the ``action_executing`` event's data):
    the action, the ticket at its version, the customer and the order."""
    deadline = request.execution_deadline_at
    return {
        "action_id": request.id,
        "type": request.type,
        "amount": request.amount,
        "params": dict(request.params),
        "status": request.status,
        "actor": request.actor,
        "requested_by_key_id": request.api_key_id,
        "approved_by_key_id": request.decided_by_key_id,
        "deadline": deadline.isoformat() if deadline else None,
        "ruleset_version": request.ruleset_version,
        "ticket_id": ticket.id,
        "version": ticket.version,
        "stage": ticket.stage,
        "subject": ticket.subject,
        "customer": {
            "email": ticket.customer_email,
            "name": ticket.customer_name,
            "vip": ticket.customer_vip,
        },
        "order": {
            "id": ticket.order_id,
            "total": ticket.order_total,
            "currency": ticket.order_currency,
            "financial_status": ticket.order_financial_status,
            "fulfillment_status": ticket.order_fulfillment_status,
        },
    }


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
        from workflow.tenancy.agents import get_agent

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
    new_version(session, ticket, now)
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
    publish_after_commit(
        session,
        services.bus,
        TicketEvent(
            kind="action_approved",
            merchant_id=ticket.merchant_id,
            ticket_id=ticket.id,
            data={
                "action_id": request.id,
                "type": request.type,
                "approvers": list(request.approvers),
                "version": ticket.version,
            },
        ),
    )
    _carry_out(session, services, principal, ticket, request, active)
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
            data={
                "action_id": request.id,
                "type": request.type,
                "approvers": list(request.approvers),
                "reason": request.reason,
            },
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


# -- execution by partner systems ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    request: ActionRequest
    changed: bool  # False: a repeat of the report already recorded (nothing written)


def complete_action(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    action_id: str,
    outcome: str,
    external_ref: str | None = None,
    message: str | None = None,
) -> Completion:
    """A partner reports how an executing external action ended: ``succeeded`` → ``executed``, ``failed`` →
    ``failed`` (the ticket is then flagged for a human). Repeating the same report changes nothing; a
    different report, or a request that is not executing, is a CONFLICT."""
    principal.require(Role.ADMIN, Role.PARTNER)
    if outcome not in OUTCOMES:
        raise invalid(f"outcome must be one of {', '.join(OUTCOMES)}", "outcome")
    if external_ref is not None and not 0 < len(external_ref.strip()) <= MAX_EXTERNAL_REF:
        raise invalid(f"externalRef must be 1-{MAX_EXTERNAL_REF} characters", "externalRef")
    if message is not None and len(message) > MAX_OUTCOME_MESSAGE:
        raise invalid(f"message must be at most {MAX_OUTCOME_MESSAGE} characters", "message")
    external_ref = external_ref.strip() if external_ref is not None else None
    status = OUTCOMES[outcome]
    request = get_action(session, principal, action_id, for_update=True)
    if request.completed_at is not None:
        if request.status == status and external_ref in (None, request.external_ref):
            return Completion(request=request, changed=False)
        raise DomainError(
            ErrorCode.CONFLICT,
            f"action request already completed as {request.status}"
            + (f" (externalRef {request.external_ref})" if request.external_ref else ""),
            "id",
        )
    if request.status != "executing":
        raise DomainError(ErrorCode.CONFLICT, f"action request is {request.status}, not executing", "id")
    ticket = get_ticket(session, principal, request.ticket_id, for_update=True)
    now = services.clock()
    request.status = status
    request.completed_at = now
    request.completed_by_key_id = principal.key_id
    request.external_ref = external_ref
    request.outcome_message = message
    session.add(request)
    if status == "failed" and not ticket.needs_human:
        ticket.needs_human = True  # the customer was promised something that did not happen
        bump_queue_version(session, ticket.merchant_id)
    new_version(session, ticket, now)
    audit.record(
        session,
        principal,
        kind="action.completed",
        ticket_id=ticket.id,
        after={
            "action_id": request.id,
            "type": request.type,
            "outcome": outcome,
            "status": status,
            "external_ref": external_ref,
            "message": message,
        },
        ruleset_version=request.ruleset_version,
    )
    publish_after_commit(
        session,
        services.bus,
        TicketEvent(
            kind="action_completed",
            merchant_id=ticket.merchant_id,
            ticket_id=ticket.id,
            data={
                "action_id": request.id,
                "type": request.type,
                "outcome": outcome,
                "status": status,
                "external_ref": external_ref,
                "message": message,
                "version": ticket.version,
                "needs_human": ticket.needs_human,
            },
            at=now,
            queue_changed=status == "failed",
        ),
    )
    return Completion(request=request, changed=True)


def executions_due_query(now: datetime, merchant_ids: Sequence[str] | None) -> Any:
    """Executing actions past their deadline and not yet timed out; the WHERE repeats the condition of the
    partial index ``ix_action_requests_execution_pending``, so only executing rows are read."""
    return select(ActionRequest).where(
        col(ActionRequest.merchant_id).in_(list(merchant_ids)) if merchant_ids is not None else true(),
        col(ActionRequest.status) == "executing",
        col(ActionRequest.timed_out_at).is_(None),
        col(ActionRequest.execution_deadline_at) < now,
    )


def time_out_executions(
    session: Session,
    services: WorkflowServices,
    now: datetime,
    *,
    locking: bool,
    limit: int,
    merchant_ids: Sequence[str] | None = None,
) -> list[ActionRequest]:
    """Flag the tickets of external actions left executing past their deadline (once per action, as
    ``system``): ``needs_human``, an ``action.timed_out`` audit entry and an ``action_timed_out`` event.
    The action stays executing: the partner may still report its outcome."""
    query = (
        executions_due_query(now, merchant_ids)
        .order_by(col(ActionRequest.execution_deadline_at), col(ActionRequest.id))
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    if locking:
        query = query.with_for_update(skip_locked=True)
    timed_out = []
    bumped: set[str] = set()
    for request in session.exec(query).all():
        system = Principal.system(request.merchant_id)
        ticket = get_ticket(session, system, request.ticket_id, for_update=True)
        request.timed_out_at = now
        session.add(request)
        ticket.needs_human = True
        new_version(session, ticket, now)
        deadline = request.execution_deadline_at
        audit.record(
            session,
            system,
            kind="action.timed_out",
            ticket_id=ticket.id,
            after={
                "action_id": request.id,
                "type": request.type,
                "deadline": deadline.isoformat() if deadline else None,
                "needs_human": True,
            },
            ruleset_version=request.ruleset_version,
        )
        publish_after_commit(
            session,
            services.bus,
            TicketEvent(
                kind="action_timed_out",
                merchant_id=ticket.merchant_id,
                ticket_id=ticket.id,
                data={
                    "action_id": request.id,
                    "type": request.type,
                    "deadline": deadline.isoformat() if deadline else None,
                    "executing_at": request.executing_at.isoformat() if request.executing_at else None,
                    "version": ticket.version,
                    "needs_human": True,
                },
                at=now,
            ),
        )
        if ticket.merchant_id not in bumped:
            bump_queue_version(session, ticket.merchant_id)
            bumped.add(ticket.merchant_id)
        timed_out.append(request)
    return timed_out


# -- the approval inbox and the dry run -----------------------------------------------------------------------


@dataclass(frozen=True)
class PendingFilter:
    ticket_id: str | None = None
    type: str | None = None
    actor: str | None = None


@dataclass(frozen=True)
class ActionPage:
    items: list[ActionRequest]
    end_cursor: str | None
    has_next_page: bool


def encode_action_cursor(request: ActionRequest) -> str:
    raw = json.dumps([request.created_at.isoformat(), request.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _pending_query(query: Any, principal: Principal, flt: PendingFilter) -> Any:
    # The approvers are a JSON list stored as text on both back-ends: match the quoted role.
    query = query.where(
        ActionRequest.merchant_id == principal.merchant_id,
        ActionRequest.status == "pending_approval",
        cast(col(ActionRequest.approvers), Text).contains(json.dumps(principal.role.value)),
    )
    if flt.ticket_id is not None:
        query = query.where(ActionRequest.ticket_id == flt.ticket_id)
    if flt.type is not None:
        query = query.where(ActionRequest.type == flt.type)
    if flt.actor is not None:
        query = query.where(ActionRequest.actor == flt.actor)
    return query


def pending_actions(
    session: Session,
    principal: Principal,
    flt: PendingFilter,
    *,
    first: int,
    after: str | None = None,
    max_page: int = 100,
) -> ActionPage:
    """The requests waiting for a decision that the caller's role may take, oldest first."""
    if not 1 <= first <= max_page:
        raise invalid(f"first must be between 1 and {max_page}", "first")
    query = _pending_query(select(ActionRequest), principal, flt)
    if after:
        created, action_id = decode_cursor(after)
        query = query.where(
            or_(
                col(ActionRequest.created_at) > created,
                and_(col(ActionRequest.created_at) == created, col(ActionRequest.id) > action_id),
            )
        )
    rows = list(
        session.exec(query.order_by(col(ActionRequest.created_at), col(ActionRequest.id)).limit(first + 1))
    )
    items = rows[:first]
    return ActionPage(
        items=items,
        end_cursor=encode_action_cursor(items[-1]) if items else None,
        has_next_page=len(rows) > first,
    )


def count_pending(session: Session, principal: Principal, flt: PendingFilter | None = None) -> int:
    query = _pending_query(select(func.count()).select_from(ActionRequest), principal, flt or PendingFilter())
    return int(session.exec(query).one())


def preview_action(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    ticket_id: str,
    type: str,
    amount: float | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What :func:`request_action` would decide for the caller now, without recording or doing anything
    (the agent workspace shows it before the request is sent)."""
    principal.require(Role.ADMIN, Role.AGENT, Role.AI, Role.PARTNER)
    params = _checked_params(type, amount, params)
    ticket = get_ticket(session, principal, ticket_id)
    active = active_ruleset(session, services, principal.merchant_id)
    _, decision = _decide_on(session, services, principal, ticket, active, type, amount, params)
    decided = decision.to_dict()
    if decided["effect"] == "require_approval" and not decided["approvers"]:
        decided["approvers"] = list(DEFAULT_APPROVERS)  # as request_action would record it
    return decided
