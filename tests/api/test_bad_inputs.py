"""Bad inputs of every kind get a clear error and change nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storage.db import Database
from tests.api.conftest import CREATE, Api, create_ticket
from tests.api.test_tenancy import _state
from tests.conftest import MerchantKeys

BAD_CREATES: list[tuple[str, dict[str, Any], str]] = [
    ("subject not a string", {"subject": 123, "body": "x"}, "GRAPHQL"),
    ("channel not in enum", {"subject": "s", "body": "b", "channel": "PIGEON"}, "GRAPHQL"),
    ("tags not a list of strings", {"subject": "s", "body": "b", "tags": [{"a": 1}]}, "GRAPHQL"),
    ("order count not an int", {"subject": "s", "body": "b", "customer": {"orderCount": 1.5}}, "GRAPHQL"),
    ("empty ticket", {"subject": " ", "body": ""}, "INVALID_INPUT"),
    ("huge body", {"subject": "s", "body": "x" * 60_000}, "INVALID_INPUT"),
    ("huge subject", {"subject": "s" * 600, "body": "b"}, "INVALID_INPUT"),
    ("bad email", {"subject": "s", "body": "b", "customer": {"email": "not-an-email"}}, "INVALID_INPUT"),
    ("negative total", {"subject": "s", "body": "b", "order": {"total": -5}}, "INVALID_INPUT"),
    ("bad currency", {"subject": "s", "body": "b", "order": {"currency": "EURO"}}, "INVALID_INPUT"),
    ("too many tags", {"subject": "s", "body": "b", "tags": [f"t{i}" for i in range(60)]}, "INVALID_INPUT"),
    ("long tag", {"subject": "s", "body": "b", "tags": ["x" * 100]}, "INVALID_INPUT"),
    ("bad date", {"subject": "s", "body": "b", "order": {"createdAt": "yesterday"}}, "GRAPHQL"),
]


@pytest.mark.parametrize(("name", "fields", "expected"), BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
async def test_bad_ticket_input_changes_nothing(
    api: Api, database: Database, merchant: MerchantKeys, name: str, fields: dict[str, Any], expected: str
) -> None:
    before = _state(database, merchant.merchant_id)
    body = await api.raw(CREATE, {"input": fields}, key=merchant.keys["partner"])
    if expected == "GRAPHQL":
        assert body["data"] is None, body
        assert body["errors"][0]["message"] and "Unexpected error" not in body["errors"][0]["message"]
    else:
        payload = body["data"]["createTicket"]
        assert payload["ticket"] is None
        assert [e["code"] for e in payload["errors"]] == [expected], payload
        assert payload["errors"][0]["message"]
    assert _state(database, merchant.merchant_id) == before


async def test_non_finite_numbers_are_refused(api: Api, database: Database, merchant: MerchantKeys) -> None:
    before = _state(database, merchant.merchant_id)
    raw = json.dumps(
        {
            "query": CREATE,
            "variables": {"input": {"subject": "s", "body": "b", "order": {"total": float("nan")}}},
        }
    )
    response = await api.client.post(
        "/graphql",
        content=raw,
        headers={"authorization": f"Bearer {merchant.keys['partner']}", "content-type": "application/json"},
    )
    body = response.json()
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        errors = body.get("errors") or body["data"]["createTicket"]["errors"]
        assert errors
    assert _state(database, merchant.merchant_id) == before


async def test_unknown_ids_and_bad_arguments(api: Api, database: Database, merchant: MerchantKeys) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    before = _state(database, merchant.merchant_id)
    agent = merchant.keys["agent"]
    cases = [
        (
            """mutation { transitionTicket(input: {ticketId: "tkt_nope", to: ESCALATED, expectedVersion: 1}) {
             errors { code field } } }""",
            "transitionTicket",
            "NOT_FOUND",
        ),
        (
            """mutation($id: ID!) { assignTicket(input: {ticketId: $id, agentId: "agt_nope"}) {
             errors { code field } } }""",
            "assignTicket",
            "NOT_FOUND",
        ),
        (
            """mutation($id: ID!) { assignTicket(input: {ticketId: $id}) { errors { code field } } }""",
            "assignTicket",
            "INVALID_INPUT",
        ),
        (
            """mutation { approveAction(id: "act_nope") { errors { code field } } }""",
            "approveAction",
            "NOT_FOUND",
        ),
        (
            """mutation($id: ID!) { requestAction(input: {ticketId: $id, type: REFUND, amount: -1}) {
             errors { code field } } }""",
            "requestAction",
            "INVALID_INPUT",
        ),
        (
            """mutation($id: ID!) { requestAction(input: {ticketId: $id, type: TAG, params: [1, 2]}) {
             errors { code field } } }""",
            "requestAction",
            "INVALID_INPUT",
        ),
        (
            """mutation($id: ID!) { addMessage(input: {ticketId: $id, body: "   "}) { errors { code field } } }""",
            "addMessage",
            "INVALID_INPUT",
        ),
        (
            """mutation($id: ID!) { correctClassification(input: {ticketId: $id, category: "astrology"}) {
             errors { code field } } }""",
            "correctClassification",
            "INVALID_INPUT",
        ),
        (
            """mutation { activateRulesetVersion(version: 999) { errors { code field } } }""",
            "activateRulesetVersion",
            "NOT_FOUND",
        ),
    ]
    for document, field, code in cases:
        key = merchant.keys["admin"] if field == "activateRulesetVersion" else agent
        data = await api.ok(document, {"id": ticket["id"]} if "$id" in document else None, key=key)
        assert [e["code"] for e in data[field]["errors"]] == [code], (field, data)
    long_key = await api.ok(
        CREATE, {"input": {"subject": "s", "body": "b"}, "key": "k" * 201}, key=merchant.keys["partner"]
    )
    assert long_key["createTicket"]["errors"][0]["code"] == "INVALID_INPUT"
    assert _state(database, merchant.merchant_id) == before

    for document in (
        "{ tickets(first: 0) { edges { cursor } } }",
        "{ tickets(first: -3) { edges { cursor } } }",
        "{ auditLog(first: 100000) { id } }",
        '{ tickets(filter: {text: "%s"}) { totalCount } }' % ("x" * 300),
    ):
        body = await api.raw(document, key=merchant.keys["viewer"])
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "INVALID_INPUT", body


async def test_malformed_yaml_is_invalid_ruleset_and_publishes_nothing(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    before = _state(database, merchant.merchant_id)
    for source in ("name: [unclosed", "just a string", "{{{{", "- a\n- b\n", "\x01\x02"):
        validated = await api.ok(
            "mutation($s: String!) { validateRuleset(source: $s) { valid problems { message } errors { code } } }",
            {"s": source},
            key=merchant.keys["admin"],
        )
        assert validated["validateRuleset"]["valid"] is False, source
        assert validated["validateRuleset"]["problems"], source
        assert [e["code"] for e in validated["validateRuleset"]["errors"]] == ["INVALID_RULESET"]
        published = await api.ok(
            """mutation($s: String!) { publishRuleset(source: $s, message: "oops") {
                 rulesetVersion { version } errors { code field } problems { message } } }""",
            {"s": source},
            key=merchant.keys["admin"],
        )
        assert published["publishRuleset"]["rulesetVersion"] is None
        assert [e["code"] for e in published["publishRuleset"]["errors"]] == ["INVALID_RULESET"], source
    versions = await api.ok(
        "{ rulesetVersions { version } ruleset { version } }", key=merchant.keys["viewer"]
    )
    assert versions == {"rulesetVersions": [], "ruleset": {"version": None}}
    assert _state(database, merchant.merchant_id) == before
