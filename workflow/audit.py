"""The append-only audit log: every change and every decision, with the facts a decision saw."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from storage.db import insert_later
from storage.tables import AuditEvent, utcnow
from workflow.tenancy.principal import Principal


def record(
    session: Session,
    principal: Principal,
    *,
    kind: str,
    ticket_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ruleset_version: int | None = None,
    model_version: str | None = None,
    facts: dict[str, Any] | None = None,
    decision: dict[str, Any] | None = None,
) -> None:
    insert_later(
        session,
        AuditEvent,
        {
            "merchant_id": principal.merchant_id,
            "ticket_id": ticket_id,
            "kind": kind,
            "actor": principal.actor.value,
            "api_key_id": principal.key_id,
            "before": before or {},
            "after": after or {},
            "ruleset_version": ruleset_version,
            "model_version": model_version,
            "facts": facts,
            "decision": decision,
            "created_at": utcnow(),
        },
    )


def list_audit(
    session: Session,
    principal: Principal,
    *,
    ticket_id: str | None = None,
    kind: str | None = None,
    first: int = 100,
    before_id: int | None = None,
) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.merchant_id == principal.merchant_id)
    if ticket_id is not None:
        query = query.where(AuditEvent.ticket_id == ticket_id)
    if kind is not None:
        query = query.where(AuditEvent.kind == kind)
    if before_id is not None:
        query = query.where(col(AuditEvent.id) < before_id)
    return list(session.exec(query.order_by(col(AuditEvent.id).desc()).limit(max(1, min(first, 500)))))


def recent_decisions(
    session: Session, merchant_id: str, *, limit: int, since: datetime | None = None
) -> list[AuditEvent]:
    """The merchant's most recent recorded action decisions (those at or after ``since``), newest first
    (the input of a backtest)."""
    query = select(AuditEvent).where(
        AuditEvent.merchant_id == merchant_id, AuditEvent.kind == "action.decided"
    )
    if since is not None:
        query = query.where(col(AuditEvent.created_at) >= since)
    return list(session.exec(query.order_by(col(AuditEvent.id).desc()).limit(limit)))
