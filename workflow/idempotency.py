"""Idempotent mutations: the same key and input replay the first response; a different input is refused.

Records are kept at least ``RETENTION`` and pruned by the scheduler afterwards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.tables import IdempotencyRecord
from workflow.errors import DomainError, ErrorCode, invalid

RETENTION = timedelta(hours=24)
T = TypeVar("T")


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


def remember(session: Session, request: KeyedRequest, operation: str, *, response: dict[str, Any]) -> None:
    """Store the first response under the request's key in the caller's unit of work."""
    assert request.key is not None
    session.add(
        IdempotencyRecord(
            merchant_id=request.merchant_id,
            key=request.key,
            operation=operation,
            request_hash=request_hash(operation, request.payload),
            response=response,
        )
    )


@dataclass(frozen=True)
class KeyedRequest:
    """One request of an idempotent batch: whose it is, its key (None: not idempotent) and its input."""

    merchant_id: str
    key: str | None
    payload: dict[str, Any]


# (response, None, replayed) or (None, error, False)
Outcome = tuple[dict[str, Any] | None, DomainError | None, bool]


def run_idempotent_batch(
    session: Session,
    operation: str,
    requests: Sequence[KeyedRequest],
    run: Callable[[list[int]], list[dict[str, Any] | DomainError]],
) -> list[Outcome]:
    """Replay or refuse each request whose key is stored, ``run`` the others (by index; one response or a
    refusal that wrote nothing per index) and store each new response under its key, all in the caller's
    unit of work. Keys are looked up with one query per merchant; a batch must not hold one key twice.

    Two racing first requests: the loser's unit of work fails on the record's primary key and nothing of it
    is kept; its retry then replays the winner's response."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    stored = _stored_records(session, requests)
    todo: list[int] = []
    for index, request in enumerate(requests):
        if request.key is not None:
            try:
                replayed = replay(stored.get((request.merchant_id, request.key)), operation, request.payload)
            except DomainError as exc:
                outcomes[index] = (None, exc, False)
                continue
            if replayed is not None:
                outcomes[index] = (replayed, None, True)
                continue
        todo.append(index)
    results = run(todo) if todo else []
    for index, result in zip(todo, results, strict=True):
        if isinstance(result, DomainError):
            outcomes[index] = (None, result, False)
            continue
        request = requests[index]
        if request.key is not None:
            remember(session, request, operation, response=result)
        outcomes[index] = (result, None, False)
    return [outcome for outcome in outcomes if outcome is not None]


def run_idempotent(
    session: Session,
    *,
    merchant_id: str,
    key: str | None,
    operation: str,
    payload: dict[str, Any],
    run: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``run`` once per (merchant, key); a repeat returns the first response (a batch of one of
    :func:`run_idempotent_batch`; ``run``'s DomainErrors propagate)."""
    if key is None:
        return run()
    check_key(key)
    [(response, error, _)] = run_idempotent_batch(
        session, operation, [KeyedRequest(merchant_id, key, payload)], lambda _: [run()]
    )
    if error is not None:
        raise error
    assert response is not None
    session.flush()
    return response


def rerun_if_key_raced(unit: Callable[[], T], key: str | None) -> T:
    """Run ``unit`` (one whole unit of work). When it failed on an idempotency record's primary key —
    another first request with the same key committed meanwhile, and this one was rolled back — run it
    once more: it then replays the winner's response."""
    try:
        return unit()
    except IntegrityError:
        if key is None:
            raise
        return unit()


def _stored_records(
    session: Session, requests: Sequence[KeyedRequest]
) -> dict[tuple[str, str], IdempotencyRecord]:
    keys: dict[str, list[str]] = {}
    for request in requests:
        if request.key is not None:
            keys.setdefault(request.merchant_id, []).append(request.key)
    return {
        (merchant_id, key): record
        for merchant_id, merchant_keys in keys.items()
        for key, record in find_records(session, merchant_id, merchant_keys).items()
    }


def prune(session: Session, now: datetime) -> int:
    result = session.execute(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < now - RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)
