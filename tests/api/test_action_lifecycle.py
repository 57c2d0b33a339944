"""The action lifecycle through HTTP on SQLite and PostgreSQL: an AI refund waits in the approver role's inbox
(``pendingActions``), is approved, goes EXECUTING with an ``action_executing`` event carrying what a partner
needs, and the partner's ``completeAction`` ends it EXECUTED or FAILED; repeats are idempotent, wrong states
are CONFLICT, rejections never execute, and an execution left hanging past the ruleset's timeout flags the
ticket (the scheduler on a controlled clock). ``previewAction`` decides without recording anything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bookbag.app import create_app
from policy import default_ruleset_path
from storage.db import Database
from tests.api.conftest import Api, make_settings
from tests.api.test_tenancy import _state
from tests.conftest import MerchantKeys
from workflow.live.bus import EventBus, TicketEvent
from workflow.scheduler import run_due_work
from workflow.services import WorkflowServices

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

CREATE = """mutation($input: CreateTicketInput!) { createTicket(input: $input) {
  errors { code message } ticket { id stage version needsHuman } } }"""
REQUEST = """mutation($t: ID!, $type: ActionType!, $amount: Float, $params: JSON) {
  requestAction(input: {ticketId: $t, type: $type, amount: $amount, params: $params}) {
    errors { code message field } decision { effect approvers decidingRules }
    action { id status } } }"""
ACTION_FIELDS = """id status type amount params executingAt executionDeadlineAt completedAt externalRef
  outcomeMessage requestedBy decidedBy completedBy timedOutAt"""
APPROVE = (
    f"mutation($id: ID!) {{ approveAction(id: $id) {{ errors {{ code }} action {{ {ACTION_FIELDS} }} }} }}"
)
REJECT = f"""mutation($id: ID!, $r: String!) {{ rejectAction(id: $id, reason: $r) {{
  errors {{ code }} action {{ {ACTION_FIELDS} reason }} }} }}"""
COMPLETE = f"""mutation($id: ID!, $o: ActionOutcome!, $ref: String, $m: String, $k: String) {{
  completeAction(id: $id, outcome: $o, externalRef: $ref, message: $m, idempotencyKey: $k) {{
    replayed errors {{ code message field }} action {{ {ACTION_FIELDS} }} }} }}"""
PENDING = """query($f: PendingActionFilter, $first: Int, $after: String) {
  pendingActions(filter: $f, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id type amount actor status createdAt handoffReason facts requestedBy
      decision { effect explanation decidingRules matchedRules approvers handoff }
      ticket { id subject stage messages { body } } } } } }"""
AUDIT = """query($t: ID) { auditLog(ticketId: $t) { kind actor actorName createdAt after } }"""
TICKET = "query($t: ID!) { ticket(id: $t) { needsHuman version actions { id status } } }"
PREVIEW = """query($t: ID!, $type: ActionType!, $amount: Float) {
  previewAction(input: {ticketId: $t, type: $type, amount: $amount}) {
    effect approvers decidingRules explanation } }"""


class Clock:
    """The services' clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lifecycle(services: WorkflowServices, clock: Clock) -> tuple[WorkflowServices, list[TicketEvent]]:
    """The session's services on the test's clock and a bus of their own, with every event recorded."""
    bus = EventBus()
    seen: list[TicketEvent] = []
    bus.add_listener(seen.append)
    return replace(services, clock=clock, bus=bus), seen


@pytest.fixture
async def api(
    database_url: str, database: Database, lifecycle: tuple[WorkflowServices, list[TicketEvent]]
) -> AsyncIterator[Api]:
    app = create_app(make_settings(database_url), services=lifecycle[0], database=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client)


async def new_ticket(api: Api, m: MerchantKeys) -> dict[str, Any]:
    data = await api.ok(
        CREATE,
        {
            "input": {
                "subject": "Refund for a broken kettle",
                "body": "The kettle I bought arrived broken, I would like my money back please.",
                "customer": {"email": "ana@example.com", "name": "Ana Ruiz"},
                "order": {"id": "ord-7781", "total": 120.0, "currency": "EUR"},
            }
        },
        key=m.keys["partner"],
    )
    assert data["createTicket"]["errors"] == []
    ticket: dict[str, Any] = data["createTicket"]["ticket"]
    return ticket


async def ask(api: Api, key: str, ticket_id: str, type_: str, **extra: Any) -> dict[str, Any]:
    data = await api.ok(REQUEST, {"t": ticket_id, "type": type_, **extra}, key=key)
    payload: dict[str, Any] = data["requestAction"]
    return payload


async def inbox(api: Api, key: str, **variables: Any) -> dict[str, Any]:
    data: dict[str, Any] = (await api.ok(PENDING, variables, key=key))["pendingActions"]
    return data


async def complete(api: Api, key: str, action_id: str, outcome: str, **extra: Any) -> dict[str, Any]:
    data = await api.ok(COMPLETE, {"id": action_id, "o": outcome, **extra}, key=key)
    payload: dict[str, Any] = data["completeAction"]
    return payload


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["errors"]]


async def test_an_ai_refund_waits_for_its_approver_then_the_partner_carries_it_out(
    api: Api,
    lifecycle: tuple[WorkflowServices, list[TicketEvent]],
    clock: Clock,
    make_merchant: Callable[..., MerchantKeys],
) -> None:
    m, other = make_merchant(), make_merchant()
    events = lifecycle[1]
    ticket = await new_ticket(api, m)
    asked = await ask(api, m.keys["ai"], ticket["id"], "REFUND", amount=80.0)
    assert asked["decision"] == {
        "effect": "REQUIRE_APPROVAL",
        "approvers": ["agent"],
        "decidingRules": ["ai-refund-needs-agent"],
    }
    action_id = asked["action"]["id"]
    assert asked["action"]["status"] == "PENDING_APPROVAL"

    # In the inbox of the role the rule names, with everything needed to decide …
    mine = await inbox(api, m.keys["agent"])
    assert mine["totalCount"] == 1 and [e["node"]["id"] for e in mine["edges"]] == [action_id]
    node = mine["edges"][0]["node"]
    assert node["actor"] == "AI" and node["amount"] == 80.0 and node["requestedBy"] == "ai key"
    assert node["decision"]["decidingRules"] == ["ai-refund-needs-agent"]
    assert "ai-refund-needs-agent" in node["decision"]["matchedRules"]
    assert node["decision"]["explanation"]
    assert node["facts"]["action"]["amount"] == 80.0 and node["facts"]["action"]["actor"] == "ai"
    assert node["ticket"]["subject"] == "Refund for a broken kettle"
    # … and in nobody else's: not another role's, not another merchant's.
    for role in ("admin", "ai", "partner"):
        assert (await inbox(api, m.keys[role]))["totalCount"] == 0, role
    assert (await inbox(api, other.keys["agent"]))["edges"] == []
    viewer = await api.raw(PENDING, {}, key=m.keys["viewer"])
    assert viewer["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # Approved by the agent: handed to the partner system, with a deadline.
    clock.now = T0 + timedelta(minutes=3)
    approved = (await api.ok(APPROVE, {"id": action_id}, key=m.keys["agent"]))["approveAction"]
    assert approved["errors"] == []
    action = approved["action"]
    assert action["status"] == "EXECUTING" and action["decidedBy"] == "agent key"
    executing_at = datetime.fromisoformat(action["executingAt"])
    assert executing_at == clock.now
    assert datetime.fromisoformat(action["executionDeadlineAt"]) == executing_at + timedelta(minutes=15)
    assert (await inbox(api, m.keys["agent"]))["totalCount"] == 0

    executing = [e for e in events if e.kind == "action_executing" and e.data["action_id"] == action_id]
    assert len(executing) == 1
    data = executing[0].data
    version = (await api.ok(TICKET, {"t": ticket["id"]}, key=m.keys["viewer"]))["ticket"]["version"]
    assert {k: data[k] for k in ("type", "amount", "ticket_id", "version", "status")} == {
        "type": "refund",
        "amount": 80.0,
        "ticket_id": ticket["id"],
        "version": version,
        "status": "executing",
    }
    assert data["customer"]["email"] == "ana@example.com" and data["order"]["id"] == "ord-7781"
    assert data["order"]["total"] == 120.0 and data["order"]["currency"] == "EUR"
    assert executing[0].merchant_id == m.merchant_id

    # Only a partner (or admin) key reports the outcome.
    for role in ("agent", "ai", "viewer"):
        refused = await complete(api, m.keys[role], action_id, "SUCCEEDED")
        assert codes(refused) == ["FORBIDDEN"], role
    assert codes(await complete(api, other.keys["partner"], action_id, "SUCCEEDED")) == ["NOT_FOUND"]

    clock.now = T0 + timedelta(minutes=5)
    done = await complete(api, m.keys["partner"], action_id, "SUCCEEDED", ref="re_3Pq81", m="refunded")
    assert done["errors"] == [] and done["replayed"] is False
    assert done["action"]["status"] == "EXECUTED" and done["action"]["externalRef"] == "re_3Pq81"
    assert done["action"]["completedBy"] == "partner key" and done["action"]["outcomeMessage"] == "refunded"
    assert datetime.fromisoformat(done["action"]["completedAt"]) == clock.now
    completed = [e for e in events if e.kind == "action_completed" and e.data["action_id"] == action_id]
    assert [e.data["outcome"] for e in completed] == ["succeeded"]

    # The same report again changes nothing and answers as before; a different one is a conflict.
    again = await complete(api, m.keys["partner"], action_id, "SUCCEEDED", ref="re_3Pq81")
    assert again["errors"] == [] and again["replayed"] is True and again["action"] == done["action"]
    assert codes(await complete(api, m.keys["partner"], action_id, "FAILED")) == ["CONFLICT"]
    assert codes(await complete(api, m.keys["admin"], action_id, "SUCCEEDED", ref="re_other")) == ["CONFLICT"]
    assert len([e for e in events if e.kind == "action_completed"]) == 1

    # The whole story in the audit trail, each step with who and when.
    log = (await api.ok(AUDIT, {"t": ticket["id"]}, key=m.keys["viewer"]))["auditLog"]
    steps = [(e["kind"], e["actorName"]) for e in reversed(log) if e["kind"].startswith("action.")]
    assert steps == [
        ("action.decided", "ai key"),
        ("action.approved", "agent key"),
        ("action.executing", "agent key"),
        ("action.completed", "partner key"),
    ]
    assert all(e["createdAt"] for e in log)
    completed_entry = next(e for e in log if e["kind"] == "action.completed")
    assert completed_entry["after"]["external_ref"] == "re_3Pq81"


async def test_a_failed_execution_flags_the_ticket_and_repeats_idempotently(
    api: Api, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ticket = await new_ticket(api, m)
    asked = await ask(api, m.keys["agent"], ticket["id"], "REFUND", amount=40.0)  # agent-money: allowed
    assert asked["action"]["status"] == "EXECUTING"
    action_id = asked["action"]["id"]
    failed = await complete(api, m.keys["partner"], action_id, "FAILED", m="card expired", k="report-1")
    assert failed["errors"] == [] and failed["action"]["status"] == "FAILED"
    assert failed["action"]["outcomeMessage"] == "card expired"
    state = (await api.ok(TICKET, {"t": ticket["id"]}, key=m.keys["viewer"]))["ticket"]
    assert state["needsHuman"] is True
    # A retried delivery with the same idempotency key replays; without one, the same report is a no-op.
    replay = await complete(api, m.keys["partner"], action_id, "FAILED", m="card expired", k="report-1")
    assert replay["replayed"] is True and replay["action"] == failed["action"]
    same = await complete(api, m.keys["partner"], action_id, "FAILED")
    assert same["errors"] == [] and same["replayed"] is True
    log = (await api.ok(AUDIT, {"t": ticket["id"]}, key=m.keys["viewer"]))["auditLog"]
    assert [e["kind"] for e in log].count("action.completed") == 1


async def test_concurrent_reports_of_one_outcome_record_it_once(
    api: Api,
    lifecycle: tuple[WorkflowServices, list[TicketEvent]],
    make_merchant: Callable[..., MerchantKeys],
) -> None:
    """A partner retrying while its first report is in flight: one completion, the rest answer as repeats."""
    m = make_merchant()
    ticket = await new_ticket(api, m)
    action_id = (await ask(api, m.keys["agent"], ticket["id"], "REFUND", amount=35.0))["action"]["id"]
    reports = await asyncio.gather(
        *(complete(api, m.keys["partner"], action_id, "SUCCEEDED", ref="re_once") for _ in range(5))
    )
    assert all(r["errors"] == [] and r["action"]["status"] == "EXECUTED" for r in reports)
    assert sorted(r["replayed"] for r in reports) == [False, True, True, True, True]
    log = (await api.ok(AUDIT, {"t": ticket["id"]}, key=m.keys["viewer"]))["auditLog"]
    assert [e["kind"] for e in log].count("action.completed") == 1
    events = lifecycle[1]
    assert len([e for e in events if e.kind == "action_completed" and e.data["action_id"] == action_id]) == 1


async def test_complete_action_in_the_wrong_state_is_a_conflict_and_changes_nothing(
    api: Api, database: Database, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ticket = await new_ticket(api, m)
    pending = await ask(api, m.keys["ai"], ticket["id"], "REFUND", amount=90.0)
    tagged = await ask(api, m.keys["agent"], ticket["id"], "TAG", params={"tags": ["kettle"]})
    assert tagged["action"]["status"] == "EXECUTED"  # internal: executed inside Bookbag at once
    before = _state(database, m.merchant_id)
    for action in (pending["action"], tagged["action"]):
        refused = await complete(api, m.keys["partner"], action["id"], "SUCCEEDED")
        assert codes(refused) == ["CONFLICT"], action
    assert codes(await complete(api, m.keys["partner"], "act_doesnotexist", "SUCCEEDED")) == ["NOT_FOUND"]
    bad = await complete(api, m.keys["partner"], pending["action"]["id"], "SUCCEEDED", ref=" ")
    assert codes(bad) == ["INVALID_INPUT"] and bad["errors"][0]["field"] == "externalRef"
    assert _state(database, m.merchant_id) == before


async def test_rejected_and_denied_requests_never_reach_executing(
    api: Api,
    lifecycle: tuple[WorkflowServices, list[TicketEvent]],
    make_merchant: Callable[..., MerchantKeys],
) -> None:
    m = make_merchant()
    events = lifecycle[1]
    ticket = await new_ticket(api, m)
    asked = await ask(api, m.keys["ai"], ticket["id"], "REFUND", amount=75.0)
    action_id = asked["action"]["id"]
    note_missing = await api.ok(REJECT, {"id": action_id, "r": "  "}, key=m.keys["agent"])
    assert codes(note_missing["rejectAction"]) == ["INVALID_INPUT"]
    rejected = (await api.ok(REJECT, {"id": action_id, "r": "order not returned yet"}, key=m.keys["agent"]))[
        "rejectAction"
    ]
    assert rejected["action"]["status"] == "REJECTED" and rejected["action"]["executingAt"] is None
    assert codes((await api.ok(APPROVE, {"id": action_id}, key=m.keys["agent"]))["approveAction"]) == [
        "CONFLICT"
    ]
    assert codes(await complete(api, m.keys["partner"], action_id, "SUCCEEDED")) == ["CONFLICT"]

    # A denied request is recorded and refused; it never executes either.
    closed = await api.ok(
        """mutation($id: ID!, $v: Int!) { transitionTicket(input: {ticketId: $id, to: CLOSED,
        expectedVersion: $v}) { errors { code } } }""",
        {
            "id": ticket["id"],
            "v": (await api.ok(TICKET, {"t": ticket["id"]}, key=m.keys["viewer"]))["ticket"]["version"],
        },
        key=m.keys["agent"],
    )
    assert closed["transitionTicket"]["errors"] == []
    denied = await ask(api, m.keys["agent"], ticket["id"], "REFUND", amount=10.0)
    assert codes(denied) == ["POLICY_DENIED"] and denied["action"]["status"] == "DENIED"
    assert codes(await complete(api, m.keys["partner"], denied["action"]["id"], "SUCCEEDED")) == ["CONFLICT"]

    assert not [e for e in events if e.kind == "action_executing" and e.merchant_id == m.merchant_id]
    log = (await api.ok(AUDIT, {"t": ticket["id"]}, key=m.keys["viewer"]))["auditLog"]
    assert "action.executing" not in [e["kind"] for e in log]


async def test_an_execution_left_hanging_flags_the_ticket_once(
    api: Api,
    database: Database,
    lifecycle: tuple[WorkflowServices, list[TicketEvent]],
    clock: Clock,
    make_merchant: Callable[..., MerchantKeys],
) -> None:
    services, events = lifecycle
    m = make_merchant()
    for team in ("support", "billing", "senior"):  # routing finds its team: nothing flags the ticket
        created = await api.ok(
            "mutation($n: String!) { createTeam(name: $n) { errors { code } } }",
            {"n": team},
            key=m.keys["admin"],
        )
        assert created["createTeam"]["errors"] == []
    ticket = await new_ticket(api, m)
    assert ticket["needsHuman"] is False
    action_id = (await ask(api, m.keys["agent"], ticket["id"], "REFUND", amount=30.0))["action"]["id"]

    def tick(minutes: float) -> list[str]:
        report = run_due_work(
            database, services, T0 + timedelta(minutes=minutes), merchant_ids=[m.merchant_id]
        )
        return report.timed_out_actions

    assert tick(14) == []
    assert (await api.ok(TICKET, {"t": ticket["id"]}, key=m.keys["viewer"]))["ticket"]["needsHuman"] is False
    assert tick(16) == [action_id]
    state = (await api.ok(TICKET, {"t": ticket["id"]}, key=m.keys["viewer"]))["ticket"]
    assert state["needsHuman"] is True
    timed_out = [e for e in events if e.kind == "action_timed_out" and e.merchant_id == m.merchant_id]
    assert len(timed_out) == 1 and timed_out[0].data["action_id"] == action_id
    assert timed_out[0].data["version"] == state["version"]
    assert tick(60) == []  # once
    log = (await api.ok(AUDIT, {"t": ticket["id"]}, key=m.keys["viewer"]))["auditLog"]
    entry = next(e for e in log if e["kind"] == "action.timed_out")
    assert entry["actor"] == "SYSTEM" and entry["actorName"] == "Bookbag"

    # The partner may still report late: the action completes as usual.
    late = await complete(api, m.keys["partner"], action_id, "SUCCEEDED", ref="re_late")
    assert late["errors"] == [] and late["action"]["status"] == "EXECUTED"
    assert late["action"]["timedOutAt"] is not None


async def test_the_execution_timeout_is_a_ruleset_setting(
    api: Api,
    database: Database,
    lifecycle: tuple[WorkflowServices, list[TicketEvent]],
    make_merchant: Callable[..., MerchantKeys],
) -> None:
    services = lifecycle[0]
    m = make_merchant()
    source = default_ruleset_path().read_text(encoding="utf-8")
    assert "defaults: {effect: deny}" in source
    source = source.replace("defaults: {effect: deny}", "defaults: {effect: deny, execution_timeout: 1h}")
    published = await api.ok(
        """mutation($s: String!) { publishRuleset(source: $s, message: "an hour for the store") {
        errors { code message } rulesetVersion { version } } }""",
        {"s": source},
        key=m.keys["admin"],
    )
    assert published["publishRuleset"]["errors"] == []
    ticket = await new_ticket(api, m)
    asked = await ask(api, m.keys["agent"], ticket["id"], "REFUND", amount=30.0)
    action = (await api.ok(TICKET, {"t": ticket["id"]}, key=m.keys["viewer"]))["ticket"]["actions"]
    assert action[0]["status"] == "EXECUTING"

    def tick(minutes: float) -> list[str]:
        return run_due_work(
            database, services, T0 + timedelta(minutes=minutes), merchant_ids=[m.merchant_id]
        ).timed_out_actions

    assert tick(30) == []
    assert tick(61) == [asked["action"]["id"]]

    bad = source.replace("execution_timeout: 1h", "execution_timeout: soon")
    refused = await api.ok(
        "mutation($s: String!) { validateRuleset(source: $s) { valid problems { code path } } }",
        {"s": bad},
        key=m.keys["admin"],
    )
    assert refused["validateRuleset"]["valid"] is False
    assert refused["validateRuleset"]["problems"][0]["code"] == "E_BAD_DURATION"


async def test_the_inbox_pages_oldest_first_and_filters(
    api: Api, clock: Clock, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ticket = await new_ticket(api, m)
    other_ticket = await new_ticket(api, m)
    ids = []
    for minute, (t, amount) in enumerate([(ticket, 60.0), (other_ticket, 70.0), (ticket, 80.0)]):
        clock.now = T0 + timedelta(minutes=minute)
        ids.append((await ask(api, m.keys["ai"], t["id"], "REFUND", amount=amount))["action"]["id"])
    first = await inbox(api, m.keys["agent"], first=2)
    assert [e["node"]["id"] for e in first["edges"]] == ids[:2]
    assert first["pageInfo"]["hasNextPage"] is True and first["totalCount"] == 3
    rest = await inbox(api, m.keys["agent"], first=2, after=first["pageInfo"]["endCursor"])
    assert [e["node"]["id"] for e in rest["edges"]] == ids[2:] and rest["pageInfo"]["hasNextPage"] is False
    only = await inbox(api, m.keys["agent"], f={"ticketId": ticket["id"]})
    assert [e["node"]["id"] for e in only["edges"]] == [ids[0], ids[2]] and only["totalCount"] == 2
    assert (await inbox(api, m.keys["agent"], f={"type": "CANCEL_ORDER"}))["totalCount"] == 0
    bad = await api.raw(PENDING, {"after": "not-a-cursor"}, key=m.keys["agent"])
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_preview_action_decides_without_recording(
    api: Api, database: Database, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ticket = await new_ticket(api, m)
    before = _state(database, m.merchant_id)
    big = (
        await api.ok(PREVIEW, {"t": ticket["id"], "type": "REFUND", "amount": 450.0}, key=m.keys["agent"])
    )["previewAction"]
    assert big["effect"] == "REQUIRE_APPROVAL" and big["approvers"] == ["admin"]
    assert big["decidingRules"] == ["agent-large-money"] and big["explanation"]
    small = (
        await api.ok(PREVIEW, {"t": ticket["id"], "type": "REFUND", "amount": 20.0}, key=m.keys["agent"])
    )["previewAction"]
    assert small["effect"] == "ALLOW"
    assert _state(database, m.merchant_id) == before  # nothing recorded
    viewer = await api.raw(PREVIEW, {"t": ticket["id"], "type": "REFUND"}, key=m.keys["viewer"])
    assert viewer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = make_merchant()
    missing = await api.raw(PREVIEW, {"t": ticket["id"], "type": "REFUND"}, key=other.keys["agent"])
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
