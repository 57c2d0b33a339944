"""Serving merchants' own models and the promotion rules, on SQLite and PostgreSQL, with packed models written
straight into the table (the training itself is covered through the API in tests/api/test_classifier_models.py):
each merchant's tickets are classified by its own active model, loaded models stay within the LRU's bound, a
candidate compared with a model that is no longer active is refused, and so is one the gate refuses under the
margins in force at promotion — leaving the active model as it was."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

import classifier
from classifier.candidates import GateMargins, ModelCache, pack_model
from storage.db import Database
from storage.tables import AuditEvent, ClassifierActive, ClassifierModel
from tests.conftest import MerchantKeys
from workflow import classifier_models as models
from workflow.errors import DomainError, ErrorCode
from workflow.services import WorkflowServices

from .helpers import ingest, principal


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], bytes]:
    """The shipped model packed under another version name (so which one answered is visible)."""
    cache: dict[str, bytes] = {}

    def pack(version: str) -> bytes:
        if version not in cache:
            out = tmp_path_factory.mktemp("model") / version
            shutil.copytree(classifier.default_model_dir(), out)
            manifest = json.loads((out / "manifest.json").read_text())
            manifest["version"] = version
            (out / "manifest.json").write_text(json.dumps(manifest))
            cache[version] = pack_model(Path(out))
        return cache[version]

    return pack


def ready_model(
    database: Database,
    m: MerchantKeys,
    number: int,
    version: str,
    blob: bytes,
    baseline: str,
    report: dict[str, Any],
) -> str:
    with database.unit_of_work() as session:
        row = ClassifierModel(
            merchant_id=m.merchant_id,
            number=number,
            status="ready",
            model_version=version,
            baseline_version=baseline,
            model=blob,
            model_bytes=len(blob),
            report=report,
        )
        session.add(row)
        session.flush()
        return row.id


PASSING = {
    "slices": {
        "seed": {
            "rows": 1,
            "active": {"macro_f1": 0.9, "accuracy": 0.9, "ece": 0.02},
            "candidate": {"macro_f1": 0.89, "accuracy": 0.9, "ece": 0.03},
        }
    }
}


def test_each_merchant_is_served_by_its_own_model_within_the_lru_bound(
    database: Database,
    services: WorkflowServices,
    make_merchant: Callable[..., MerchantKeys],
    packed: Callable[[str], bytes],
) -> None:
    services = dataclasses.replace(services, models=ModelCache(2))
    shipped = services.classifier.info.version
    shops = [make_merchant() for _ in range(3)]
    plain = make_merchant()
    for i, shop in enumerate(shops):
        model_id = ready_model(
            database, shop, 1, f"test-shop-{i}", packed(f"test-shop-{i}"), shipped, PASSING
        )
        with database.unit_of_work() as session:
            models.promote(session, services, principal(shop, "admin"), model_id)
    for round_ in range(2):
        for i, shop in enumerate(shops):
            ticket = ingest(database, services, shop)
            assert ticket.model_version == f"test-shop-{i}", round_
            assert len(services.models) <= 2
        assert ingest(database, services, plain).model_version == shipped
    # Three merchants in turns through a cache of two: every model was loaded again in the second round.
    assert services.models.loads == 6
    # One batch across merchants: one classifier call per model, each ticket by its merchant's.
    items = [
        (m.merchant_id, classifier.TicketInput(subject="Where is my order?"))
        for m in (*shops, plain, shops[0])
    ]
    with database.read_only() as session:
        got = [p.model_version for p in models.classify(session, services, items)]
    assert got == ["test-shop-0", "test-shop-1", "test-shop-2", shipped, "test-shop-0"]


def test_promotion_refuses_a_stale_comparison_and_a_failed_gate_and_changes_nothing(
    database: Database,
    services: WorkflowServices,
    make_merchant: Callable[..., MerchantKeys],
    packed: Callable[[str], bytes],
) -> None:
    shop = make_merchant()
    admin = principal(shop, "admin")
    shipped = services.classifier.info.version
    first = ready_model(database, shop, 1, "test-first", packed("test-first"), shipped, PASSING)
    stale = ready_model(database, shop, 2, "test-stale", packed("test-stale"), shipped, PASSING)
    worse = ready_model(database, shop, 3, "test-worse", packed("test-worse"), "test-first", PASSING)
    with database.unit_of_work() as session:
        models.promote(session, services, admin, first)

    def state() -> tuple[Any, ...]:
        with database.read_only() as session:
            pointer = session.get(ClassifierActive, shop.merchant_id)
            statuses = sorted(
                session.exec(
                    select(ClassifierModel.number, ClassifierModel.status).where(
                        ClassifierModel.merchant_id == shop.merchant_id
                    )
                ).all()
            )
            audits = session.exec(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.merchant_id == shop.merchant_id)
            ).one()
            return pointer.model_id if pointer else None, statuses, audits

    before = state()
    with pytest.raises(DomainError) as refused, database.unit_of_work() as session:
        models.promote(session, services, admin, stale)  # compared with the shipped model, no longer active
    assert refused.value.code is ErrorCode.CONFLICT and "train again" in refused.value.message
    strict = dataclasses.replace(
        services, learning=dataclasses.replace(services.learning, margins=GateMargins(macro_f1=0.005))
    )
    with pytest.raises(DomainError) as gated, database.unit_of_work() as session:
        models.promote(session, strict, admin, worse)  # 0.89 vs 0.90: beyond a margin of 0.005
    assert gated.value.code is ErrorCode.MODEL_GATE_FAILED
    assert state() == before
    for role in ("agent", "viewer"):
        with pytest.raises(DomainError) as forbidden, database.unit_of_work() as session:
            models.promote(session, services, principal(shop, role), worse)
        assert forbidden.value.code is ErrorCode.FORBIDDEN
    with database.unit_of_work() as session:  # the default margins let 0.89 vs 0.90 through
        models.promote(session, services, admin, worse)
    assert ingest(database, services, shop).model_version == "test-worse"
    with database.unit_of_work() as session:
        models.rollback(session, services, admin)
    assert ingest(database, services, shop).model_version == "test-first"
    with database.unit_of_work() as session:
        models.rollback(session, services, admin)
    assert ingest(database, services, shop).model_version == shipped
    assert state()[1] == [(1, "rolled_back"), (2, "ready"), (3, "rolled_back")]


def test_a_training_whose_process_died_is_marked_failed_and_the_next_one_may_start(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    from datetime import timedelta

    from workflow.tickets.corrections import correct_classification

    shop = make_merchant()
    admin = principal(shop, "admin")
    ticket = ingest(database, services, shop)
    with database.unit_of_work() as session:
        correct_classification(
            session, services, principal(shop, "agent"), ticket_id=ticket.id, category="invoice"
        )
    with database.unit_of_work() as session:
        first = models.start_training(session, services, admin).id
    with pytest.raises(DomainError) as busy, database.unit_of_work() as session:
        models.start_training(session, services, admin)
    assert busy.value.code is ErrorCode.CONFLICT
    with database.unit_of_work() as session:  # as if its process died mid-training 11 minutes ago
        row = session.get(ClassifierModel, first)
        assert row is not None
        row.status, row.heartbeat_at = "training", services.clock() - timedelta(minutes=11)
        session.add(row)
    with database.unit_of_work() as session:
        second = models.start_training(session, services, admin)
        assert second.number == 2
    with database.read_only() as session:
        dead = session.get(ClassifierModel, first)
        assert dead is not None and dead.status == "failed" and "interrupted" in (dead.error or "")
    with database.unit_of_work() as session:  # leave nothing queued for another test's trainer
        queued = session.get(ClassifierModel, second.id)
        assert queued is not None
        queued.status = "failed"
        session.add(queued)


def test_a_model_that_cannot_be_loaded_leaves_ingest_on_the_shipped_model(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    services = dataclasses.replace(services, models=ModelCache(2))
    shop = make_merchant()
    shipped = services.classifier.info.version
    model_id = ready_model(database, shop, 1, "test-corrupt", b"not a zip", shipped, PASSING)
    with database.unit_of_work() as session:
        models.promote(session, services, principal(shop, "admin"), model_id)
    for _ in range(2):
        ticket = ingest(database, services, shop)
        assert ticket.model_version == shipped  # and the ticket records which model answered
    # The failure is remembered: the shipped model stands in under the model's id, loaded once, not retried.
    assert services.models.keys() == [model_id] and services.models.loads == 1
