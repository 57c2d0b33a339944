"""Action requests and the policy decision that governed them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from schema.enums import ActionStatus, ActionType, Actor, Effect
from schema.tickets import Info, Ticket
from storage import tables


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


@strawberry.type
class ActionRequest:
    id: strawberry.ID
    ticket_id: strawberry.ID
    type: ActionType
    amount: float | None
    params: JSON
    actor: Actor
    status: ActionStatus
    decision: Decision
    ruleset_version: int | None
    reason: str | None
    decided_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: tables.ActionRequest) -> ActionRequest:
        return cls(
            id=strawberry.ID(row.id),
            ticket_id=strawberry.ID(row.ticket_id),
            type=ActionType(row.type),
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
        )

    @strawberry.field
    async def ticket(self, info: Info) -> Ticket | None:
        row = await info.context.loaders.ticket.load(self.ticket_id)
        return Ticket.from_model(row) if row else None
