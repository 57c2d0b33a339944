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
    rule_id: str | None = strawberry.field(description="The routing rule that matched (null: none).")
    team: str | None = strawberry.field(description="The team it routed to.")
    strategy: str | None = strawberry.field(description="How an agent was chosen.")
    explanation: str | None = strawberry.field(description="Why, in words.")
    assignee_id: strawberry.ID | None = strawberry.field(description="The agent chosen.")
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


@strawberry.type(description="The classifier's prediction for a ticket, with confidences.")
class Classification:
    category: str = strawberry.field(
        description="The predicted category (after the merchant's confidence threshold)."
    )
    category_confidence: float = strawberry.field(
        description="The model's confidence in the category, 0 to 1."
    )
    priority: Priority = strawberry.field(description="The predicted priority.")
    priority_confidence: float = strawberry.field(
        description="The model's confidence in the priority, 0 to 1."
    )
    model_version: str = strawberry.field(description="The model's version.")
    raw_category: str = strawberry.field(description="The model's top category before the threshold.")
    raw_category_confidence: float = strawberry.field(
        description="The model's confidence in the raw category."
    )

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


@strawberry.interface(description="A mutation's answer: `errors` is empty when it succeeded.")
class Payload:
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description="Why the mutation was refused (empty on success); nothing was changed then.",
    )
    replayed: bool = strawberry.field(
        default=False, description="True when an idempotencyKey replayed the first response."
    )


@strawberry.type(
    description="The created ticket (or the errors), with the routing and classification that shaped it."
)
class CreateTicketPayload(Payload):
    ticket: Ticket | None = strawberry.field(default=None, description="The ticket (null on errors).")
    routing: RoutingDecision | None = strawberry.field(
        default=None, description="The routing rule that matched."
    )
    classification: Classification | None = strawberry.field(
        default=None, description="The classifier's prediction."
    )


@strawberry.type(description="The changed ticket (or the errors).")
class TicketPayload(Payload):
    ticket: Ticket | None = strawberry.field(default=None, description="The ticket (null on errors).")


@strawberry.type(description="The posted message (or the errors).")
class MessagePayload(Payload):
    message: Message | None = strawberry.field(default=None, description="The message (null on errors).")
    ticket: Ticket | None = strawberry.field(
        default=None, description="The ticket, as it is after the message."
    )


@strawberry.type(description="The action request after the change (or the errors).")
class ActionPayload(Payload):
    action: ActionRequest | None = strawberry.field(default=None, description="The request (null on errors).")


@strawberry.type(description="The action request and the rules' decision (or the errors).")
class RequestActionPayload(Payload):
    action: ActionRequest | None = strawberry.field(
        default=None, description="The request as recorded (null on errors)."
    )
    decision: Decision | None = strawberry.field(default=None, description="The rules' decision.")


@strawberry.type(description="The created team or the errors.")
class TeamPayload(Payload):
    team: Team | None = strawberry.field(default=None, description="The team (null on errors).")


@strawberry.type(description="The created agent or the errors.")
class AgentPayload(Payload):
    agent: Agent | None = strawberry.field(default=None, description="The agent (null on errors).")
