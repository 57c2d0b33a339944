"""``storage.db.insert_later``: append-only rows written in bulk, yet visible and atomic like ORM rows."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import Session, col, select

from storage.db import Database, insert_later
from storage.tables import AuditEvent, utcnow
from tests.conftest import MerchantKeys


def _row(merchant_id: str, kind: str) -> dict[str, object]:
    return {
        "merchant_id": merchant_id,
        "ticket_id": None,
        "kind": kind,
        "actor": "system",
        "api_key_id": None,
        "before": {},
        "after": {"n": 1},
        "ruleset_version": None,
        "model_version": None,
        "facts": None,
        "decision": None,
        "created_at": utcnow(),
    }


def _kinds(database: Database, merchant_id: str) -> list[str]:
    with database.read_only() as session:
        query = select(AuditEvent.kind).where(AuditEvent.merchant_id == merchant_id)
        return list(session.exec(query.order_by(col(AuditEvent.id))))


def test_queued_rows_are_written_at_commit_in_order_and_seen_by_reads_before_it(
    database: Database, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant = make_merchant(roles=())
    with database.unit_of_work() as session:
        insert_later(session, AuditEvent, _row(merchant.merchant_id, "first"))
        insert_later(session, AuditEvent, _row(merchant.merchant_id, "second"))
        seen = session.exec(
            select(AuditEvent.kind).where(AuditEvent.merchant_id == merchant.merchant_id)
        ).all()
        assert sorted(seen) == ["first", "second"]  # a read in the same unit of work sees them
        insert_later(session, AuditEvent, _row(merchant.merchant_id, "third"))
    assert _kinds(database, merchant.merchant_id) == ["first", "second", "third"]
    stored = _stored(database, merchant.merchant_id)
    assert stored.after == {"n": 1} and stored.created_at is not None


def _stored(database: Database, merchant_id: str) -> AuditEvent:
    with database.read_only() as session:
        row = session.exec(select(AuditEvent).where(AuditEvent.merchant_id == merchant_id)).first()
        assert row is not None
        return row


def test_a_failed_unit_of_work_writes_none_of_its_queued_rows(
    database: Database, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant = make_merchant(roles=())
    with pytest.raises(RuntimeError), database.unit_of_work() as session:
        insert_later(session, AuditEvent, _row(merchant.merchant_id, "lost"))
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError), database.unit_of_work() as session:
        insert_later(session, AuditEvent, _row(merchant.merchant_id, "flushed then lost"))
        session.exec(select(AuditEvent.id).limit(1)).all()  # writes the queued row inside the transaction
        raise RuntimeError("boom")
    assert _kinds(database, merchant.merchant_id) == []


def test_a_session_not_made_by_database_writes_at_once(
    database: Database, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant = make_merchant(roles=())
    with Session(database.engine) as session:
        insert_later(session, AuditEvent, _row(merchant.merchant_id, "direct"))
        session.commit()
    assert _kinds(database, merchant.merchant_id) == ["direct"]
