"""Who is acting: derived from the API key, never from input."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policy import Actor
from workflow.errors import forbidden


class Role(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    AI = "ai"
    PARTNER = "partner"
    VIEWER = "viewer"


_ACTOR_OF_ROLE = {
    Role.ADMIN: Actor.AGENT,
    Role.AGENT: Actor.AGENT,
    Role.AI: Actor.AI,
    Role.PARTNER: Actor.PARTNER,
}

TICKET_WORKERS = frozenset({Role.ADMIN, Role.AGENT, Role.AI})
TICKET_WRITERS = TICKET_WORKERS | {Role.PARTNER}


@dataclass(frozen=True)
class Principal:
    merchant_id: str
    role: Role
    key_id: str | None = None
    is_system: bool = False

    @property
    def actor(self) -> Actor:
        if self.is_system:
            return Actor.SYSTEM
        actor = _ACTOR_OF_ROLE.get(self.role)
        if actor is None:
            raise forbidden(f"role {self.role.value} cannot act on tickets")
        return actor

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise forbidden(f"this needs one of the roles: {allowed} (your key is {self.role.value})")

    @classmethod
    def system(cls, merchant_id: str) -> Principal:
        """The scheduler and the ingest pipeline act as ``system``."""
        return cls(merchant_id=merchant_id, role=Role.ADMIN, key_id=None, is_system=True)
