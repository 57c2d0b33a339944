"""Workflow stages and the built-in transition graph (used until a merchant's ruleset supplies its own)."""

from __future__ import annotations

STAGES: tuple[str, ...] = (
    "new",
    "triaged",
    "assigned",
    "in_progress",
    "waiting_on_customer",
    "escalated",
    "resolved",
    "closed",
)
CLOSED_STAGES = frozenset({"resolved", "closed"})
OPEN_STAGES: tuple[str, ...] = tuple(s for s in STAGES if s not in CLOSED_STAGES)

DEFAULT_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("triaged",),
    "triaged": ("assigned", "escalated", "resolved", "closed"),
    "assigned": ("in_progress", "escalated", "triaged", "waiting_on_customer", "resolved"),
    "in_progress": ("waiting_on_customer", "escalated", "resolved", "assigned"),
    "waiting_on_customer": ("in_progress", "resolved", "closed"),
    "escalated": ("assigned", "in_progress", "resolved"),
    "resolved": ("closed", "in_progress"),
    "closed": (),
}

PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal", "low")
CHANNELS: tuple[str, ...] = ("email", "chat", "contact_form", "phone", "social", "api")
ACTION_TYPES: tuple[str, ...] = (
    "reply",
    "tag",
    "assign",
    "transition",
    "refund",
    "cancel_order",
    "change_shipping_address",
    "reship_order",
    "issue_discount",
    "close",
)
MESSAGE_AUTHORS: tuple[str, ...] = ("customer", "agent", "ai", "system")
