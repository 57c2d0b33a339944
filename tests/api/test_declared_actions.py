"""External action types a ruleset declares (``actions: {external: [...]}``), through HTTP on SQLite and
PostgreSQL: its rules name them, ``requestAction`` takes them as ``customType`` for that merchant only (a
clear INVALID_INPUT otherwise, writing nothing), and they go the way of a built-in external action —
approval, EXECUTING, an ``action.executing`` webhook a real receiver verifies, ``completeAction``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from bookbag.app import create_app
from policy import default_ruleset_path
from storage.db import Database
from tests.api.conftest import Api, make_settings
from tests.api.test_action_lifecycle import APPROVE, COMPLETE, PENDING, PREVIEW, new_ticket
from tests.api.test_tenancy import _state
from tests.conftest import MerchantKeys
from tests.webhooks.conftest import Receiver
from tests.webhooks.conftest import receiver as receiver
from tests.webhooks.test_webhooks_api import register
from workflow.services import WorkflowServices
from workflow.webhooks.delivery import Sender
from workflow.webhooks.dispatcher import WebhookDispatcher

REQUEST = """mutation($t: ID!, $type: ActionType, $custom: String, $amount: Float, $params: JSON) {
  requestAction(input: {ticketId: $t, type: $type, customType: $custom, amount: $amount, params: $params}) {
    errors { code message field } decision { effect approvers decidingRules }
    action { id status type customType params } } }"""
PUBLISH = """mutation($s: String!) { publishRuleset(source: $s, message: "labels") {
  errors { code message } problems { code message } rulesetVersion { version } } }"""
PREVIEW_CUSTOM = """query($t: ID!, $custom: String) {
  previewAction(input: {ticketId: $t, customType: $custom}) { effect approvers decidingRules } }"""

DECLARATION = """
actions:
  external: [create_return_label, loyalty_points]
"""
RULES = """
  - id: ai-return-label
    description: The AI may ask for a return label; an agent approves
    actors: [ai]
    actions: [create_return_label]
    effect: require_approval
    approvers: [agent]
  - id: agent-points
    actors: [agent]
    when: {all: [{fact: action.type, eq: loyalty_points}, {fact: action.amount, lte: 500}]}
    effect: allow
"""


def declaring_source() -> str:
    source = default_ruleset_path().read_text()
    source = source.replace("\npermissions:\n", f"{DECLARATION}\npermissions:\n{RULES}", 1)
    assert "create_return_label" in source
    return source


@pytest.fixture
async def api(database_url: str, database: Database, services: WorkflowServices) -> AsyncIterator[Api]:
    app = create_app(
        make_settings(database_url, webhook_allow_private=True), services=services, database=database
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client)


async def ask(api: Api, key: str, ticket_id: str, **variables: Any) -> dict[str, Any]:
    payload: dict[str, Any] = (await api.ok(REQUEST, {"t": ticket_id, **variables}, key=key))["requestAction"]
    return payload


async def test_a_declared_external_action_is_approved_executed_and_delivered(
    api: Api,
    database: Database,
    services: WorkflowServices,
    make_merchant: Callable[..., MerchantKeys],
    receiver: Receiver,
) -> None:
    m = make_merchant()
    published = (await api.ok(PUBLISH, {"s": declaring_source()}, key=m.keys["admin"]))["publishRuleset"]
    assert published["errors"] == [] and published["rulesetVersion"], published
    _, secret = await register(api, m, receiver.url, ["action.executing", "action.completed"])
    ticket = await new_ticket(api, m)

    preview = await api.ok(
        PREVIEW_CUSTOM, {"t": ticket["id"], "custom": "create_return_label"}, key=m.keys["ai"]
    )
    assert preview["previewAction"]["effect"] == "REQUIRE_APPROVAL"

    asked = await ask(
        api, m.keys["ai"], ticket["id"], custom="create_return_label", params={"carrier": "dhl"}
    )
    assert asked["errors"] == []
    assert asked["decision"] == {
        "effect": "REQUIRE_APPROVAL",
        "approvers": ["agent"],
        "decidingRules": ["ai-return-label"],
    }
    action = asked["action"]
    assert action["type"] is None and action["customType"] == "create_return_label"
    assert action["status"] == "PENDING_APPROVAL"

    # In the agent's inbox, also when filtered by the declared type.
    listed = await api.ok(PENDING, {"f": {"customType": "create_return_label"}}, key=m.keys["agent"])
    assert [e["node"]["id"] for e in listed["pendingActions"]["edges"]] == [action["id"]]
    refund_only = await api.ok(PENDING, {"f": {"type": "REFUND"}}, key=m.keys["agent"])
    assert refund_only["pendingActions"]["edges"] == []

    approved = (await api.ok(APPROVE, {"id": action["id"]}, key=m.keys["agent"]))["approveAction"]
    assert approved["errors"] == [] and approved["action"]["status"] == "EXECUTING"

    # The outbox carries it: the receiver gets action.executing with the declared type, signed.
    dispatcher = WebhookDispatcher(database, services, Sender(timeout=5, allow_private=True))
    try:
        await dispatcher.run_once()
        received = await asyncio.to_thread(receiver.wait_for, 1)
        body = Webhook(secret).verify(received[0].body, received[0].headers)
        assert body["type"] == "action.executing"
        assert body["data"]["action"]["type"] == "create_return_label"
        assert body["data"]["action"]["params"] == {"carrier": "dhl"}
        assert body["data"]["action"]["status"] == "executing"

        done = (
            await api.ok(
                COMPLETE, {"id": action["id"], "o": "SUCCEEDED", "ref": "lbl_991"}, key=m.keys["partner"]
            )
        )["completeAction"]
        assert done["errors"] == [] and done["action"]["status"] == "EXECUTED"
        assert done["action"]["externalRef"] == "lbl_991"
        await dispatcher.run_once()
        received = await asyncio.to_thread(receiver.wait_for, 2)
        completed = Webhook(secret).verify(received[1].body, received[1].headers)
        assert completed["type"] == "action.completed"
        assert completed["data"]["action"]["type"] == "create_return_label"
    finally:
        await dispatcher.sender.close()

    # Allowed outright for an agent within the rule's limit: straight to EXECUTING, as a refund would.
    points = await ask(api, m.keys["agent"], ticket["id"], custom="loyalty_points", amount=100.0)
    assert points["errors"] == [] and points["action"]["status"] == "EXECUTING"
    denied = await ask(api, m.keys["agent"], ticket["id"], custom="loyalty_points", amount=900.0)
    assert [e["code"] for e in denied["errors"]] == ["POLICY_DENIED"]
    assert denied["action"]["status"] == "DENIED"


async def test_undeclared_types_are_refused_with_a_clear_error_and_write_nothing(
    api: Api, database: Database, make_merchant: Callable[..., MerchantKeys]
) -> None:
    declaring, other = make_merchant(), make_merchant()
    published = await api.ok(PUBLISH, {"s": declaring_source()}, key=declaring.keys["admin"])
    assert published["publishRuleset"]["errors"] == []
    ticket = await new_ticket(api, other)
    before = _state(database, other.merchant_id)

    # Declared by another merchant's ruleset only: this merchant's active ruleset does not know it.
    refused = await ask(api, other.keys["ai"], ticket["id"], custom="create_return_label")
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("INVALID_INPUT", "type")]
    message = refused["errors"][0]["message"]
    assert "create_return_label" in message and "declares no others" in message
    assert refused["action"] is None

    # Neither or both of type and customType; a built-in given as customType.
    for variables in ({}, {"type": "REFUND", "custom": "create_return_label"}):
        both = await ask(api, other.keys["ai"], ticket["id"], **variables)
        assert [(e["code"], e["field"]) for e in both["errors"]] == [("INVALID_INPUT", "type")]
    builtin = await ask(api, other.keys["ai"], ticket["id"], custom="refund")
    assert [(e["code"], e["field"]) for e in builtin["errors"]] == [("INVALID_INPUT", "customType")]
    preview = await api.raw(
        PREVIEW_CUSTOM, {"t": ticket["id"], "custom": "create_return_label"}, key=other.keys["ai"]
    )
    assert preview["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert _state(database, other.merchant_id) == before

    # The declaring merchant is told which types its ruleset declares when it misspells one.
    own = await new_ticket(api, declaring)
    typo = await ask(api, declaring.keys["ai"], own["id"], custom="create_return_lable")
    assert "declares: create_return_label, loyalty_points" in typo["errors"][0]["message"]


# The built-in preview query still takes the enum (no regression for clients sending `type`).
async def test_the_built_in_types_still_go_by_the_enum(
    api: Api, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ticket = await new_ticket(api, m)
    asked = await ask(api, m.keys["ai"], ticket["id"], type="REFUND", amount=80.0)
    assert asked["errors"] == [] and asked["action"]["type"] == "REFUND"
    assert asked["action"]["customType"] is None
    preview = await api.ok(PREVIEW, {"t": ticket["id"], "type": "REFUND", "amount": 80.0}, key=m.keys["ai"])
    assert preview["previewAction"]["effect"] == "REQUIRE_APPROVAL"
