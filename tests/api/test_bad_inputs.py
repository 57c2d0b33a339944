"""Bad inputs of every kind get a clear error and change nothing, identically on SQLite and PostgreSQL; none
of them leaves a traceback in the log."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from storage import tables
from storage.db import Database
from tests.api.conftest import CREATE, Api, create_ticket
from tests.api.test_tenancy import _state
from tests.conftest import MerchantKeys, count_rows

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
    if expected == "GRAPHQL":  # refused by GraphQL's own coercion, coded like every bad input
        assert body["data"] is None, body
        error = body["errors"][0]
        assert error["message"] and "Unexpected error" not in error["message"]
        assert error["extensions"]["code"] == "INVALID_INPUT", error
        assert error["extensions"]["field"].startswith("input."), error
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


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Bad input is the client's mistake: nothing of it may reach the log as a traceback (or an error)."""
    with caplog.at_level(logging.DEBUG):
        yield
    flooded = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not flooded, [r.getMessage()[:200] for r in flooded]


def _refusal(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT", error
    assert "Unexpected error" not in error["message"]
    return dict(error)


async def _post_raw(api: Api, key: str, raw: str | bytes) -> Any:
    return await api.client.post(
        "/graphql",
        content=raw,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )


SIMULATE = """mutation($cases: [SimulationCaseInput!]!) { simulate(cases: $cases) {
  errors { code field } results { label } } }"""
NAIVE = "2026-03-01T09:00:00"


@pytest.mark.usefixtures("no_tracebacks")
async def test_naive_datetimes_are_invalid_input(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    await create_ticket(api, merchant.keys["partner"])
    before = _state(database, merchant.merchant_id)
    viewer, partner = merchant.keys["viewer"], merchant.keys["partner"]
    naive_cursor = base64.urlsafe_b64encode(json.dumps([NAIVE, "tkt_x"]).encode()).decode()
    page = "query($after: String) { tickets(after: $after) { edges { cursor } } }"
    cursor = await api.raw(page, {"after": naive_cursor}, key=viewer)
    assert cursor["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "after"}

    by_filter = "query($filter: TicketFilter) { tickets(filter: $filter) { totalCount } }"
    variable = _refusal(await api.raw(by_filter, {"filter": {"createdAfter": NAIVE}}, key=viewer))
    assert variable["extensions"]["field"] == "filter.createdAfter"
    assert "time zone" in variable["message"]
    literal = _refusal(
        await api.raw(f'{{ tickets(filter: {{createdAfter: "{NAIVE}"}}) {{ totalCount }} }}', key=viewer)
    )
    assert literal["extensions"]["field"] == "filter.createdAfter"

    order = {"subject": "s", "body": "b", "order": {"createdAt": NAIVE}}
    created = _refusal(await api.raw(CREATE, {"input": order}, key=partner))
    assert created["extensions"]["field"] == "input.order.createdAt"

    case = {"facts": {}, "timeline": [{"at": f"{NAIVE}Z", "stage": "NEW"}, {"at": NAIVE, "stage": "TRIAGED"}]}
    timeline = _refusal(await api.raw(SIMULATE, {"cases": [case]}, key=viewer))
    assert timeline["extensions"]["field"] == "cases[0].timeline[1].at"

    # With an offset the same values are fine.
    aware = await api.ok(by_filter, {"filter": {"createdAfter": f"{NAIVE}+02:00"}}, key=viewer)
    assert aware["tickets"]["totalCount"] == 1
    assert _state(database, merchant.merchant_id) == before


BIG = "1" + "0" * 400  # 10**400: an integer no float can hold


@pytest.mark.usefixtures("no_tracebacks")
async def test_numbers_no_float_can_hold_are_invalid_input(api: Api, merchant: MerchantKeys) -> None:
    viewer = merchant.keys["viewer"]
    action = {"type": "REFUND", "amount": 5}
    for number, message in ((BIG, "64 bits"), ("1e400", "finite")):
        case = '{"facts": {"order": {"total": NUMBER}}, "action": ACTION}'
        case = case.replace("NUMBER", number).replace("ACTION", json.dumps(action))
        raw = '{"query": ' + json.dumps(SIMULATE) + ', "variables": {"cases": [' + case + "]}}"
        response = await _post_raw(api, viewer, raw)
        error = _refusal(response.json())
        assert error["extensions"]["field"] == "cases[0].facts.order.total", error
        assert message in error["message"]
    literal = "mutation { simulate(cases: [{facts: {order: {total: BIG}}}]) { errors { code } } }"
    refused = _refusal(await api.raw(literal.replace("BIG", BIG), key=viewer))
    assert refused["extensions"]["field"] == "cases[0].facts.order.total"
    # Large but representable amounts are simulated (the engine once refused "1e+16"-style doubles).
    for total in (10**18, -(10**17), 1e300, 1e-300):
        facts_case = {"facts": {"order": {"total": total}}, "action": action}
        ok = await api.ok(SIMULATE, {"cases": [facts_case]}, key=viewer)
        assert ok["simulate"]["errors"] == [], total


NUL = "a\x00b"
SURROGATE = "\ud800"
ADD_MESSAGE = """mutation($input: AddMessageInput!, $key: String) { addMessage(input: $input, idempotencyKey: $key) {
  errors { code field } } }"""
VALIDATE = "mutation($source: String!) { validateRuleset(source: $source) { valid errors { code } } }"


def _text_cases(ticket_id: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(role, document, variables, field) for every way text reaches storage."""
    cases: list[tuple[str, str, dict[str, Any], str]] = []
    for bad in (NUL, SURROGATE):
        cases += [
            ("partner", CREATE, {"input": {"subject": bad, "body": "b"}}, "input.subject"),
            ("partner", CREATE, {"input": {"subject": "s", "body": bad}}, "input.body"),
            ("partner", CREATE, {"input": {"subject": "s", "body": "b"}, "key": f"k{bad}"}, "key"),
            (
                "partner",
                CREATE,
                {"input": {"subject": "s", "body": "b", "tags": ["ok", bad]}},
                "input.tags[1]",
            ),
            ("agent", ADD_MESSAGE, {"input": {"ticketId": ticket_id, "body": bad}}, "input.body"),
            ("admin", VALIDATE, {"source": f"name: x{bad}"}, "source"),
        ]
    return cases


@pytest.mark.usefixtures("no_tracebacks")
async def test_nul_and_unpaired_surrogates_are_refused_on_every_backend(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    before = _state(database, merchant.merchant_id)
    messages = count_rows(database, tables.Message, merchant.merchant_id)
    for role, document, variables, field in _text_cases(ticket["id"]):
        # json.dumps escapes a lone surrogate as \ud800, as a client's JSON encoder would.
        raw = json.dumps({"query": document, "variables": variables})
        error = _refusal((await _post_raw(api, merchant.keys[role], raw)).json())
        assert error["extensions"]["field"] == field, (variables, error)
    literal = (
        'mutation($id: ID!) { addMessage(input: {ticketId: $id, body: "a\\u0000b"}) { errors { code } } }'
    )
    error = _refusal(await api.raw(literal, {"id": ticket["id"]}, key=merchant.keys["agent"]))
    assert error["extensions"]["field"] == "input.body"
    assert _state(database, merchant.merchant_id) == before
    assert count_rows(database, tables.Message, merchant.merchant_id) == messages
    # Ordinary non-ASCII text (accents, emoji: a surrogate pair in JSON) is stored as sent.
    emoji = await create_ticket(api, merchant.keys["partner"], subject="Café \U0001f4e6 pas arrivé")
    assert emoji["ticket"]["subject"] == "Café \U0001f4e6 pas arrivé"


MALFORMED_BODIES: list[tuple[str, bytes]] = [
    ("not JSON", b"{not json"),
    ("not UTF-8", b'{"query": "\xff\xfe"}'),
    ("array 5,000 deep", b"[" * 5000 + b"]" * 5000),
    (
        "variables 5,000 deep",
        b'{"query": "{ me { role } }", "variables": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
    ),
    ("a batch of non-objects", b"[1, 2]"),
    ("a number", b"5"),
    ("query not a string", b'{"query": 5}'),
    ("variables not an object", b'[{"query": "{ me { role } }", "variables": [1]}]'),
]


@pytest.mark.usefixtures("no_tracebacks")
@pytest.mark.parametrize(("name", "raw"), MALFORMED_BODIES, ids=[m[0] for m in MALFORMED_BODIES])
async def test_malformed_bodies_get_400_with_a_graphql_error(
    api: Api, merchant: MerchantKeys, name: str, raw: bytes
) -> None:
    response = await _post_raw(api, merchant.keys["viewer"], raw)
    assert response.status_code == 400, (name, response.text[:200])
    assert response.headers["content-type"].startswith("application/json")
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "INVALID_INPUT"} and error["message"], error


async def test_json_nesting_within_the_cap_is_accepted(api: Api, merchant: MerchantKeys) -> None:
    facts: dict[str, Any] = {"leaf": 1}
    for _ in range(40):
        facts = {"a": facts}
    body = await api.ok(SIMULATE, {"cases": [{"facts": facts}]}, key=merchant.keys["viewer"])
    assert body["simulate"]["errors"] == []


@pytest.mark.usefixtures("no_tracebacks")
async def test_errors_about_the_request_itself_are_coded(api: Api, merchant: MerchantKeys) -> None:
    viewer = merchant.keys["viewer"]
    cases: list[tuple[str, dict[str, Any] | None, str | None]] = [
        ("{ me { ", None, None),  # syntax
        ("{ tickt { id } }", None, None),  # validation
        ("query($n: Int!) { tickets(first: $n) { totalCount } }", {}, "n"),  # a required variable missing
        ("query($s: Stage) { tickets(filter: {stage: $s}) { totalCount } }", {"s": "NOPE"}, "s"),
        (
            "query($f: TicketFilter) { tickets(filter: $f) { totalCount } }",
            {"f": {"openOnly": 3}},
            "f.openOnly",
        ),
    ]
    for query, variables, field in cases:
        error = _refusal(await api.raw(query, variables, key=viewer))
        assert error["extensions"].get("field") == field, (query, error)
