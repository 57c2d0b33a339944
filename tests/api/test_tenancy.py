"""Tenant isolation: every query and mutation tried with another merchant's key and this merchant's ids
answers exactly as for ids that do not exist, and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storage.db import Database
from storage.tables import ActionRequest, ApiKey, Merchant, Ticket
from tests.api.conftest import Api, create_ticket
from tests.conftest import MerchantKeys

SETUP_TEAM = "mutation($n: String!) { createTeam(name: $n) { errors { code } team { id } } }"
SETUP_AGENT = """mutation($t: [ID!]) { createAgent(name: "Ann", email: "ann@example.com", teamIds: $t) {
  errors { code } agent { id } } }"""
REQUEST = """mutation($t: ID!) { requestAction(input: {ticketId: $t, type: REFUND, amount: 900}) {
  errors { code } action { id status } } }"""

# (name, document, variables with placeholders). Placeholders: TICKET, TEAM, AGENT, ACTION, KEY.
OPERATIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("ticket", "query($id: ID!) { ticket(id: $id) { id subject } }", {"id": "TICKET"}),
    ("auditLog", "query($id: ID) { auditLog(ticketId: $id) { id kind } }", {"id": "TICKET"}),
    (
        "tickets by team",
        "query($t: ID) { tickets(filter: {teamId: $t}) { totalCount edges { node { id } } } }",
        {"t": "TEAM"},
    ),
    (
        "tickets by assignee",
        "query($a: ID) { tickets(filter: {assigneeId: $a}) { totalCount } }",
        {"a": "AGENT"},
    ),
    (
        "addMessage",
        'mutation($id: ID!) { addMessage(input: {ticketId: $id, body: "hi"}) '
        "{ errors { code message field } message { id } } }",
        {"id": "TICKET"},
    ),
    (
        "assignTicket",
        "mutation($id: ID!) { assignTicket(input: {ticketId: $id, teamId: $id}) "
        "{ errors { code message field } ticket { id } } }",
        {"id": "TICKET"},
    ),
    (
        "assignTicket other agent",
        "mutation($id: ID!, $a: ID) { assignTicket(input: {ticketId: $id, agentId: $a}) "
        "{ errors { code message field } ticket { id } } }",
        {"id": "OWN_TICKET", "a": "AGENT"},
    ),
    (
        "assignTicket other team",
        "mutation($id: ID!, $t: ID) { assignTicket(input: {ticketId: $id, teamId: $t}) "
        "{ errors { code message field } ticket { id } } }",
        {"id": "OWN_TICKET", "t": "TEAM"},
    ),
    (
        "updateTicket",
        'mutation($id: ID!) { updateTicket(input: {ticketId: $id, tags: ["x"]}) '
        "{ errors { code message field } ticket { id } } }",
        {"id": "TICKET"},
    ),
    (
        "transitionTicket",
        "mutation($id: ID!) { transitionTicket(input: {ticketId: $id, to: ESCALATED, "
        "expectedVersion: 1}) { errors { code message field } ticket { id } } }",
        {"id": "TICKET"},
    ),
    (
        "correctClassification",
        "mutation($id: ID!) { correctClassification(input: {ticketId: $id, "
        "priority: LOW}) { errors { code message field } ticket { id } } }",
        {"id": "TICKET"},
    ),
    (
        "requestAction",
        "mutation($id: ID!) { requestAction(input: {ticketId: $id, type: TAG, "
        'params: {tags: ["x"]}}) { errors { code message field } action { id } decision { effect } } }',
        {"id": "TICKET"},
    ),
    (
        "approveAction",
        "mutation($id: ID!) { approveAction(id: $id) { errors { code message field } action { id } } }",
        {"id": "ACTION"},
    ),
    (
        "rejectAction",
        'mutation($id: ID!) { rejectAction(id: $id, reason: "no") { errors { code message field } '
        "action { id } } }",
        {"id": "ACTION"},
    ),
    (
        "simulate",
        "mutation($id: ID!) { simulate(cases: [{ticketId: $id}]) { errors { code message field } "
        "results { label } } }",
        {"id": "TICKET"},
    ),
    (
        "revokeApiKey",
        "mutation($id: ID!) { revokeApiKey(id: $id) { errors { code message field } apiKey { id } } }",
        {"id": "KEY"},
    ),
    (
        "createAgent in other team",
        'mutation($t: [ID!]) { createAgent(name: "Bo", email: "bo@example.com", '
        "teamIds: $t) { errors { code message field } agent { id } } }",
        {"t": ["TEAM"]},
    ),
]

FAKE = {
    "TICKET": "tkt_00000000000000000000",
    "TEAM": "team_00000000000000000000",
    "AGENT": "agt_00000000000000000000",
    "ACTION": "act_00000000000000000000",
    "KEY": "key_00000000000000000000",
}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return ids.get(value, value) if isinstance(value, str) else value


def _state(database: Database, merchant_id: str) -> str:
    """Everything of a merchant that a foreign request could have changed."""
    from sqlmodel import select

    with database.read_only() as session:
        tickets = session.exec(
            select(Ticket).where(Ticket.merchant_id == merchant_id).order_by(Ticket.id)
        ).all()
        actions = session.exec(select(ActionRequest).where(ActionRequest.merchant_id == merchant_id)).all()
        keys = session.exec(select(ApiKey).where(ApiKey.merchant_id == merchant_id)).all()
        merchant = session.get(Merchant, merchant_id)
        return json.dumps(
            [
                [t.model_dump(mode="json") for t in tickets],
                [a.model_dump(mode="json") for a in actions],
                [k.model_dump(mode="json") for k in keys],
                merchant.model_dump(mode="json") if merchant else None,
            ],
            sort_keys=True,
        )


@pytest.fixture
async def victim(api: Api, merchant: MerchantKeys) -> dict[str, str]:
    """Merchant A with a ticket, a team, an agent and a pending action request."""
    admin = merchant.keys["admin"]
    team = (await api.ok(SETUP_TEAM, {"n": "Billing"}, key=admin))["createTeam"]["team"]["id"]
    agent = (await api.ok(SETUP_AGENT, {"t": [team]}, key=admin))["createAgent"]["agent"]["id"]
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]["id"]
    action = (await api.ok(REQUEST, {"t": ticket}, key=merchant.keys["agent"]))["requestAction"]["action"][
        "id"
    ]
    return {
        "TICKET": ticket,
        "TEAM": team,
        "AGENT": agent,
        "ACTION": action,
        "KEY": merchant.key_ids["viewer"],
    }


@pytest.mark.parametrize(("name", "document", "variables"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
async def test_foreign_ids_answer_like_missing_ids(
    api: Api,
    database: Database,
    merchant: MerchantKeys,
    other_merchant: MerchantKeys,
    victim: dict[str, str],
    name: str,
    document: str,
    variables: dict[str, Any],
) -> None:
    own_ticket = (await create_ticket(api, other_merchant.keys["partner"]))["ticket"]["id"]
    before = _state(database, merchant.merchant_id)
    for role in ("admin", "agent", "partner"):
        key = other_merchant.keys[role]
        foreign = await api.raw(document, _fill(variables, {**victim, "OWN_TICKET": own_ticket}), key=key)
        missing = await api.raw(document, _fill(variables, {**FAKE, "OWN_TICKET": own_ticket}), key=key)
        assert foreign == missing, (name, role)
        assert victim["TICKET"] not in json.dumps(foreign)
    assert _state(database, merchant.merchant_id) == before


async def test_other_merchant_sees_and_counts_nothing(
    api: Api, merchant: MerchantKeys, other_merchant: MerchantKeys, victim: dict[str, str]
) -> None:
    key = other_merchant.keys["admin"]
    data = await api.ok(
        """{ tickets(first: 100) { totalCount edges { node { id } } } queue { openCount stages { count } }
             teams { id } agents { id } auditLog { id } rulesetVersions { version } apiKeys { id } }""",
        key=key,
    )
    assert data["tickets"] == {"totalCount": 0, "edges": []}
    assert data["queue"]["openCount"] == 0 and all(s["count"] == 0 for s in data["queue"]["stages"])
    assert data["teams"] == [] and data["agents"] == [] and data["auditLog"] == []
    assert data["rulesetVersions"] == []
    assert merchant.key_ids["admin"] not in [k["id"] for k in data["apiKeys"]]
    # And the victim itself does see its own.
    mine = await api.ok("{ tickets { totalCount } teams { id } }", key=merchant.keys["viewer"])
    assert mine["tickets"]["totalCount"] == 1 and mine["teams"] == [{"id": victim["TEAM"]}]
