"""GraphQL enums. Values are the strings stored in the database and used by the rules.

The domain's own enums (``policy``, ``workflow.stages``, ``workflow.tenancy.principal``, ``workflow.errors``) are
exposed as they are, so the API and the domain share one vocabulary; only API-only enums are defined here.
"""

from __future__ import annotations

from enum import Enum

import strawberry

from policy import Action as ActionType
from policy import Actor, Effect, Priority, Severity
from workflow.errors import ErrorCode
from workflow.stages import Channel, MessageAuthor, Stage
from workflow.tenancy.principal import Role

# strawberry.enum marks the class itself as a GraphQL enum (the same class object, now also a GraphQL type).
strawberry.enum(Stage, description="Workflow stage of a ticket.")
strawberry.enum(Priority, description="A ticket's priority; its SLA targets follow it.")
strawberry.enum(Channel, description="Where a ticket came from.")
strawberry.enum(
    Role,
    description="What an API key may do: admin everything; agent/ai work tickets; partner creates, "
    "updates and transitions tickets; viewer reads.",
)
strawberry.enum(Actor, description="Who the rules see acting.")
strawberry.enum(MessageAuthor, description="Who wrote a message.")
strawberry.enum(ActionType, name="ActionType", description="What an actor may ask to do to a ticket.")
strawberry.enum(Effect, description="A policy decision's outcome.")
strawberry.enum(Severity, description="Of a ruleset problem: an ERROR blocks publishing, a WARNING does not.")
strawberry.enum(
    ErrorCode,
    description="Stable codes of expected failures, in payload `errors` and in error `extensions.code`.",
)


@strawberry.enum(
    description="Where an action request is: PENDING_APPROVAL → (approved) EXECUTED for internal actions, "
    "EXECUTING → EXECUTED or FAILED for external ones (a partner system reports with `completeAction`); "
    "REJECTED and DENIED end there. APPROVED is only found on requests decided before executions were tracked."
)
class ActionStatus(Enum):
    EXECUTED = "executed"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    DENIED = "denied"
    EXECUTING = "executing"
    FAILED = "failed"


@strawberry.enum(description="How a partner system's execution of an external action ended.")
class ActionOutcome(Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


__all__ = [
    "ActionStatus",
    "ActionType",
    "Actor",
    "Channel",
    "Effect",
    "ErrorCode",
    "MessageAuthor",
    "Priority",
    "Role",
    "Severity",
    "Stage",
]
