"""A merchant's own classifier through the API, on SQLite and PostgreSQL (issue #15 item 5): an admin trains a
candidate from the merchant's corrections in the background, reads the side-by-side comparison, the safety
gate refuses a worse candidate (and the refusal changes nothing), a passing one is promoted and classifies the
merchant's new tickets — never another merchant's —, and a rollback returns to the shipped model. Viewers and
agents can neither train nor promote nor roll back.

Training is kept small (a few hundred seed rows, few boosting rounds): the candidate is then much worse than
the shipped model on the seed hold-out, which is exactly what the strict gate must refuse; the test promotes it
under lenient margins to follow it into serving. Its corrections teach it a made-up word ("zorblax" → invoice)
the shipped model has never seen, so which model answered is visible in the category as well as the version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col
from starlette.applications import Starlette

from bookbag.app import create_app
from classifier.candidates import GateMargins, LearningConfig, ModelCache
from classifier.training import TrainConfig
from storage.db import Database
from storage.tables import ClassifierModel
from tests.conftest import MerchantKeys
from tests.waiting import eventually
from workflow.services import WorkflowServices

from .conftest import CREATE, Api, make_settings

SMALL = LearningConfig(
    seed_rows=300,
    seed_holdout_rows=200,
    train=TrainConfig(
        max_rounds=10,
        stack_folds=2,
        max_word_features=2000,
        max_char_features=3000,
        max_tree_features=4000,
    ),
)
STRICT = GateMargins()  # the defaults
LENIENT = GateMargins(macro_f1=1.0, accuracy=1.0, ece=1.0)

MODEL_FIELDS = """id number status modelVersion baselineVersion progress error trainedOnSeedRows
  trainedOnCorrections changesTotal modelBytes
  gate { passed reasons }
  slices { name rows active { macroF1 accuracy ece priorityMacroF1 } candidate { macroF1 accuracy ece }
           perClass { label support activeF1 candidateF1 } }
  changes { ticketId expectedCategory activeCategory candidateCategory candidatePriority }"""
TRAIN = f"mutation {{ trainClassifierModel {{ errors {{ code message }} model {{ {MODEL_FIELDS} }} }} }}"
PROMOTE = f"""mutation($id: ID!) {{ promoteClassifierModel(id: $id) {{ errors {{ code message }}
  model {{ {MODEL_FIELDS} }} }} }}"""
ROLLBACK = (
    f"mutation {{ rollbackClassifierModel {{ errors {{ code message }} model {{ {MODEL_FIELDS} }} }} }}"
)
MODEL = f"query($id: ID!) {{ classifierModel(id: $id) {{ {MODEL_FIELDS} }} }}"
MODELS = "{ classifierModels { id number status modelVersion } }"
CORRECT = """mutation($input: CorrectClassificationInput!) { correctClassification(input: $input) {
  errors { code message } } }"""
AUDIT = "query($kind: String) { auditLog(kind: $kind) { kind modelVersion after } }"
TICKET_AUDIT = "query($t: ID!) { auditLog(ticketId: $t) { kind modelVersion facts } }"
ZORBLAX = {"subject": "zorblax", "body": "Where can I get the zorblax slip for my last parcel?"}


@pytest.fixture(scope="module")
def learning_services(services: WorkflowServices) -> WorkflowServices:
    """The session's services with a small training configuration and a model cache of their own."""
    return dataclasses.replace(services, learning=SMALL, models=ModelCache(2))


@pytest.fixture
def learning_app(database_url: str, database: Database, learning_services: WorkflowServices) -> Starlette:
    return create_app(make_settings(database_url), services=learning_services, database=database)


@pytest.fixture
async def lapi(learning_app: Starlette) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=learning_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client)
    trainer = learning_app.state.bookbag.runtime.trainer
    if trainer is not None:
        trainer.close()


async def new_ticket(api: Api, key: str, **fields: Any) -> dict[str, Any]:
    data = await api.ok(CREATE, {"input": fields}, key=key)
    payload: dict[str, Any] = data["createTicket"]
    assert payload["errors"] == [], payload
    return payload


async def corrected_tickets(api: Api, merchant: MerchantKeys, n: int) -> list[str]:
    """`n` tickets about "zorblax" paperwork, each corrected by an agent to invoice / low."""
    ids = []
    for i in range(n):
        created = await new_ticket(
            api,
            merchant.keys["partner"],
            subject=f"zorblax slip {i}",
            body=f"Please send the zorblax slip for parcel {1000 + i}; my accountant needs the zorblax paperwork.",
        )
        ticket_id = created["ticket"]["id"]
        fix = {"ticketId": ticket_id, "category": "invoice", "priority": "LOW"}
        assert (await api.ok(CORRECT, {"input": fix}, key=merchant.keys["agent"]))["correctClassification"][
            "errors"
        ] == []
        ids.append(ticket_id)
    return ids


async def trained(api: Api, key: str, model_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any]:
        model: dict[str, Any] = (await api.ok(MODEL, {"id": model_id}, key=key))["classifierModel"]
        assert model["status"] == "READY", model  # FAILED would carry the reason in `error`
        return model

    return await eventually(done, timeout=240, interval=0.5, what="the model is trained")


def errors_of(data: dict[str, Any], field: str) -> list[str]:
    return [e["code"] for e in data[field]["errors"]]


async def test_train_compare_gate_promote_serve_and_roll_back(
    lapi: Api,
    learning_services: WorkflowServices,
    make_merchant: Callable[..., MerchantKeys],
) -> None:
    learning_services.learning = SMALL
    shop, other = make_merchant(), make_merchant()
    admin = shop.keys["admin"]
    shipped = learning_services.classifier.info.version
    corrected = await corrected_tickets(lapi, shop, 16)
    before = await new_ticket(lapi, shop.keys["partner"], **ZORBLAX)
    assert before["classification"]["modelVersion"] == shipped
    assert before["classification"]["category"] != "invoice"  # the shipped model has never seen the word

    # Only admins train.
    for role in ("viewer", "agent", "ai", "partner"):
        refused = await lapi.raw(TRAIN, key=shop.keys[role])
        assert refused["data"]["trainClassifierModel"]["errors"][0]["code"] == "FORBIDDEN", role
    assert (await lapi.ok(MODELS, key=admin))["classifierModels"] == []

    started = (await lapi.ok(TRAIN, key=admin))["trainClassifierModel"]
    assert started["errors"] == []
    assert started["model"]["status"] in ("QUEUED", "TRAINING", "READY")
    assert started["model"]["baselineVersion"] == shipped
    model = await trained(lapi, admin, started["model"]["id"])

    # The comparison: the newest quarter of the corrected tickets is held out (by time) and never trained on.
    assert model["trainedOnCorrections"] == 12 and model["trainedOnSeedRows"] == 300
    slices = {s["name"]: s for s in model["slices"]}
    assert slices["merchant"]["rows"] == 4 and slices["seed"]["rows"] == 200
    merchant_slice = slices["merchant"]
    assert merchant_slice["candidate"]["macroF1"] > merchant_slice["active"]["macroF1"]
    invoice = next(c for c in merchant_slice["perClass"] if c["label"] == "invoice")
    assert invoice["support"] == 4 and invoice["candidateF1"] > invoice["activeF1"]
    assert {c["ticketId"] for c in model["changes"]} <= set(corrected[-4:])
    assert model["changesTotal"] >= 1 and all(c["candidateCategory"] == "invoice" for c in model["changes"])
    # ... and the small candidate is far worse on the seed hold-out: the gate says no.
    seed = slices["seed"]
    assert seed["candidate"]["macroF1"] < seed["active"]["macroF1"] - 0.02
    assert model["gate"]["passed"] is False
    assert any("seed hold-out" in reason for reason in model["gate"]["reasons"])
    assert model["modelVersion"].startswith("merchant-v1-")

    # Neither agents nor viewers promote; another merchant cannot see or promote the model.
    for role in ("viewer", "agent"):
        refused = await lapi.raw(PROMOTE, {"id": model["id"]}, key=shop.keys[role])
        assert refused["data"]["promoteClassifierModel"]["errors"][0]["code"] == "FORBIDDEN"
    foreign = await lapi.ok(PROMOTE, {"id": model["id"]}, key=other.keys["admin"])
    assert errors_of(foreign, "promoteClassifierModel") == ["NOT_FOUND"]
    assert (await lapi.ok(MODEL, {"id": model["id"]}, key=other.keys["admin"]))["classifierModel"] is None

    # The strict gate refuses the worse candidate, and the refusal changes nothing.
    learning_services.learning = dataclasses.replace(SMALL, margins=STRICT)
    refused = await lapi.ok(PROMOTE, {"id": model["id"]}, key=admin)
    assert errors_of(refused, "promoteClassifierModel") == ["MODEL_GATE_FAILED"]
    assert "seed hold-out" in refused["promoteClassifierModel"]["errors"][0]["message"]
    assert (await lapi.ok(MODEL, {"id": model["id"]}, key=admin))["classifierModel"]["status"] == "READY"
    still = await new_ticket(lapi, shop.keys["partner"], **ZORBLAX)
    assert still["classification"]["modelVersion"] == shipped

    # Under lenient margins it goes live for this merchant only.
    learning_services.learning = dataclasses.replace(SMALL, margins=LENIENT)
    promoted = (await lapi.ok(PROMOTE, {"id": model["id"]}, key=admin))["promoteClassifierModel"]
    assert promoted["errors"] == [] and promoted["model"]["status"] == "ACTIVE"
    served = await new_ticket(lapi, shop.keys["partner"], **ZORBLAX)
    assert served["classification"]["modelVersion"] == model["modelVersion"]
    assert served["classification"]["category"] == "invoice"
    assert served["ticket"]["category"] == "invoice"
    # The decision's facts carry the version that classified.
    entries = (await lapi.ok(TICKET_AUDIT, {"t": served["ticket"]["id"]}, key=admin))["auditLog"]
    with_facts = [e for e in entries if e["facts"] and "classifier" in e["facts"]]
    assert with_facts and all(
        e["facts"]["classifier"]["model_version"] == model["modelVersion"] for e in with_facts
    )
    elsewhere = await new_ticket(lapi, other.keys["partner"], **ZORBLAX)
    assert elsewhere["classification"]["modelVersion"] == shipped
    assert elsewhere["classification"]["category"] == before["classification"]["category"]

    # The next model is trained against the store's own active model (packed bytes into the training process).
    again = (await lapi.ok(TRAIN, key=admin))["trainClassifierModel"]
    assert again["errors"] == [] and again["model"]["baselineVersion"] == model["modelVersion"]
    second = await trained(lapi, admin, again["model"]["id"])
    assert second["number"] == 2 and second["modelVersion"] != model["modelVersion"]
    assert {s["name"] for s in second["slices"]} == {"merchant", "seed"}

    # Rollback: agents may not; the admin's returns the merchant to the shipped model.
    refused = await lapi.raw(ROLLBACK, key=shop.keys["agent"])
    assert refused["data"]["rollbackClassifierModel"]["errors"][0]["code"] == "FORBIDDEN"
    assert errors_of(await lapi.ok(ROLLBACK, key=other.keys["admin"]), "rollbackClassifierModel") == [
        "CONFLICT"
    ]
    rolled = (await lapi.ok(ROLLBACK, key=admin))["rollbackClassifierModel"]
    assert rolled["errors"] == [] and rolled["model"]["status"] == "ROLLED_BACK"
    after = await new_ticket(lapi, shop.keys["partner"], **ZORBLAX)
    assert after["classification"]["modelVersion"] == shipped
    assert after["classification"]["category"] == before["classification"]["category"]
    assert errors_of(await lapi.ok(ROLLBACK, key=admin), "rollbackClassifierModel") == ["CONFLICT"]
    # A rolled-back model is not promoted again, nor one compared with a model no longer active.
    assert errors_of(await lapi.ok(PROMOTE, {"id": model["id"]}, key=admin), "promoteClassifierModel") == [
        "CONFLICT"
    ]
    stale = await lapi.ok(PROMOTE, {"id": second["id"]}, key=admin)
    assert errors_of(stale, "promoteClassifierModel") == ["CONFLICT"]
    assert "train again" in stale["promoteClassifierModel"]["errors"][0]["message"]

    kinds = [e["kind"] for e in (await lapi.ok(AUDIT, {"kind": None}, key=admin))["auditLog"]]
    for kind in (
        "classifier.training_started",
        "classifier.model_trained",
        "classifier.model_promoted",
        "classifier.model_rolled_back",
    ):
        assert kind in kinds
    listed = (await lapi.ok(MODELS, key=admin))["classifierModels"]
    assert [(m["number"], m["status"]) for m in listed] == [(2, "READY"), (1, "ROLLED_BACK")]
    assert (await lapi.ok(MODELS, key=other.keys["admin"]))["classifierModels"] == []


async def test_training_needs_corrections_and_runs_once_per_merchant(
    lapi: Api, learning_app: Starlette, database: Database, make_merchant: Callable[..., MerchantKeys]
) -> None:
    shop = make_merchant()
    admin = shop.keys["admin"]
    nothing = await lapi.ok(TRAIN, key=admin)
    assert errors_of(nothing, "trainClassifierModel") == ["INVALID_INPUT"]
    assert (await lapi.ok(MODELS, key=admin))["classifierModels"] == []

    learning_app.state.bookbag.runtime.trainer = None  # the run stays queued: nothing trains it here
    await corrected_tickets(lapi, shop, 2)
    first = (await lapi.ok(TRAIN, key=admin))["trainClassifierModel"]
    assert first["errors"] == [] and first["model"]["status"] == "QUEUED"
    second = await lapi.ok(TRAIN, key=admin)
    assert errors_of(second, "trainClassifierModel") == ["CONFLICT"]
    promote = await lapi.ok(PROMOTE, {"id": first["model"]["id"]}, key=admin)
    assert errors_of(promote, "promoteClassifierModel") == ["CONFLICT"]  # not trained yet
    assert [m["status"] for m in (await lapi.ok(MODELS, key=admin))["classifierModels"]] == ["QUEUED"]
    with database.unit_of_work() as session:  # no other test's trainer should pick it up
        session.execute(
            update(ClassifierModel)
            .where(col(ClassifierModel.merchant_id) == shop.merchant_id)
            .values(status="failed")
        )
