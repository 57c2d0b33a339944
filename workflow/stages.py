"""Workflow stages and the built-in transition graph (used until a merchant's ruleset supplies its own)."""

from __future__ import annotations

from enum import StrEnum

import policy


class Stage(StrEnum):
    """Workflow stage of a ticket (the built-in graph below; a ruleset may restrict its edges)."""

    NEW = "new"
    TRIAGED = "triaged"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Channel(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    CONTACT_FORM = "contact_form"
    PHONE = "phone"
    SOCIAL = "social"
    API = "api"


class MessageAuthor(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    AI = "ai"
    SYSTEM = "system"


STAGES: tuple[str, ...] = tuple(s.value for s in Stage)
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
CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel)
MESSAGE_AUTHORS: tuple[str, ...] = tuple(a.value for a in MessageAuthor)
