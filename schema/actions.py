"""Action requests and the policy decision that governed them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from schema.common import PageInfo, described
from schema.enums import ActionStatus, ActionType, Actor, Effect
from schema.tickets import Info, Ticket
from storage import tables

BUILT_IN = frozenset(t.value for t in ActionType)


@strawberry.type(description="What the active ruleset decided for an action, and why.")
class Decision:
    effect: Effect = strawberry.field(description="allow, deny or require_approval.")
    matched_rules: list[str] = strawberry.field(
        description="Ids of every permission rule whose conditions matched."
    )
    deciding_rules: list[str] = strawberry.field(description="Ids of the rules that produced the effect.")
    approvers: list[str] = strawberry.field(description="Roles that may approve, when approval is required.")
    handoff: bool = strawberry.field(description="Whether a handoff rule sends the ticket to a human.")
    explanation: str = strawberry.field(description="Why, in words.")
    handoff_rules: list[str] = strawberry.field(
        default_factory=list, description="Ids of the handoff rules that matched."
    )
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
    id: strawberry.ID = strawberry.field(description="The action request's id.")
    ticket_id: strawberry.ID = strawberry.field(description="The ticket the action is for.")
    type: ActionType | None = strawberry.field(
        description="What was asked for: the built-in type; null when the type is one the ruleset declared "
        "(`customType`)."
    )
    custom_type: str | None = strawberry.field(
        description="The external action type the merchant's ruleset declared (`actions: {external: "
        "[...]}`), e.g. `create_return_label`; null for a built-in type (`type`)."
    )
    amount: float | None = strawberry.field(
        description="The amount for money actions (refund, discount), in the order's currency."
    )
    params: JSON = strawberry.field(description="The action's other parameters, as the caller sent them.")
    actor: Actor = strawberry.field(description="Who asked, as the rules saw them.")
    status: ActionStatus = strawberry.field(description="Where the request stands.")
    decision: Decision = strawberry.field(
        description="The rules' decision on the request, with its explanation."
    )
    ruleset_version: int | None = strawberry.field(description="The ruleset version that decided.")
    reason: str | None = strawberry.field(description="The approver's note when rejected.")
    decided_at: datetime | None = strawberry.field(
        description="When an approver approved or rejected it (null: not decided by a person)."
    )
    created_at: datetime = strawberry.field(description="When it was requested.")
    handoff_reason: str | None = strawberry.field(
        description="Why the ruleset handed this to a human (its handoff rules' reasons), if it did."
    )
    facts: JSON = strawberry.field(description="The exact facts the decision read.")
    requested_by_key_id: strawberry.ID | None = strawberry.field(description="The API key that asked.")
    decided_by_key_id: strawberry.ID | None = strawberry.field(
        description="The API key that approved or rejected it."
    )
    executing_at: datetime | None = strawberry.field(description="When it was handed to the partner system.")
    execution_deadline_at: datetime | None = strawberry.field(
        description="After this, still executing, the ticket is flagged for a human (ruleset "
        "`defaults.execution_timeout`, 15 minutes unless set)."
    )
    timed_out_at: datetime | None = strawberry.field(
        description="When the scheduler marked an external execution as timed out."
    )
    completed_at: datetime | None = strawberry.field(
        description="When the partner system reported the external action done (or failed)."
    )
    completed_by_key_id: strawberry.ID | None = strawberry.field(
        description="The API key that reported completion."
    )
    external_ref: str | None = strawberry.field(description="The partner system's reference (a refund id…).")
    outcome_message: str | None = strawberry.field(
        description="The partner system's message with the outcome."
    )

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

    @described("The ticket the action is for.")
    async def ticket(self, info: Info) -> Ticket | None:
        row = await info.context.loaders.ticket.load(self.ticket_id)
        return Ticket.from_model(row) if row else None

    @described("The name of the API key that asked.")
    async def requested_by(self, info: Info) -> str | None:
        return await _key_name(info, self.requested_by_key_id)

    @described("The name of the API key that decided.")
    async def decided_by(self, info: Info) -> str | None:
        return await _key_name(info, self.decided_by_key_id)

    @described("The name of the API key that reported completion.")
    async def completed_by(self, info: Info) -> str | None:
        return await _key_name(info, self.completed_by_key_id)


def _id(value: str | None) -> strawberry.ID | None:
    return strawberry.ID(value) if value else None


async def _key_name(info: Info, key_id: str | None) -> str | None:
    if key_id is None:
        return None
    return await info.context.loaders.key_name.load(str(key_id))


@strawberry.type(description="One action request of a page, with its cursor.")
class ActionRequestEdge:
    cursor: str = strawberry.field(description="Pass as `after` to read the requests after this one.")
    node: ActionRequest = strawberry.field(description="The action request.")


@strawberry.type(description="Requests waiting for a decision, oldest first.")
class ActionRequestConnection:
    edges: list[ActionRequestEdge] = strawberry.field(description="The page's action requests.")
    page_info: PageInfo = strawberry.field(description="Where the page is in the list.")
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]

    @described("How many match, over all pages.")
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
    action_id: strawberry.ID = strawberry.field(description="The action request that changed.")
    ticket_id: strawberry.ID | None = strawberry.field(description="Its ticket.")
    at: datetime = strawberry.field(description="When.")
    status: str | None = strawberry.field(description="The request's status after the change.")

    @described("Requests now waiting for the caller's role.")
    async def pending_count(self, info: Info) -> int:
        return await info.context.loaders.pending_count.load(info.context.auth.role.value)
