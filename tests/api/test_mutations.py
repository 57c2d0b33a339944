"""Ticket mutations through HTTP: idempotency replay/mismatch, stale versions, the transition graph,
messages, assignment, partner updates and classification corrections."""

from __future__ import annotations

from storage.db import Database
from storage.tables import AuditEvent, IdempotencyRecord, Message, Ticket
from tests.api.conftest import CREATE, Api, create_ticket
from tests.conftest import MerchantKeys, count_rows

TRANSITION = """mutation($id: ID!, $to: Stage!, $v: Int!, $k: String) {
  transitionTicket(input: {ticketId: $id, to: $to, expectedVersion: $v}, idempotencyKey: $k) {
    replayed errors { code message field } ticket { id stage version } } }"""


def ticket_row(database: Database, ticket_id: str) -> Ticket:
    with database.read_only() as session:
        row = session.get(Ticket, ticket_id)
        assert row is not None
        session.expunge(row)
        return row


async def test_create_ticket_idempotency_replay_and_mismatch(
    api: Api, database: Database, merchant: MerchantKeys, other_merchant: MerchantKeys
) -> None:
    variables = {
        "input": {"subject": "Refund please", "body": "The mug arrived broken."},
        "key": "order-1001-a",
    }
    first = (await api.ok(CREATE, variables, key=merchant.keys["partner"]))["createTicket"]
    second = (await api.ok(CREATE, variables, key=merchant.keys["partner"]))["createTicket"]
    assert first["errors"] == [] and first["replayed"] is False
    assert second["replayed"] is True
    assert {**second, "replayed": False} == first
    assert count_rows(database, Ticket, merchant.merchant_id) == 1

    changed = {
        "input": {"subject": "Refund please!", "body": "The mug arrived broken."},
        "key": "order-1001-a",
    }
    mismatch = (await api.ok(CREATE, changed, key=merchant.keys["partner"]))["createTicket"]
    assert mismatch["ticket"] is None
    assert mismatch["errors"] == [
        {
            "code": "IDEMPOTENCY_MISMATCH",
            "field": "idempotencyKey",
            "message": mismatch["errors"][0]["message"],
        }
    ]
    assert count_rows(database, Ticket, merchant.merchant_id) == 1

    # Keys are per merchant: another merchant's identical key is a different request.
    theirs = (await api.ok(CREATE, variables, key=other_merchant.keys["partner"]))["createTicket"]
    assert theirs["replayed"] is False and theirs["ticket"]["id"] != first["ticket"]["id"]
    assert count_rows(database, IdempotencyRecord, merchant.merchant_id) == 1


async def test_transition_replay_does_not_apply_twice(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    assert ticket["stage"] == "TRIAGED"
    variables = {"id": ticket["id"], "to": "ESCALATED", "v": ticket["version"], "k": "esc-1"}
    first = (await api.ok(TRANSITION, variables, key=merchant.keys["agent"]))["transitionTicket"]
    assert first["errors"] == [] and first["ticket"]["stage"] == "ESCALATED"
    assert first["ticket"]["version"] == ticket["version"] + 1
    again = (await api.ok(TRANSITION, variables, key=merchant.keys["agent"]))["transitionTicket"]
    assert again["replayed"] is True and again["ticket"] == first["ticket"]
    assert ticket_row(database, ticket["id"]).version == ticket["version"] + 1


async def test_stale_version_is_a_conflict_and_changes_nothing(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    audit_before = count_rows(database, AuditEvent, merchant.merchant_id)
    stale = {"id": ticket["id"], "to": "ESCALATED", "v": ticket["version"] - 1}
    result = (await api.ok(TRANSITION, stale, key=merchant.keys["agent"]))["transitionTicket"]
    assert result["ticket"] is None
    assert [e["code"] for e in result["errors"]] == ["CONFLICT"]
    assert result["errors"][0]["field"] == "expectedVersion"
    row = ticket_row(database, ticket["id"])
    assert (row.stage, row.version) == ("triaged", ticket["version"])
    assert count_rows(database, AuditEvent, merchant.merchant_id) == audit_before


async def test_transition_outside_the_graph_is_refused(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    bad = {"id": ticket["id"], "to": "WAITING_ON_CUSTOMER", "v": ticket["version"]}
    result = (await api.ok(TRANSITION, bad, key=merchant.keys["agent"]))["transitionTicket"]
    assert [e["code"] for e in result["errors"]] == ["TRANSITION_NOT_ALLOWED"]
    row = ticket_row(database, ticket["id"])
    assert (row.stage, row.version) == ("triaged", ticket["version"])
    # Unknown stage names never reach the service: GraphQL rejects the enum value.
    body = await api.raw(TRANSITION, {**bad, "to": "LIMBO"}, key=merchant.keys["agent"])
    assert body["data"] is None and "LIMBO" in body["errors"][0]["message"]


async def test_roles_on_ticket_mutations(api: Api, merchant: MerchantKeys) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    # viewer cannot transition; partner can.
    args = {"id": ticket["id"], "to": "ESCALATED", "v": ticket["version"]}
    denied = (await api.ok(TRANSITION, args, key=merchant.keys["viewer"]))["transitionTicket"]
    assert [e["code"] for e in denied["errors"]] == ["FORBIDDEN"]
    allowed = (await api.ok(TRANSITION, args, key=merchant.keys["partner"]))["transitionTicket"]
    assert allowed["errors"] == [] and allowed["ticket"]["stage"] == "ESCALATED"
    # partner cannot assign or correct the classification.
    assign = (
        """mutation($id: ID!) { assignTicket(input: {ticketId: $id, teamId: "x"}) { errors { code } } }"""
    )
    assert (await api.ok(assign, {"id": ticket["id"]}, key=merchant.keys["partner"]))["assignTicket"][
        "errors"
    ][0]["code"] == "FORBIDDEN"
    correct = """mutation($id: ID!) { correctClassification(input: {ticketId: $id, priority: LOW}) {
        errors { code } } }"""
    for role in ("partner", "ai", "viewer"):
        errors = (await api.ok(correct, {"id": ticket["id"]}, key=merchant.keys[role]))[
            "correctClassification"
        ]
        assert errors["errors"][0]["code"] == "FORBIDDEN", role


async def test_messages_assignment_updates_and_corrections(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    admin = merchant.keys["admin"]
    team = await api.ok('mutation { createTeam(name: "Returns") { team { id name } } }', key=admin)
    team_id = team["createTeam"]["team"]["id"]
    agent = await api.ok(
        """mutation($t: [ID!]) { createAgent(name: "Ann", email: "ann@example.com", teamIds: $t, skills: ["en"]) {
             errors { code message } agent { id name teams { id name } } } }""",
        {"t": [team_id]},
        key=admin,
    )
    agent_id = agent["createAgent"]["agent"]["id"]
    assert agent["createAgent"]["agent"]["teams"] == [{"id": team_id, "name": "Returns"}]
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]

    message = await api.ok(
        """mutation($id: ID!) { addMessage(input: {ticketId: $id, body: "Sorry! Sending a new one."}) {
             errors { code } message { id authorType body } ticket { version sla { firstRespondedAt } } } }""",
        {"id": ticket["id"]},
        key=merchant.keys["agent"],
    )
    payload = message["addMessage"]
    assert payload["errors"] == [] and payload["message"]["authorType"] == "AGENT"
    assert payload["ticket"]["sla"]["firstRespondedAt"] is not None
    relayed = await api.ok(
        """mutation($id: ID!) { addMessage(input: {ticketId: $id, body: "Thanks", authorType: CUSTOMER}) {
             errors { code } message { authorType } } }""",
        {"id": ticket["id"]},
        key=merchant.keys["partner"],
    )
    assert relayed["addMessage"]["message"]["authorType"] == "CUSTOMER"
    assert count_rows(database, Message, merchant.merchant_id) == 2

    assigned = await api.ok(
        """mutation($id: ID!, $a: ID, $t: ID) { assignTicket(input: {ticketId: $id, agentId: $a, teamId: $t}) {
             errors { code message } ticket { stage assigneeId assignee { name } team { name } version } } }""",
        {"id": ticket["id"], "a": agent_id, "t": team_id},
        key=merchant.keys["agent"],
    )
    t = assigned["assignTicket"]["ticket"]
    assert assigned["assignTicket"]["errors"] == []
    assert (t["stage"], t["assigneeId"], t["assignee"]["name"], t["team"]["name"]) == (
        "ASSIGNED",
        agent_id,
        "Ann",
        "Returns",
    )

    updated = await api.ok(
        """mutation($id: ID!, $v: Int) { updateTicket(input: {ticketId: $id, expectedVersion: $v, tags: ["VIP", "gift"],
             customer: {vip: true, lifetimeValue: 1200.5}, order: {id: "1001", total: 59.9, currency: "eur"}}) {
             errors { code message field } ticket { tags customer { vip lifetimeValue } order { id total currency }
             version } } }""",
        {"id": ticket["id"], "v": t["version"]},
        key=merchant.keys["partner"],
    )
    u = updated["updateTicket"]
    assert u["errors"] == [], u
    assert u["ticket"]["tags"] == ["gift", "vip"]
    assert u["ticket"]["customer"] == {"vip": True, "lifetimeValue": 1200.5}
    assert u["ticket"]["order"]["id"] == "1001" and u["ticket"]["order"]["total"] == 59.9

    info = await api.ok("{ classifierInfo { labels priorities version } }", key=merchant.keys["viewer"])
    labels = info["classifierInfo"]["labels"]
    corrected = await api.ok(
        """mutation($id: ID!, $c: String) { correctClassification(input: {ticketId: $id, category: $c, priority: URGENT}) {
             errors { code } ticket { category priority } } }""",
        {"id": ticket["id"], "c": labels[-1]},
        key=merchant.keys["agent"],
    )
    assert corrected["correctClassification"]["ticket"] == {"category": labels[-1], "priority": "URGENT"}

    detail = await api.ok(
        """query($id: ID!) { ticket(id: $id) { messages { body authorType } } auditLog(ticketId: $id) { kind actor } }""",
        {"id": ticket["id"]},
        key=merchant.keys["viewer"],
    )
    assert [m["authorType"] for m in detail["ticket"]["messages"]] == ["AGENT", "CUSTOMER"]
    kinds = [e["kind"] for e in detail["auditLog"]]
    for kind in (
        "ticket.created",
        "ticket.routed",
        "ticket.transitioned",
        "message.added",
        "ticket.assigned",
        "ticket.updated",
        "classification.corrected",
    ):
        assert kind in kinds, kind


ADD_MESSAGE = """mutation($id: ID!, $a: MessageAuthor) {
  addMessage(input: {ticketId: $id, body: "Hello from us", authorType: $a}) {
    errors { code field message } message { authorType } ticket { sla { firstRespondedAt } } } }"""


async def test_a_message_author_comes_from_the_key_never_from_input(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]
    forged: list[tuple[str, str | None]] = [
        ("ai", "AGENT"),
        ("ai", "SYSTEM"),
        ("agent", "SYSTEM"),
        ("agent", "AI"),
        ("admin", "SYSTEM"),
    ]
    forged += [("partner", "AGENT"), ("partner", "SYSTEM"), ("agent", "CUSTOMER")]
    for role, claimed in forged:
        payload = (await api.ok(ADD_MESSAGE, {"id": ticket["id"], "a": claimed}, key=merchant.keys[role]))[
            "addMessage"
        ]
        assert payload["message"] is None, (role, claimed)
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("FORBIDDEN", "authorType")]
    # Nothing was written, and no forged reply counted as the first response.
    assert count_rows(database, Message, merchant.merchant_id) == 0
    assert ticket_row(database, ticket["id"]).first_responded_at is None

    # Without authorType, or naming its own author, each key posts as itself.
    own = {"partner": "CUSTOMER", "agent": "AGENT", "admin": "AGENT"}
    for role, author in own.items():
        for claimed in (None, author):
            payload = (
                await api.ok(ADD_MESSAGE, {"id": ticket["id"], "a": claimed}, key=merchant.keys[role])
            )["addMessage"]
            assert payload["errors"] == [] and payload["message"]["authorType"] == author, (role, claimed)
    assert count_rows(database, Message, merchant.merchant_id) == 6
    assert ticket_row(database, ticket["id"]).first_responded_at is not None
