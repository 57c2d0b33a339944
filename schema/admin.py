"""Administrative read models: the audit log, API keys, teams and agents, the classifier."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema.common import UserError, described
from schema.enums import Actor, Role
from schema.tickets import Info
from storage import tables


@strawberry.type(
    description="One append-only audit entry: who did what, before/after, and the facts a decision saw."
)
class AuditEvent:
    id: strawberry.ID = strawberry.field(description="The entry's id.")
    ticket_id: strawberry.ID | None = strawberry.field(
        description="The ticket concerned (null: an administrative act)."
    )
    kind: str = strawberry.field(description="What happened (e.g. ticket.transitioned, action.decided).")
    actor: Actor = strawberry.field(description="Who acted, as the rules see them.")
    api_key_id: strawberry.ID | None = strawberry.field(
        description="The API key used (null: Bookbag itself)."
    )
    before: JSON = strawberry.field(description="The state before the change.")
    after: JSON = strawberry.field(description="The state after the change.")
    ruleset_version: int | None = strawberry.field(description="The ruleset version in force.")
    model_version: str | None = strawberry.field(description="The classifier model version in force.")
    facts: JSON | None = strawberry.field(
        description="The facts the rules saw (removed after the retention period)."
    )
    decision: JSON | None = strawberry.field(
        description="The rules' decision (removed after the retention period)."
    )
    created_at: datetime = strawberry.field(description="When it happened.")

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

    @described("Who, readably: the API key's name, or Bookbag for the workflow itself (system).")
    async def actor_name(self, info: Info) -> str:
        """Who, readably: the API key's name, or `Bookbag` for the workflow itself (system)."""
        if self.api_key_id is None:
            return "Bookbag" if self.actor == "system" else self.actor
        name = await info.context.loaders.key_name.load(str(self.api_key_id))
        return name or self.actor


@strawberry.type(description="An API key (the secret itself is shown once, at creation).")
class ApiKey:
    id: strawberry.ID = strawberry.field(description="The key's id.")
    name: str = strawberry.field(description="The name given at creation.")
    role: Role = strawberry.field(description="What the key may do.")
    prefix: str = strawberry.field(description="The key's first characters, to recognise it.")
    created_at: datetime = strawberry.field(description="When it was created.")
    revoked_at: datetime | None = strawberry.field(description="When it was revoked (null: in use).")

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


@strawberry.type(description="The new key (its secret shown once) or the errors.")
class CreateApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description="The key (null on errors).")
    secret: str | None = strawberry.field(default=None, description="Shown once; only its hash is stored.")
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused (empty on success)."
    )


@strawberry.type(description="The revoked key or the errors.")
class RevokeApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description="The key (null on errors).")
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused (empty on success)."
    )


@strawberry.type(description="What forgetCustomer redacted: rows changed per kind (no row is deleted).")
class ForgetCustomerPayload:
    tickets: int = strawberry.field(default=0, description="Tickets deleted.")
    messages: int = strawberry.field(default=0, description="Messages deleted.")
    corrections: int = strawberry.field(default=0, description="Classification corrections deleted.")
    audit_events: int = strawberry.field(default=0, description="Audit entries deleted.")
    action_requests: int = strawberry.field(default=0, description="Action requests deleted.")
    idempotency_records: int = strawberry.field(default=0, description="Stored idempotent answers deleted.")
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused (empty on success)."
    )


@strawberry.type(description="The classifier model in use.")
class ClassifierInfo:
    version: str = strawberry.field(description="The model's version.")
    labels: list[str] = strawberry.field(description="The categories it predicts.")
    priorities: list[str] = strawberry.field(description="The priorities it predicts.")
    trained_at: str = strawberry.field(description="When it was trained (ISO 8601).")
    data_hash: str = strawberry.field(description="Hash of the training data.")
    metrics: JSON = strawberry.field(description="Its evaluation figures on held-out data.")
