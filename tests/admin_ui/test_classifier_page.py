"""The Classifier page in a real browser: an admin trains the store's own model from its agents' corrections
(progress shown until it is ready), reads the side-by-side comparison and the gate's refusal, promotes it once
the margins allow, sees new tickets classified by it, and rolls back to the shipped model. Other roles have
no Classifier page. Training is kept small (see tests/api/test_classifier_models.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from classifier.candidates import GateMargins, LearningConfig
from classifier.training import TrainConfig
from tests.admin_ui.admin_ui_support import LiveServer, Merchant, sign_in

pytestmark = pytest.mark.browser

SMALL = LearningConfig(
    seed_rows=300,
    seed_holdout_rows=200,
    train=TrainConfig(
        max_rounds=10, stack_folds=2, max_word_features=2000, max_char_features=3000, max_tree_features=4000
    ),
)
CREATE = """mutation($s: String!, $b: String!) { createTicket(input: {subject: $s, body: $b}) {
  errors { code } ticket { id } classification { category modelVersion } } }"""
CORRECT = """mutation($t: ID!) { correctClassification(input: {ticketId: $t, category: "invoice", priority: LOW}) {
  errors { code } } }"""


@pytest.fixture
def small_training(live_server: LiveServer) -> Iterator[None]:
    services = live_server.services
    kept = services.learning
    services.learning = SMALL
    try:
        yield
    finally:
        services.learning = kept


def test_an_admin_trains_compares_promotes_and_rolls_back(
    page: Any, live_server: LiveServer, merchant: Merchant, small_training: None
) -> None:
    shipped = live_server.services.classifier.info.version
    sign_in(page, merchant.keys["admin"])
    page.get_by_test_id("nav-classifier").click()
    expect(page.get_by_test_id("models-none")).to_be_visible()
    expect(page.get_by_test_id("models-active-version")).to_have_text(shipped)
    for i in range(8):
        body = (
            f"Please send the zorblax slip for parcel {2000 + i}; my accountant needs the zorblax paperwork."
        )
        created = live_server.graphql(merchant.keys["partner"], CREATE, {"s": f"zorblax slip {i}", "b": body})
        ticket_id = created["createTicket"]["ticket"]["id"]
        assert (
            live_server.graphql(merchant.keys["agent"], CORRECT, {"t": ticket_id})["correctClassification"][
                "errors"
            ]
            == []
        )

    page.get_by_test_id("models-train").click()
    model = page.get_by_test_id("model")
    expect(model).to_have_count(1)
    expect(model).to_have_attribute("data-status", "READY", timeout=240_000)  # the page follows the progress
    expect(model.get_by_test_id("model-progress")).to_contain_text("on 300 seed rows and 6 corrected tickets")
    expect(model.get_by_test_id("model-gate")).to_contain_text("refuses")
    expect(model.locator("[data-testid=model-figure][data-slice=merchant]")).to_have_count(5)
    expect(model.locator("[data-testid=model-figure][data-slice=seed]")).to_have_count(5)
    model.get_by_test_id("model-promote").click()
    expect(page.get_by_test_id("models-error")).to_contain_text("worse than the active model")
    expect(model).to_have_attribute("data-status", "READY")

    live_server.services.learning = dataclasses.replace(SMALL, margins=GateMargins(1.0, 1.0, 1.0))
    page.get_by_test_id("model-promote").click()
    expect(page.get_by_test_id("model")).to_have_attribute("data-status", "ACTIVE")
    version = page.get_by_test_id("models-active-version").inner_text()
    assert version.startswith("merchant-v1-")
    served = live_server.graphql(
        merchant.keys["partner"], CREATE, {"s": "zorblax", "b": "Where is my zorblax slip?"}
    )
    assert served["createTicket"]["classification"] == {"category": "invoice", "modelVersion": version}

    page.get_by_test_id("models-rollback").click()
    expect(page.get_by_test_id("model")).to_have_attribute("data-status", "ROLLED_BACK")
    expect(page.get_by_test_id("models-active-version")).to_have_text(shipped)
    expect(page.get_by_test_id("models-rollback")).to_be_hidden()


def test_other_roles_have_no_classifier_page(page: Any, merchant: Merchant) -> None:
    for role in ("agent", "viewer"):
        sign_in(page, merchant.keys[role])
        expect(page.get_by_test_id("nav-classifier")).to_be_hidden()
        page.get_by_role("button", name="Sign out").click()
