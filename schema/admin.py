"""Administrative read models: the audit log, API keys, teams and agents, the classifier."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema.common import UserError
from schema.enums import Actor, Role
from schema.tickets import Info
from storage import tables


@strawberry.type(
    description="One append-only audit entry: who did what, before/after, and the facts a decision saw."
)
class AuditEvent:
    id: strawberry.ID
    ticket_id: strawberry.ID | None
    kind: str
    actor: Actor
    api_key_id: strawberry.ID | None
    before: JSON
    after: JSON
    ruleset_version: int | None
    model_version: str | None
    facts: JSON | None
    decision: JSON | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: tables.AuditEvent) -> AuditEvent:
        return cls(
            id=strawberry.ID(str(row.id)),
            ticket_id=strawberry.ID(row.ticket_id) if row.ticket_id else None,
            kind=row.kind,
            actor=Actor(row.actor),
            api_key_id=strawberry.ID(row.api_key_id) if row.api_key_id else None,
            before=JSON(row.before),
            after=JSON(row.after),
            ruleset_version=row.ruleset_version,
            model_version=row.model_version,
            facts=JSON(row.facts) if row.facts is not None else None,
            decision=JSON(row.decision) if row.decision is not None else None,
            created_at=row.created_at,
        )

    @strawberry.field
    async def actor_name(self, info: Info) -> str:
        """Who, readably: the API key's name, or `Bookbag` for the workflow itself (system)."""
        if self.api_key_id is None:
            return "Bookbag" if self.actor == "system" else self.actor
        name = await info.context.loaders.key_name.load(str(self.api_key_id))
        return name or self.actor


@strawberry.type
class ApiKey:
    id: strawberry.ID
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_model(cls, row: tables.ApiKey) -> ApiKey:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            role=Role(row.role),
            prefix=row.prefix,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKey | None = None
    secret: str | None = strawberry.field(default=None, description="Shown once; only its hash is stored.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RevokeApiKeyPayload:
    api_key: ApiKey | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="What forgetCustomer redacted: rows changed per kind (no row is deleted).")
class ForgetCustomerPayload:
    tickets: int = 0
    messages: int = 0
    corrections: int = 0
    audit_events: int = 0
    action_requests: int = 0
    idempotency_records: int = 0
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ClassifierInfo:
    version: str
    labels: list[str]
    priorities: list[str]
    trained_at: str
    data_hash: str
    metrics: JSON
