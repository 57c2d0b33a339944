"""Webhook endpoints, their delivery log and the admin mutations' inputs and payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from schema.common import UserError
from storage import tables


@strawberry.type(description="A partner system's URL that receives signed events (Standard Webhooks).")
class WebhookEndpoint:
    id: strawberry.ID = strawberry.field(description="The endpoint's id.")
    url: str = strawberry.field(description="Where events are POSTed.")
    description: str = strawberry.field(description="The admin's note about the endpoint.")
    event_types: list[str] = strawberry.field(description="The event types it receives.")
    enabled: bool = strawberry.field(description="Whether deliveries are made.")
    disabled_at: datetime | None = strawberry.field(
        description="When it was disabled (by an admin, or after failing too long)."
    )
    disabled_reason: str | None = strawberry.field(
        description="Why the endpoint is disabled: by an admin, or automatically after a day of failures."
    )
    failing_since: datetime | None = strawberry.field(
        description="The first failed attempt since the last successful one (null: not failing)."
    )
    secret_rotated_at: datetime | None = strawberry.field(
        description="When its signing secret was last rotated."
    )
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until then, deliveries are also signed with the secret before the last rotation."
    )
    created_at: datetime = strawberry.field(description="When it was registered.")
    updated_at: datetime = strawberry.field(description="When it was last changed.")

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
    attempt: int = strawberry.field(description="Which attempt this was, from 1.")
    started_at: datetime = strawberry.field(description="When it started.")
    ok: bool = strawberry.field(description="Whether the endpoint answered 2xx.")
    status_code: int | None = strawberry.field(description="The HTTP status received.")
    latency_ms: float | None = strawberry.field(
        description="How long the endpoint took to answer, in milliseconds."
    )
    error: str | None = strawberry.field(description="Why it failed.")
    response_excerpt: str | None = strawberry.field(description="The start of the answer (at most 4 KiB).")
    event_id: strawberry.ID = strawberry.field(description="The webhook-id header sent (the event's id).")

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
    id: strawberry.ID = strawberry.field(description="The delivery's id.")
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint it goes to.")
    event_id: strawberry.ID = strawberry.field(description="The `webhook-id` header of every attempt.")
    event_type: str = strawberry.field(description="The event's type.")
    ticket_id: strawberry.ID | None = strawberry.field(description="The ticket the event is about.")
    status: str = strawberry.field(description="pending, delivered or failed.")
    attempts: int = strawberry.field(description="Attempts made so far.")
    next_attempt_at: datetime | None = strawberry.field(description="When pending: the next attempt is due.")
    last_status_code: int | None = strawberry.field(description="The HTTP status of the last attempt.")
    last_error: str | None = strawberry.field(description="Why the last attempt failed.")
    created_at: datetime = strawberry.field(description="When the event was stored.")
    delivered_at: datetime | None = strawberry.field(description="When an attempt succeeded.")
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


@strawberry.input(description="A webhook endpoint to register.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(
        description="Where to POST events (private and local addresses are refused unless the server allows them)."
    )
    event_types: list[str] = strawberry.field(description="The event types to send.")
    description: str = strawberry.field(default="", description="A note for admins.")
    enabled: bool = strawberry.field(default=True, description="Whether to deliver from now.")


@strawberry.input(description="Changes to a webhook endpoint; absent fields stay as they are.")
class UpdateWebhookEndpointInput:
    id: strawberry.ID = strawberry.field(description="The endpoint.")
    url: str | None = strawberry.field(default=None, description="The new URL.")
    event_types: list[str] | None = strawberry.field(default=None, description="The new event types.")
    description: str | None = strawberry.field(default=None, description="The new note.")
    enabled: bool | None = strawberry.field(default=None, description="Enable or disable deliveries.")


@strawberry.type(description="The endpoint after the change (or the errors).")
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = strawberry.field(
        default=None, description="The endpoint (null on errors)."
    )
    secret: str | None = strawberry.field(
        default=None, description="The signing secret: in this response only (create and rotate)."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused (empty on success)."
    )


@strawberry.type(description="The delivery queued again (or the errors).")
class WebhookDeliveryPayload:
    delivery: WebhookDelivery | None = strawberry.field(
        default=None, description="The delivery (null on errors)."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused (empty on success)."
    )


@strawberry.type(description="The test attempt (or the errors).")
class WebhookPingPayload:
    attempt: WebhookAttempt | None = strawberry.field(default=None, description="The attempt made.")
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused (empty on success)."
    )
