"""A routing rule's ``set`` through createTicket (SQLite and PostgreSQL), a route to a team the merchant lacks,
and the W_UNKNOWN_TEAM warning at publish: all through real HTTP."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, create_ticket
from tests.conftest import MerchantKeys

# The default stage graph; no handoff rules, so `needs_human` can only come from routing.
RULESET = """\
ruleset: outputs
stages: [new, triaged, assigned, in_progress, waiting_on_customer, escalated, resolved, closed]
transitions:
  new: [triaged]
  triaged: [assigned, escalated, resolved, closed]
  assigned: [in_progress, escalated, triaged, waiting_on_customer, resolved]
  in_progress: [waiting_on_customer, escalated, resolved, assigned]
  waiting_on_customer: [in_progress, resolved, closed]
  escalated: [assigned, in_progress, resolved, triaged]
  resolved: [closed, in_progress]
  closed: []
routing:
  - id: safety
    when: {fact: ticket.body, matches: "(?i)smoke"}
    assign: {team: Safety}
    set: {priority: urgent, category: safety_hazard, tags: [safety], needs_human: true}
  - id: ghost
    when: {fact: ticket.body, matches: "(?i)ghost"}
    assign: {team: Billing}
  - id: rest
    assign: {team: Support}
"""

PUBLISH = """mutation($s: String!, $k: String) { publishRuleset(source: $s, message: "outputs", idempotencyKey: $k) {
  replayed errors { code message } rulesetVersion { version active }
  warnings { code message line col path severity } } }"""
VALIDATE = """mutation($s: String!) { validateRuleset(source: $s) { valid warnings { code line path } } }"""
TICKET = "query($id: ID!) { ticket(id: $id) { category priority tags needsHuman teamId } }"


async def create_team(api: Api, admin: str, name: str) -> str:
    data = await api.ok(
        "mutation($n: String!) { createTeam(name: $n) { errors { code } team { id } } }",
        {"n": name},
        key=admin,
    )
    team_id: str = data["createTeam"]["team"]["id"]
    return team_id


async def publish(api: Api, admin: str, key: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = (await api.ok(PUBLISH, {"s": RULESET, "k": key}, key=admin))["publishRuleset"]
    return payload


async def test_routing_set_updates_the_ticket(api: Api, merchant: MerchantKeys) -> None:
    admin, partner = merchant.keys["admin"], merchant.keys["partner"]
    safety = await create_team(api, admin, "Safety")
    support = await create_team(api, admin, "Support")
    assert (await publish(api, admin))["errors"] == []

    hazard = await create_ticket(
        api, partner, subject="Charger", body="The charger started to smoke while charging the phone."
    )
    assert hazard["routing"]["ruleId"] == "safety" and hazard["routing"]["team"] == "Safety"
    assert hazard["routing"]["details"]["set"] == {
        "priority": "urgent",
        "category": "safety_hazard",
        "tags": ["safety"],
        "needs_human": True,
    }
    assert "setting priority=urgent, category=safety_hazard" in hazard["routing"]["details"]["explanation"]
    ticket = (await api.ok(TICKET, {"id": hazard["ticket"]["id"]}, key=admin))["ticket"]
    # All four keys reached the stored ticket; the classifier's own category was replaced.
    assert ticket == {
        "category": "safety_hazard",
        "priority": "URGENT",
        "tags": ["safety"],
        "needsHuman": True,
        "teamId": safety,
    }
    assert hazard["classification"]["category"] != "safety_hazard"

    # A rule without `set` leaves the classifier's category and needs no human (no handoff rule matched).
    plain = await create_ticket(api, partner)
    assert plain["routing"]["ruleId"] == "rest" and plain["routing"]["details"]["set"] == {}
    ticket = (await api.ok(TICKET, {"id": plain["ticket"]["id"]}, key=admin))["ticket"]
    assert ticket["needsHuman"] is False and ticket["teamId"] == support
    assert ticket["category"] == plain["classification"]["category"]


async def test_route_to_a_missing_team_says_so(api: Api, merchant: MerchantKeys) -> None:
    admin, partner = merchant.keys["admin"], merchant.keys["partner"]
    await create_team(api, admin, "Safety")
    await create_team(api, admin, "Support")
    assert (await publish(api, admin))["errors"] == []

    ghost = await create_ticket(api, partner, subject="Invoice", body="A ghost charge on my card statement.")
    routing = ghost["routing"]
    # The answer does not claim a team the ticket does not have: null, the name asked for, and a human.
    assert routing["ruleId"] == "ghost" and routing["team"] is None
    assert routing["details"]["team_not_found"] == "Billing"
    assert "does not exist" in routing["details"]["note"]
    assert ghost["ticket"]["teamId"] is None
    ticket = (await api.ok(TICKET, {"id": ghost["ticket"]["id"]}, key=admin))["ticket"]
    assert ticket["needsHuman"] is True and ticket["teamId"] is None


async def test_publish_warns_about_teams_the_merchant_lacks(api: Api, merchant: MerchantKeys) -> None:
    admin = merchant.keys["admin"]
    await create_team(api, admin, "Safety")
    await create_team(api, admin, "Support")

    checked = (await api.ok(VALIDATE, {"s": RULESET}, key=admin))["validateRuleset"]
    assert checked["valid"] is True
    assert checked["warnings"] == [{"code": "W_UNKNOWN_TEAM", "line": 19, "path": "routing[1].assign.team"}]

    published = await publish(api, admin, key="publish-outputs-1")
    # A warning, not a refusal: the version is published and active.
    assert published["errors"] == [] and published["rulesetVersion"] == {"version": 1, "active": True}
    assert published["warnings"] == [
        {
            "code": "W_UNKNOWN_TEAM",
            "message": "team 'Billing' does not exist for this merchant (its teams: Safety, Support); "
            "tickets routed by this rule stay unassigned and are flagged for a human",
            "line": 19,
            "col": 20,
            "path": "routing[1].assign.team",
            "severity": "WARNING",
        }
    ]
    # An idempotent replay answers the same warnings.
    replay = await publish(api, admin, key="publish-outputs-1")
    assert replay["replayed"] is True and replay["warnings"] == published["warnings"]

    # Once the team exists, the same source publishes without a warning.
    await create_team(api, admin, "Billing")
    again = await publish(api, admin)
    assert again["rulesetVersion"]["version"] == 2 and again["warnings"] == []
