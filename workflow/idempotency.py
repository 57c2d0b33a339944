"""Idempotent mutations: the same key and input replay the first response; a different input is refused.

Records are kept at least ``RETENTION`` and pruned by the scheduler afterwards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from storage.tables import IdempotencyRecord
from workflow.errors import DomainError, ErrorCode, invalid

RETENTION = timedelta(hours=24)


def request_hash(operation: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"op": operation, "input": payload}, sort_keys=True, default=str, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_idempotent(
    session: Session,
    *,
    merchant_id: str,
    key: str | None,
    operation: str,
    payload: dict[str, Any],
    run: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``run`` once per (merchant, key). Two racing first requests: the loser's unit of work fails on the
    primary key and nothing of it is kept; its retry then replays the winner's response."""
    if key is None:
        return run()
    if not 1 <= len(key) <= 200:
        raise invalid("idempotencyKey must be 1-200 characters", "idempotencyKey")
    digest = request_hash(operation, payload)
    existing = session.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key
        )
    ).first()
    if existing is not None:
        if existing.request_hash != digest or existing.operation != operation:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_MISMATCH,
                "this idempotencyKey was used with a different input",
                "idempotencyKey",
            )
        return dict(existing.response)
    response = run()
    session.add(
        IdempotencyRecord(
            merchant_id=merchant_id, key=key, operation=operation, request_hash=digest, response=response
        )
    )
    session.flush()
    return response


def prune(session: Session, now: datetime) -> int:
    result = session.execute(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < now - RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)
