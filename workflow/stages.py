"""Workflow stages and the built-in transition graph (used until a merchant's ruleset supplies its own)."""

from __future__ import annotations

import policy

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

# The rules speak about these; policy/ owns the lists so a ruleset and the workflow never disagree.
PRIORITIES: tuple[str, ...] = policy.PRIORITIES
ACTION_TYPES: tuple[str, ...] = policy.ACTIONS
CHANNELS: tuple[str, ...] = ("email", "chat", "contact_form", "phone", "social", "api")
MESSAGE_AUTHORS: tuple[str, ...] = ("customer", "agent", "ai", "system")
