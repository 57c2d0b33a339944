"""What an admin does with webhook endpoints: register, change, enable or disable, rotate the signing
secret, read the delivery log, redeliver an event, and record a test ping. Every function takes the
admin's principal and touches only that merchant's rows (another merchant's id is ``NOT_FOUND``).

A secret (``whsec_`` + base64 of 32 random bytes, the Standard Webhooks form) is returned once, when it is
issued; rotating keeps the previous secret signing beside the new one for ``ROTATION_GRACE`` so receivers
can switch without dropping deliveries.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlmodel import Session, col, func, select

from storage.db import after_commit
from storage.tables import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent, new_id
from workflow.errors import DomainError, ErrorCode, invalid, not_found
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal, Role
from workflow.webhooks.delivery import AttemptResult
from workflow.webhooks.outbox import EVENT_TYPES, PING_TYPE, new_delivery
from workflow.webhooks.ssrf import UrlRefused, check_url

ROTATION_GRACE = timedelta(hours=24)
MAX_ENDPOINTS_PER_MERCHANT = 20
MAX_DESCRIPTION = 200
DELIVERY_STATUSES = ("pending", "delivered", "failed")
MAX_DELIVERY_PAGE = 200
MAX_ATTEMPTS_SHOWN = 20


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _clean_url(url: str, allow_private: bool) -> str:
    url = url.strip()
    try:
        check_url(url, allow_private=allow_private)
    except UrlRefused as exc:
        raise invalid(str(exc), "url") from None
    return url


def _clean_types(event_types: Sequence[str]) -> list[str]:
    unknown = sorted({t for t in event_types if t not in EVENT_TYPES})
    if unknown:
        raise invalid(
            f"unknown event type(s) {', '.join(unknown)}; one of: {', '.join(EVENT_TYPES)}", "eventTypes"
        )
    if not event_types:
        raise invalid("subscribe to at least one event type", "eventTypes")
    return [t for t in EVENT_TYPES if t in set(event_types)]


def _clean_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise invalid(f"description must be at most {MAX_DESCRIPTION} characters", "description")
    return description.strip()


def get_endpoint(
    session: Session, principal: Principal, endpoint_id: str, *, for_update: bool = False
) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.merchant_id == principal.merchant_id
    )
    if for_update:
        query = query.with_for_update()
    endpoint = session.exec(query).first()
    if endpoint is None:
        raise not_found("webhook endpoint", "id")
    return endpoint


def list_endpoints(session: Session, principal: Principal) -> list[WebhookEndpoint]:
    principal.require(Role.ADMIN)
    return list(
        session.exec(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.merchant_id == principal.merchant_id)
            .order_by(col(WebhookEndpoint.created_at), col(WebhookEndpoint.id))
        )
    )


@dataclass(frozen=True)
class IssuedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


def create_endpoint(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    url: str,
    event_types: Sequence[str],
    description: str = "",
    enabled: bool = True,
    allow_private: bool = False,
) -> IssuedEndpoint:
    principal.require(Role.ADMIN)
    existing = session.exec(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.merchant_id == principal.merchant_id)
    ).one()
    if existing >= MAX_ENDPOINTS_PER_MERCHANT:
        raise invalid(f"a merchant may have at most {MAX_ENDPOINTS_PER_MERCHANT} webhook endpoints")
    now = services.clock()
    endpoint = WebhookEndpoint(
        merchant_id=principal.merchant_id,
        url=_clean_url(url, allow_private),
        event_types=_clean_types(event_types),
        description=_clean_description(description),
        enabled=enabled,
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    return IssuedEndpoint(endpoint, endpoint.secret)


def update_endpoint(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    endpoint_id: str,
    *,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    allow_private: bool = False,
) -> WebhookEndpoint:
    """Change what is given. Enabling clears an automatic disabling and its failure streak; the deliveries
    that waited meanwhile are then sent as they fall due."""
    principal.require(Role.ADMIN)
    endpoint = get_endpoint(session, principal, endpoint_id, for_update=True)
    now = services.clock()
    if url is not None:
        endpoint.url = _clean_url(url, allow_private)
    if event_types is not None:
        endpoint.event_types = _clean_types(event_types)
    if description is not None:
        endpoint.description = _clean_description(description)
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        if enabled:
            endpoint.disabled_at = None
            endpoint.disabled_reason = None
            endpoint.failing_since = None
        else:
            endpoint.disabled_at = now
            endpoint.disabled_reason = "disabled by an admin"
    endpoint.updated_at = now
    session.add(endpoint)
    return endpoint


def rotate_secret(
    session: Session, services: WorkflowServices, principal: Principal, endpoint_id: str
) -> IssuedEndpoint:
    principal.require(Role.ADMIN)
    endpoint = get_endpoint(session, principal, endpoint_id, for_update=True)
    now = services.clock()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_GRACE
    endpoint.secret = new_secret()
    endpoint.secret_rotated_at = now
    endpoint.updated_at = now
    session.add(endpoint)
    return IssuedEndpoint(endpoint, endpoint.secret)


@dataclass(frozen=True)
class DeliveryView:
    delivery: WebhookDelivery
    event_type: str
    ticket_id: str | None
    payload: str
    attempts: list[WebhookAttempt]


def list_deliveries(
    session: Session,
    principal: Principal,
    *,
    endpoint_id: str | None = None,
    status: str | None = None,
    delivery_id: str | None = None,
    first: int = 50,
) -> list[DeliveryView]:
    """The delivery log, newest first, each with its latest attempts (newest first)."""
    principal.require(Role.ADMIN)
    if not 1 <= first <= MAX_DELIVERY_PAGE:
        raise invalid(f"first must be between 1 and {MAX_DELIVERY_PAGE}", "first")
    if status is not None and status not in DELIVERY_STATUSES:
        raise invalid(f"status must be one of {', '.join(DELIVERY_STATUSES)}", "status")
    query = (
        select(WebhookDelivery, WebhookEvent.type, WebhookEvent.ticket_id, WebhookEvent.payload)
        .join(WebhookEvent, col(WebhookEvent.id) == col(WebhookDelivery.event_id))
        .where(WebhookDelivery.merchant_id == principal.merchant_id)
    )
    if endpoint_id is not None:
        get_endpoint(session, principal, endpoint_id)
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if delivery_id is not None:
        query = query.where(WebhookDelivery.id == delivery_id)
    rows = session.exec(
        query.order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc()).limit(first)
    ).all()
    ids = [delivery.id for delivery, *_ in rows]
    attempts: dict[str, list[WebhookAttempt]] = {i: [] for i in ids}
    if ids:
        for attempt in session.exec(
            select(WebhookAttempt)
            .where(
                WebhookAttempt.merchant_id == principal.merchant_id,
                col(WebhookAttempt.delivery_id).in_(ids),
            )
            .order_by(col(WebhookAttempt.id).desc())
        ):
            shown = attempts[str(attempt.delivery_id)]
            if len(shown) < MAX_ATTEMPTS_SHOWN:
                shown.append(attempt)
    return [DeliveryView(d, t, tid, p, attempts[d.id]) for d, t, tid, p in rows]


def redeliver(
    session: Session, services: WorkflowServices, principal: Principal, delivery_id: str
) -> WebhookDelivery:
    """Send a delivery's event to its endpoint again, as a new delivery with a fresh retry schedule and the
    same ``webhook-id`` (receivers that already have it can drop it)."""
    principal.require(Role.ADMIN)
    old = session.exec(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.merchant_id == principal.merchant_id
        )
    ).first()
    if old is None:
        raise not_found("webhook delivery", "id")
    endpoint = get_endpoint(session, principal, old.endpoint_id)
    if not endpoint.enabled:
        raise DomainError(ErrorCode.CONFLICT, "the endpoint is disabled: enable it first", "id")
    if old.status == "pending":
        raise DomainError(ErrorCode.CONFLICT, "this delivery is still pending: it will be attempted", "id")
    row = new_delivery(principal.merchant_id, old.event_id, old.endpoint_id, services.clock())
    session.execute(insert(WebhookDelivery.__table__), [row])  # type: ignore[attr-defined]
    delivery = session.get(WebhookDelivery, row["id"])
    assert delivery is not None
    after_commit(session, services.bus.outbox_written)  # wakes this process's dispatcher
    return delivery


def ping_event(principal: Principal, endpoint: WebhookEndpoint, now: datetime) -> WebhookEvent:
    """A ``webhook.ping`` event for a test ping (written with the attempt, so the log can show it)."""
    body = {
        "type": PING_TYPE,
        "timestamp": now.isoformat(),
        "data": {"merchant_id": principal.merchant_id, "endpoint_id": endpoint.id},
    }
    return WebhookEvent(
        id=new_id("evt"),
        merchant_id=principal.merchant_id,
        type=PING_TYPE,
        ticket_id=None,
        payload=json.dumps(body, separators=(",", ":")),
        created_at=now,
    )


def record_ping(
    session: Session,
    principal: Principal,
    endpoint_id: str,
    event: WebhookEvent,
    started_at: datetime,
    result: AttemptResult,
) -> WebhookAttempt:
    principal.require(Role.ADMIN)
    get_endpoint(session, principal, endpoint_id)
    session.add(event)
    session.flush()
    attempt = WebhookAttempt(
        merchant_id=principal.merchant_id,
        endpoint_id=endpoint_id,
        delivery_id=None,
        event_id=event.id,
        attempt=1,
        started_at=started_at,
        status_code=result.status_code,
        latency_ms=round(result.latency_ms, 3),
        ok=result.ok,
        error=result.error,
        response_excerpt=result.response_excerpt,
    )
    session.add(attempt)
    session.flush()
    return attempt
