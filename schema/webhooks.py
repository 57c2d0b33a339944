"""Webhook endpoints, their delivery log and the admin mutations' inputs and payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from schema.common import UserError
from storage import tables


@strawberry.type(description="A partner system's URL that receives signed events (Standard Webhooks).")
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None = strawberry.field(
        description="Why the endpoint is disabled: by an admin, or automatically after a day of failures."
    )
    failing_since: datetime | None = strawberry.field(
        description="The first failed attempt since the last successful one (null: not failing)."
    )
    secret_rotated_at: datetime | None
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until then, deliveries are also signed with the secret before the last rotation."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, row: tables.WebhookEndpoint) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(row.id),
            url=row.url,
            description=row.description,
            event_types=list(row.event_types),
            enabled=row.enabled,
            disabled_at=row.disabled_at,
            disabled_reason=row.disabled_reason,
            failing_since=row.failing_since,
            secret_rotated_at=row.secret_rotated_at,
            previous_secret_expires_at=row.previous_secret_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="One HTTP attempt of a delivery (or of a test ping).")
class WebhookAttempt:
    attempt: int
    started_at: datetime
    ok: bool
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None = strawberry.field(description="The start of the answer (at most 4 KiB).")
    event_id: strawberry.ID

    @classmethod
    def from_model(cls, row: tables.WebhookAttempt) -> WebhookAttempt:
        return cls(
            attempt=row.attempt,
            started_at=row.started_at,
            ok=row.ok,
            status_code=row.status_code,
            latency_ms=row.latency_ms,
            error=row.error,
            response_excerpt=row.response_excerpt,
            event_id=strawberry.ID(row.event_id),
        )


@strawberry.type(
    description="One event to one endpoint: pending (with its next attempt), delivered or failed."
)
class WebhookDelivery:
    id: strawberry.ID
    endpoint_id: strawberry.ID
    event_id: strawberry.ID = strawberry.field(description="The `webhook-id` header of every attempt.")
    event_type: str
    ticket_id: strawberry.ID | None
    status: str
    attempts: int
    next_attempt_at: datetime | None = strawberry.field(description="When pending: the next attempt is due.")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: str = strawberry.field(description="The JSON body as signed and sent.")
    attempt_log: list[WebhookAttempt] = strawberry.field(description="The latest attempts, newest first.")

    @classmethod
    def from_view(cls, view: Any) -> WebhookDelivery:
        row: tables.WebhookDelivery = view.delivery
        return cls(
            id=strawberry.ID(row.id),
            endpoint_id=strawberry.ID(row.endpoint_id),
            event_id=strawberry.ID(row.event_id),
            event_type=view.event_type,
            ticket_id=strawberry.ID(view.ticket_id) if view.ticket_id else None,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            payload=view.payload,
            attempt_log=[WebhookAttempt.from_model(a) for a in view.attempts],
        )


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    event_types: list[str]
    description: str = ""
    enabled: bool = True


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = None
    event_types: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = None
    secret: str | None = strawberry.field(
        default=None, description="The signing secret: in this response only (create and rotate)."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class WebhookDeliveryPayload:
    delivery: WebhookDelivery | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class WebhookPingPayload:
    attempt: WebhookAttempt | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
