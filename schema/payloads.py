"""Mutation payloads: the object(s) changed plus `errors` for expected failures, and whether an
idempotency key replayed a stored response (`replayed`)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from schema.actions import ActionRequest, Decision
from schema.common import UserError
from schema.enums import Priority
from schema.tickets import Agent, Message, Team, Ticket


@strawberry.type(description="What the ingest pipeline's routing rules decided for a new ticket.")
class RoutingDecision:
    rule_id: str | None
    team: str | None
    strategy: str | None
    explanation: str | None
    assignee_id: strawberry.ID | None
    details: JSON = strawberry.field(
        description="The full routing decision as the policy engine reported it."
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoutingDecision:
        rule_id = data.get("rule_id")
        team = data.get("team")
        assignee = data.get("assignee_id")
        return cls(
            rule_id=str(rule_id) if rule_id is not None else None,
            team=str(team) if team is not None else None,
            strategy=str(data["strategy"]) if data.get("strategy") is not None else None,
            explanation=str(data["explanation"]) if data.get("explanation") is not None else None,
            assignee_id=strawberry.ID(str(assignee)) if assignee else None,
            details=JSON(data),
        )


@strawberry.type
class Classification:
    category: str
    category_confidence: float
    priority: Priority
    priority_confidence: float
    model_version: str
    raw_category: str
    raw_category_confidence: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Classification:
        return cls(
            category=str(data["category"]),
            category_confidence=float(data["category_confidence"]),
            priority=Priority(data["priority"]),
            priority_confidence=float(data["priority_confidence"]),
            model_version=str(data["model_version"]),
            raw_category=str(data.get("raw_category", "")),
            raw_category_confidence=float(data.get("raw_category_confidence", 0.0)),
        )


@strawberry.interface
class Payload:
    errors: list[UserError] = strawberry.field(default_factory=list)
    replayed: bool = strawberry.field(
        default=False, description="True when an idempotencyKey replayed the first response."
    )


@strawberry.type
class CreateTicketPayload(Payload):
    ticket: Ticket | None = None
    routing: RoutingDecision | None = None
    classification: Classification | None = None


@strawberry.type
class TicketPayload(Payload):
    ticket: Ticket | None = None


@strawberry.type
class MessagePayload(Payload):
    message: Message | None = None
    ticket: Ticket | None = None


@strawberry.type
class ActionPayload(Payload):
    action: ActionRequest | None = None


@strawberry.type
class RequestActionPayload(Payload):
    action: ActionRequest | None = None
    decision: Decision | None = None


@strawberry.type
class TeamPayload(Payload):
    team: Team | None = None


@strawberry.type
class AgentPayload(Payload):
    agent: Agent | None = None
