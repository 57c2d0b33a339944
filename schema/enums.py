"""GraphQL enums. Values are the strings stored in the database and used by the rules."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="Workflow stage of a ticket.")
class Stage(Enum):
    NEW = "new"
    TRIAGED = "triaged"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CLOSED = "closed"


@strawberry.enum
class Priority(Enum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


@strawberry.enum
class Channel(Enum):
    EMAIL = "email"
    CHAT = "chat"
    CONTACT_FORM = "contact_form"
    PHONE = "phone"
    SOCIAL = "social"
    API = "api"


@strawberry.enum(
    description="What an API key may do: admin everything; agent/ai work tickets; partner creates, "
    "updates and transitions tickets; viewer reads."
)
class Role(Enum):
    ADMIN = "admin"
    AGENT = "agent"
    AI = "ai"
    PARTNER = "partner"
    VIEWER = "viewer"


@strawberry.enum(description="Who the rules see acting.")
class Actor(Enum):
    AI = "ai"
    AGENT = "agent"
    PARTNER = "partner"
    SYSTEM = "system"


@strawberry.enum
class MessageAuthor(Enum):
    CUSTOMER = "customer"
    AGENT = "agent"
    AI = "ai"
    SYSTEM = "system"


@strawberry.enum
class ActionType(Enum):
    REPLY = "reply"
    TAG = "tag"
    ASSIGN = "assign"
    TRANSITION = "transition"
    REFUND = "refund"
    CANCEL_ORDER = "cancel_order"
    CHANGE_SHIPPING_ADDRESS = "change_shipping_address"
    RESHIP_ORDER = "reship_order"
    ISSUE_DISCOUNT = "issue_discount"
    CLOSE = "close"
    NOTE = "note"
    SET_PRIORITY = "set_priority"


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


@strawberry.enum
class Effect(Enum):
    ALLOW = "allow"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"


@strawberry.enum(
    description="Stable codes of expected failures, in payload `errors` and in error `extensions.code`."
)
class ErrorCode(Enum):
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_RULESET = "INVALID_RULESET"
    RULESET_TESTS_FAILED = "RULESET_TESTS_FAILED"
    TRANSITION_NOT_ALLOWED = "TRANSITION_NOT_ALLOWED"
    POLICY_DENIED = "POLICY_DENIED"
    IDEMPOTENCY_MISMATCH = "IDEMPOTENCY_MISMATCH"
    RATE_LIMITED = "RATE_LIMITED"
    QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
    TIMEOUT = "TIMEOUT"
