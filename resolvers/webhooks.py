"""Webhook endpoints for admins: list, register, change, rotate the secret, the delivery log, redeliver,
test ping. Each resolver parses, calls ``workflow.webhooks.endpoints`` and maps the result."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlmodel import Session

from resolvers import roles
from resolvers.runner import mutate, query, read_as
from resolvers.snapshots import dump, load
from schema.common import UserError
from schema.tickets import Info
from schema.webhooks import (
    CreateWebhookEndpointInput,
    UpdateWebhookEndpointInput,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryPayload,
    WebhookEndpoint,
    WebhookEndpointPayload,
    WebhookPingPayload,
)
from storage import tables
from workflow.errors import DomainError
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal
from workflow.webhooks import endpoints as service
from workflow.webhooks.dispatcher import endpoint_secrets
from workflow.webhooks.outbox import EVENT_TYPES


def webhook_event_types(info: Info) -> list[str]:
    info.context.auth  # noqa: B018 - any authenticated role may read it
    return list(EVENT_TYPES)


async def webhook_endpoints(info: Info) -> list[WebhookEndpoint]:
    rows = await query(info.context, roles.ADMINS, service.list_endpoints)
    return [WebhookEndpoint.from_model(r) for r in rows]


async def webhook_deliveries(
    info: Info, endpoint_id: strawberry.ID | None = None, status: str | None = None, first: int = 50
) -> list[WebhookDelivery]:
    """The delivery log, newest first (`first` at most 200), each with its latest attempts."""
    views = await query(
        info.context,
        roles.ADMINS,
        lambda s, p: service.list_deliveries(
            s, p, endpoint_id=str(endpoint_id) if endpoint_id else None, status=status, first=first
        ),
    )
    return [WebhookDelivery.from_view(v) for v in views]


def _endpoint_payload(snapshot: dict[str, Any] | None, error: DomainError | None) -> WebhookEndpointPayload:
    if error is not None or snapshot is None:
        return WebhookEndpointPayload(errors=[UserError.from_domain(error)] if error else [])
    row = load(tables.WebhookEndpoint, snapshot["endpoint"])
    return WebhookEndpointPayload(
        endpoint=WebhookEndpoint.from_model(row) if row else None, secret=snapshot.get("secret")
    )


async def create_webhook_endpoint(info: Info, input: CreateWebhookEndpointInput) -> WebhookEndpointPayload:
    """Register an endpoint; the signing secret is in this response only."""
    allow_private = info.context.runtime.webhook_pings.allow_private

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        issued = service.create_endpoint(
            session,
            services,
            principal,
            url=input.url,
            event_types=input.event_types,
            description=input.description,
            enabled=input.enabled,
            allow_private=allow_private,
        )
        return {"endpoint": dump(issued.endpoint), "secret": issued.secret}

    snapshot, error, _ = await mutate(
        info.context,
        roles.ADMINS,
        operation="createWebhookEndpoint",
        payload={},
        idempotency_key=None,
        work=work,
    )
    return _endpoint_payload(snapshot, error)


async def update_webhook_endpoint(info: Info, input: UpdateWebhookEndpointInput) -> WebhookEndpointPayload:
    """Change the URL, the event types, the description, or enable/disable the endpoint."""
    allow_private = info.context.runtime.webhook_pings.allow_private

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        row = service.update_endpoint(
            session,
            services,
            principal,
            str(input.id),
            url=input.url,
            event_types=input.event_types,
            description=input.description,
            enabled=input.enabled,
            allow_private=allow_private,
        )
        return {"endpoint": dump(row)}

    snapshot, error, _ = await mutate(
        info.context,
        roles.ADMINS,
        operation="updateWebhookEndpoint",
        payload={},
        idempotency_key=None,
        work=work,
    )
    return _endpoint_payload(snapshot, error)


async def rotate_webhook_secret(info: Info, id: strawberry.ID) -> WebhookEndpointPayload:
    """A new signing secret (in this response only); the old one keeps signing beside it for 24 hours."""

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        issued = service.rotate_secret(session, services, principal, str(id))
        return {"endpoint": dump(issued.endpoint), "secret": issued.secret}

    snapshot, error, _ = await mutate(
        info.context,
        roles.ADMINS,
        operation="rotateWebhookSecret",
        payload={},
        idempotency_key=None,
        work=work,
    )
    return _endpoint_payload(snapshot, error)


async def redeliver_webhook(info: Info, delivery_id: strawberry.ID) -> WebhookDeliveryPayload:
    """Send a delivered or failed delivery's event again (same `webhook-id`, a fresh retry schedule)."""

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        return {"id": service.redeliver(session, services, principal, str(delivery_id)).id}

    snapshot, error, _ = await mutate(
        info.context, roles.ADMINS, operation="redeliverWebhook", payload={}, idempotency_key=None, work=work
    )
    if error is not None or snapshot is None:
        return WebhookDeliveryPayload(errors=[UserError.from_domain(error)] if error else [])
    views = await query(
        info.context,
        roles.ADMINS,
        lambda s, p: service.list_deliveries(s, p, delivery_id=snapshot["id"], first=1),
    )
    return WebhookDeliveryPayload(delivery=WebhookDelivery.from_view(views[0]) if views else None)


async def ping_webhook_endpoint(info: Info, id: strawberry.ID) -> WebhookPingPayload:
    """Send a signed `webhook.ping` event to the endpoint now (also when disabled) and report the attempt."""
    ctx = info.context
    sender = ctx.runtime.webhook_pings
    try:
        endpoint = await read_as(ctx, roles.ADMINS, lambda s, p: service.get_endpoint(s, p, str(id)))
    except DomainError as exc:
        return WebhookPingPayload(errors=[UserError.from_domain(exc)])
    now = ctx.runtime.services.clock()
    event = service.ping_event(ctx.auth, endpoint, now)
    result = await sender.send(endpoint.url, endpoint_secrets(endpoint, now), event.id, event.payload)

    def work(session: Session, _services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        return {"attempt": dump(service.record_ping(session, principal, endpoint.id, event, now, result))}

    snapshot, error, _ = await mutate(
        ctx, roles.ADMINS, operation="pingWebhookEndpoint", payload={}, idempotency_key=None, work=work
    )
    if error is not None or snapshot is None:
        return WebhookPingPayload(errors=[UserError.from_domain(error)] if error else [])
    row = load(tables.WebhookAttempt, snapshot["attempt"])
    return WebhookPingPayload(attempt=WebhookAttempt.from_model(row) if row else None)
