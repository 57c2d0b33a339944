"""Action requests and the policy decision that governed them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from schema.common import PageInfo
from schema.enums import ActionStatus, ActionType, Actor, Effect
from schema.tickets import Info, Ticket
from storage import tables

BUILT_IN = frozenset(t.value for t in ActionType)


@strawberry.type(description="What the active ruleset decided for an action, and why.")
class Decision:
    effect: Effect
    matched_rules: list[str]
    deciding_rules: list[str]
    approvers: list[str]
    handoff: bool
    explanation: str
    handoff_rules: list[str] = strawberry.field(default_factory=list)
    trace: JSON | None = strawberry.field(default=None, description="Step-by-step evaluation (simulations).")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        return cls(
            effect=Effect(data.get("effect", "deny")),
            matched_rules=[str(r) for r in data.get("matched_rules", [])],
            deciding_rules=[str(r) for r in data.get("deciding_rules", [])],
            approvers=[str(r) for r in data.get("approvers", [])],
            handoff=bool(data.get("handoff", False)),
            explanation=str(data.get("explanation", "")),
            handoff_rules=[str(r) for r in data.get("handoff_rules", [])],
            trace=JSON(data["trace"]) if data.get("trace") is not None else None,
        )


@strawberry.type(
    description="An action asked for and what became of it. External actions (refund, cancel_order, "
    "change_shipping_address, reship_order, issue_discount, and the types the merchant's ruleset declares) "
    "go from allowed or approved to EXECUTING until a partner system reports the outcome with "
    "`completeAction` (EXECUTED or FAILED)."
)
class ActionRequest:
    id: strawberry.ID
    ticket_id: strawberry.ID
    type: ActionType | None = strawberry.field(
        description="The built-in type; null when the type is one the ruleset declared (`customType`)."
    )
    custom_type: str | None = strawberry.field(
        description="The external action type the merchant's ruleset declared (`actions: {external: "
        "[...]}`), e.g. `create_return_label`; null for a built-in type (`type`)."
    )
    amount: float | None
    params: JSON
    actor: Actor
    status: ActionStatus
    decision: Decision
    ruleset_version: int | None
    reason: str | None = strawberry.field(description="The approver's note when rejected.")
    decided_at: datetime | None
    created_at: datetime
    handoff_reason: str | None = strawberry.field(
        description="Why the ruleset handed this to a human (its handoff rules' reasons), if it did."
    )
    facts: JSON = strawberry.field(description="The exact facts the decision read.")
    requested_by_key_id: strawberry.ID | None
    decided_by_key_id: strawberry.ID | None
    executing_at: datetime | None = strawberry.field(description="When it was handed to the partner system.")
    execution_deadline_at: datetime | None = strawberry.field(
        description="After this, still executing, the ticket is flagged for a human (ruleset "
        "`defaults.execution_timeout`, 15 minutes unless set)."
    )
    timed_out_at: datetime | None
    completed_at: datetime | None
    completed_by_key_id: strawberry.ID | None
    external_ref: str | None = strawberry.field(description="The partner system's reference (a refund id…).")
    outcome_message: str | None

    @classmethod
    def from_model(cls, row: tables.ActionRequest) -> ActionRequest:
        return cls(
            id=strawberry.ID(row.id),
            ticket_id=strawberry.ID(row.ticket_id),
            type=ActionType(row.type) if row.type in BUILT_IN else None,
            custom_type=None if row.type in BUILT_IN else row.type,
            amount=row.amount,
            params=JSON(dict(row.params)),
            actor=Actor(row.actor),
            status=ActionStatus(row.status),
            decision=Decision(
                effect=Effect(row.effect),
                matched_rules=list(row.matched_rules),
                deciding_rules=list(row.deciding_rules),
                approvers=list(row.approvers),
                handoff=row.handoff,
                explanation=row.explanation,
            ),
            ruleset_version=row.ruleset_version,
            reason=row.reason,
            decided_at=row.decided_at,
            created_at=row.created_at,
            handoff_reason=row.handoff_reason,
            facts=JSON(dict(row.facts)),
            requested_by_key_id=_id(row.api_key_id),
            decided_by_key_id=_id(row.decided_by_key_id),
            executing_at=row.executing_at,
            execution_deadline_at=row.execution_deadline_at,
            timed_out_at=row.timed_out_at,
            completed_at=row.completed_at,
            completed_by_key_id=_id(row.completed_by_key_id),
            external_ref=row.external_ref,
            outcome_message=row.outcome_message,
        )

    @strawberry.field
    async def ticket(self, info: Info) -> Ticket | None:
        row = await info.context.loaders.ticket.load(self.ticket_id)
        return Ticket.from_model(row) if row else None

    @strawberry.field
    async def requested_by(self, info: Info) -> str | None:
        return await _key_name(info, self.requested_by_key_id)

    @strawberry.field
    async def decided_by(self, info: Info) -> str | None:
        return await _key_name(info, self.decided_by_key_id)

    @strawberry.field
    async def completed_by(self, info: Info) -> str | None:
        return await _key_name(info, self.completed_by_key_id)


def _id(value: str | None) -> strawberry.ID | None:
    return strawberry.ID(value) if value else None


async def _key_name(info: Info, key_id: str | None) -> str | None:
    if key_id is None:
        return None
    return await info.context.loaders.key_name.load(str(key_id))


@strawberry.type
class ActionRequestEdge:
    cursor: str
    node: ActionRequest


@strawberry.type(description="Requests waiting for a decision, oldest first.")
class ActionRequestConnection:
    edges: list[ActionRequestEdge]
    page_info: PageInfo
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        return await self.count_total()


@strawberry.type(
    description="A change to the caller's approval inbox: a request arrived, or one was decided. "
    "`pendingCount` is the inbox's size for the subscriber's role after the change."
)
class PendingActionsUpdate:
    kind: str = strawberry.field(
        description="action_decided (a new request), action_approved, action_rejected"
    )
    action_id: strawberry.ID
    ticket_id: strawberry.ID | None
    at: datetime
    status: str | None = strawberry.field(description="The request's status after the change.")

    @strawberry.field
    async def pending_count(self, info: Info) -> int:
        return await info.context.loaders.pending_count.load(info.context.auth.role.value)
