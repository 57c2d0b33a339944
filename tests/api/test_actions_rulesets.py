"""Action requests under the default ruleset, and ruleset publishing, rollback, simulation and backtests."""

from __future__ import annotations

from typing import Any

import pytest

from policy import default_ruleset_path
from storage.db import Database
from tests.api.conftest import Api, create_ticket
from tests.api.test_tenancy import _state
from tests.conftest import MerchantKeys

REQUEST = """mutation($t: ID!, $type: ActionType!, $amount: Float, $params: JSON, $k: String) {
  requestAction(input: {ticketId: $t, type: $type, amount: $amount, params: $params}, idempotencyKey: $k) {
    replayed errors { code message field }
    decision { effect matchedRules decidingRules approvers handoff explanation }
    action { id status type amount actor decision { effect } ticket { id tags } } } }"""
APPROVE = "mutation($id: ID!) { approveAction(id: $id) { errors { code } action { id status decidedAt } } }"
REJECT = """mutation($id: ID!, $r: String!) { rejectAction(id: $id, reason: $r) {
  errors { code field } action { id status reason } } }"""
TRANSITION = """mutation($id: ID!, $to: Stage!, $v: Int!) { transitionTicket(input: {ticketId: $id, to: $to,
  expectedVersion: $v}) { errors { code } ticket { stage version } } }"""


@pytest.fixture
def default_source() -> str:
    return default_ruleset_path().read_text(encoding="utf-8")


async def request(api: Api, key: str, ticket: str, type_: str, **extra: Any) -> dict[str, Any]:
    data = await api.ok(REQUEST, {"t": ticket, "type": type_, **extra}, key=key)
    payload: dict[str, Any] = data["requestAction"]
    return payload


async def test_allow_executes_and_records(api: Api, merchant: MerchantKeys) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    tagged = await request(api, merchant.keys["agent"], ticket["id"], "TAG", params={"tags": ["checked"]})
    assert tagged["errors"] == []
    assert tagged["decision"]["effect"] == "ALLOW" and "agent-everyday" in tagged["decision"]["matchedRules"]
    assert tagged["action"]["status"] == "EXECUTED"
    assert "checked" in tagged["action"]["ticket"]["tags"]
    refund = await request(api, merchant.keys["agent"], ticket["id"], "REFUND", amount=150.0)
    # an external action is handed to the partner system: executing until it reports (completeAction)
    assert refund["action"]["status"] == "EXECUTING" and refund["decision"]["decidingRules"] == [
        "agent-money"
    ]
    log = await api.ok(
        'query($t: ID) { auditLog(ticketId: $t, kind: "action.decided") { facts decision } }',
        {"t": ticket["id"]},
        key=merchant.keys["viewer"],
    )
    assert len(log["auditLog"]) == 2
    assert log["auditLog"][0]["facts"]["action"]["amount"] == 150.0  # the exact facts the decision saw


async def test_require_approval_then_approver_only(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    big = await request(api, merchant.keys["agent"], ticket["id"], "REFUND", amount=450.0, k="refund-450")
    assert big["errors"] == []
    assert big["decision"]["effect"] == "REQUIRE_APPROVAL" and big["decision"]["approvers"] == ["admin"]
    assert big["action"]["status"] == "PENDING_APPROVAL"
    again = await request(api, merchant.keys["agent"], ticket["id"], "REFUND", amount=450.0, k="refund-450")
    assert again["replayed"] is True and again["action"]["id"] == big["action"]["id"]
    action_id = big["action"]["id"]

    before = _state(database, merchant.merchant_id)
    for role in ("agent", "ai", "partner", "viewer"):
        denied = (await api.ok(APPROVE, {"id": action_id}, key=merchant.keys[role]))["approveAction"]
        assert [e["code"] for e in denied["errors"]] == ["FORBIDDEN"], role
    assert _state(database, merchant.merchant_id) == before

    approved = (await api.ok(APPROVE, {"id": action_id}, key=merchant.keys["admin"]))["approveAction"]
    assert approved["errors"] == [] and approved["action"]["status"] == "EXECUTING"
    twice = (await api.ok(APPROVE, {"id": action_id}, key=merchant.keys["admin"]))["approveAction"]
    assert [e["code"] for e in twice["errors"]] == ["CONFLICT"]

    other = await request(api, merchant.keys["agent"], ticket["id"], "REFUND", amount=300.0)
    queue_version = (await api.ok("{ queue { version } }", key=merchant.keys["viewer"]))["queue"]["version"]
    rejected = await api.ok(
        REJECT, {"id": other["action"]["id"], "r": "too much"}, key=merchant.keys["admin"]
    )
    # A rejection changes neither the ticket nor the queue: no new queue version for subscribers.
    after = (await api.ok("{ queue { version } }", key=merchant.keys["viewer"]))["queue"]["version"]
    assert after == queue_version
    assert rejected["rejectAction"]["action"] == {
        "id": other["action"]["id"],
        "status": "REJECTED",
        "reason": "too much",
    }
    empty_reason = await api.ok(REJECT, {"id": other["action"]["id"], "r": " "}, key=merchant.keys["admin"])
    assert empty_reason["rejectAction"]["errors"][0]["code"] in {"INVALID_INPUT", "CONFLICT"}


async def test_deny_is_recorded_and_refused(api: Api, merchant: MerchantKeys) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    closed = (
        await api.ok(
            TRANSITION,
            {"id": ticket["id"], "to": "CLOSED", "v": ticket["version"]},
            key=merchant.keys["agent"],
        )
    )["transitionTicket"]
    assert closed["errors"] == [] and closed["ticket"]["stage"] == "CLOSED"
    denied = await request(api, merchant.keys["agent"], ticket["id"], "REFUND", amount=5.0)
    assert [e["code"] for e in denied["errors"]] == ["POLICY_DENIED"]
    assert denied["decision"]["effect"] == "DENY" and denied["decision"]["decidingRules"] == [
        "no-money-on-closed"
    ]
    assert denied["action"]["status"] == "DENIED"
    actions = await api.ok(
        "query($t: ID!) { ticket(id: $t) { actions { status type } } }",
        {"t": ticket["id"]},
        key=merchant.keys["viewer"],
    )
    assert actions["ticket"]["actions"] == [{"status": "DENIED", "type": "REFUND"}]
    viewer = await request(api, merchant.keys["viewer"], ticket["id"], "TAG", params={"tags": ["x"]})
    assert [e["code"] for e in viewer["errors"]] == ["FORBIDDEN"]


PUBLISH = """mutation($s: String!, $m: String!) { publishRuleset(source: $s, message: $m) {
  errors { code message field } testFailures { name passed message } problems { code message line }
  rulesetVersion { version active digest message } } }"""


async def test_publish_activate_and_rollback(
    api: Api, database: Database, merchant: MerchantKeys, default_source: str
) -> None:
    admin = merchant.keys["admin"]
    initial = await api.ok("{ ruleset { version name source transitions { fromStage to } } }", key=admin)
    assert initial["ruleset"]["version"] is None and "permissions:" in initial["ruleset"]["source"]

    v1 = (await api.ok(PUBLISH, {"s": default_source, "m": "first"}, key=admin))["publishRuleset"]
    assert v1["errors"] == [] and v1["rulesetVersion"]["version"] == 1 and v1["rulesetVersion"]["active"]
    tighter = default_source.replace(
        "{fact: action.amount, lte: 200}", "{fact: action.amount, lte: 100}"
    ).replace("{fact: action.amount, gt: 200}", "{fact: action.amount, gt: 100}")
    assert tighter != default_source
    failing = (await api.ok(PUBLISH, {"s": tighter, "m": "tighter"}, key=admin))["publishRuleset"]
    assert [e["code"] for e in failing["errors"]] == ["RULESET_TESTS_FAILED"]
    assert any(f["name"] == "agents refund up to 200" for f in failing["testFailures"])
    assert failing["rulesetVersion"] is None

    tested = await api.ok(
        "mutation($s: String!) { testRuleset(source: $s) { passed results { name passed } } }",
        {"s": tighter},
        key=admin,
    )
    assert tested["testRuleset"]["passed"] is False

    renamed = default_source.replace("ruleset: default", "ruleset: default-v2")
    v2 = (await api.ok(PUBLISH, {"s": renamed, "m": "second"}, key=admin))["publishRuleset"]
    assert v2["rulesetVersion"]["version"] == 2
    versions = await api.ok(
        "{ rulesetVersions { version active message } ruleset { version name } }", key=admin
    )
    assert versions["rulesetVersions"] == [
        {"version": 2, "active": True, "message": "second"},
        {"version": 1, "active": False, "message": "first"},
    ]
    assert versions["ruleset"] == {"version": 2, "name": "default-v2"}

    for role in ("agent", "ai", "partner", "viewer"):
        forbidden = (await api.ok(PUBLISH, {"s": renamed, "m": "x"}, key=merchant.keys[role]))[
            "publishRuleset"
        ]
        assert [e["code"] for e in forbidden["errors"]] == ["FORBIDDEN"], role
    rollback = await api.ok(
        "mutation { activateRulesetVersion(version: 1) { errors { code } "
        "rulesetVersion { version active } } }",
        key=admin,
    )
    assert rollback["activateRulesetVersion"]["rulesetVersion"] == {"version": 1, "active": True}
    assert (await api.ok("{ ruleset { version name } }", key=admin))["ruleset"] == {
        "version": 1,
        "name": "default",
    }


SIMULATE = """mutation($s: String, $cases: [SimulationCaseInput!]!) { simulate(source: $s, cases: $cases) {
  errors { code message } results { label changed draft { effect decidingRules trace } active { effect }
  routing escalations } } }"""


async def test_simulate_and_backtest_change_nothing(
    api: Api, database: Database, merchant: MerchantKeys, default_source: str
) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    await request(api, merchant.keys["agent"], ticket["id"], "REFUND", amount=150.0)
    draft = default_source.replace("{fact: action.amount, lte: 200}", "{fact: action.amount, lte: 100}")
    before = _state(database, merchant.merchant_id)
    cases = [
        {
            "facts": {"ticket": {"stage": "in_progress"}},
            "action": {"type": "REFUND", "amount": 150, "actor": "AGENT"},
            "label": "agent refund 150",
        },
        {"ticketId": ticket["id"], "action": {"type": "TAG", "params": {"tags": ["x"]}}},
    ]
    sim = (await api.ok(SIMULATE, {"s": draft, "cases": cases}, key=merchant.keys["agent"]))["simulate"]
    assert sim["errors"] == []
    first, second = sim["results"]
    assert first["label"] == "agent refund 150"
    assert (
        first["active"]["effect"] == "ALLOW"
        and first["draft"]["effect"] == "DENY"
        and first["changed"] is True
    )
    assert first["draft"]["trace"] is not None
    assert second["label"] == f"ticket {ticket['id']}" and second["changed"] is False
    active_only = (await api.ok(SIMULATE, {"cases": cases[:1]}, key=merchant.keys["viewer"]))["simulate"]
    assert active_only["results"][0]["draft"]["effect"] == "ALLOW"

    report = await api.ok(
        "mutation($s: String!) { backtest(source: $s, limit: 100) { errors { code } report } }",
        {"s": draft},
        key=merchant.keys["admin"],
    )
    assert report["backtest"]["errors"] == []
    assert report["backtest"]["report"]["cases_considered"] == 1
    bad = await api.ok(SIMULATE, {"s": "ruleset: [", "cases": cases[:1]}, key=merchant.keys["agent"])
    assert [e["code"] for e in bad["simulate"]["errors"]] == ["INVALID_RULESET"]
    unknown = await api.ok(SIMULATE, {"cases": [{"ticketId": "tkt_nope"}]}, key=merchant.keys["agent"])
    assert [e["code"] for e in unknown["simulate"]["errors"]] == ["NOT_FOUND"]
    assert _state(database, merchant.merchant_id) == before


async def test_queue_and_classifier_info(api: Api, merchant: MerchantKeys) -> None:
    created = [(await create_ticket(api, merchant.keys["partner"]))["ticket"] for _ in range(3)]
    data = await api.ok(
        """{ queue { version openCount generatedAt stages { stage count oldestOpenAt
        oldestAgeSeconds slaBreached oldestTicket { id } } timeInStage { fromStage toStage count p50Seconds } }
        classifierInfo { version labels priorities } }""",
        key=merchant.keys["viewer"],
    )
    queue = data["queue"]
    assert queue["openCount"] == 3 and queue["version"] >= 3
    triaged = next(s for s in queue["stages"] if s["stage"] == "TRIAGED")
    assert triaged["count"] == 3 and triaged["oldestTicket"]["id"] == created[0]["id"]
    assert any(
        d["fromStage"] == "NEW" and d["toStage"] == "TRIAGED" and d["count"] == 3
        for d in queue["timeInStage"]
    )
    assert data["classifierInfo"]["version"] and "other" in data["classifierInfo"]["labels"]
