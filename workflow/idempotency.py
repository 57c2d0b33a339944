"""Idempotent mutations: the same key and input replay the first response; a different input is refused.

Records are kept at least ``RETENTION`` and pruned by the scheduler afterwards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection
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


def check_key(key: str) -> None:
    if not 1 <= len(key) <= 200:
        raise invalid("idempotencyKey must be 1-200 characters", "idempotencyKey")


def replay(
    record: IdempotencyRecord | None, operation: str, payload: dict[str, Any]
) -> dict[str, Any] | None:
    """The stored response when ``record`` is this same request again, None when there is no record;
    IDEMPOTENCY_MISMATCH when the key was used for a different input."""
    if record is None:
        return None
    if record.request_hash != request_hash(operation, payload) or record.operation != operation:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_MISMATCH,
            "this idempotencyKey was used with a different input",
            "idempotencyKey",
        )
    return dict(record.response)


def find_records(session: Session, merchant_id: str, keys: Collection[str]) -> dict[str, IdempotencyRecord]:
    """The merchant's stored records for ``keys``, by key (one query)."""
    if not keys:
        return {}
    rows = session.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.merchant_id == merchant_id, col(IdempotencyRecord.key).in_(list(keys))
        )
    )
    return {record.key: record for record in rows}


def remember(
    session: Session,
    *,
    merchant_id: str,
    key: str,
    operation: str,
    payload: dict[str, Any],
    response: dict[str, Any],
) -> None:
    """Store the first response under ``key`` in the caller's unit of work. Two racing first requests: the
    loser's unit of work fails on the primary key and nothing of it is kept."""
    session.add(
        IdempotencyRecord(
            merchant_id=merchant_id,
            key=key,
            operation=operation,
            request_hash=request_hash(operation, payload),
            response=response,
        )
    )


def run_idempotent(
    session: Session,
    *,
    merchant_id: str,
    key: str | None,
    operation: str,
    payload: dict[str, Any],
    run: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``run`` once per (merchant, key); a repeat returns the first response. Two racing first requests:
    the loser's unit of work fails on the primary key and nothing of it is kept; its retry then replays the
    winner's response."""
    if key is None:
        return run()
    check_key(key)
    replayed = replay(find_records(session, merchant_id, [key]).get(key), operation, payload)
    if replayed is not None:
        return replayed
    response = run()
    remember(
        session, merchant_id=merchant_id, key=key, operation=operation, payload=payload, response=response
    )
    session.flush()
    return response


def prune(session: Session, now: datetime) -> int:
    result = session.execute(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < now - RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)
