"""The agent workspace on the ticket page: messages counted right, a reply and an internal note, assignment
with the team/agent picker, moves only along the ruleset graph's edges, a refund requested with the policy's
decision shown before it is sent, and the audit trail with names. A viewer gets no workspace."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.admin_ui.admin_ui_support import LiveServer, Merchant, sign_in

pytestmark = pytest.mark.browser

CREATE = """mutation($input: CreateTicketInput!) { createTicket(input: $input) {
  errors { code message } ticket { id stage } } }"""
STATE = """query($t: ID!) { ticket(id: $t) { stage assignee { name } team { name } messages { body authorType }
  actions { type amount status } } }"""
DEFAULT_EDGES = {
    "triaged": ["assigned", "escalated", "resolved", "closed"],
    "assigned": ["in_progress", "escalated", "waiting_on_customer", "resolved"],
}


def test_reply_move_assign_and_request_a_refund_with_the_decision_shown(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    admin = merchant.keys["admin"]
    team = live_server.graphql(admin, 'mutation { createTeam(name: "support") { team { id } } }')[
        "createTeam"
    ]
    ticket = live_server.graphql(
        merchant.keys["partner"],
        CREATE,
        {
            "input": {
                "subject": "Blender stopped working",
                "body": "My blender stopped after two days, order 5521.",
                "order": {"id": "5521", "total": 600.0, "currency": "EUR"},
            }
        },
    )["createTicket"]["ticket"]
    # The agent joins after the ticket arrived: it waits unassigned in its team.
    agent = live_server.graphql(
        admin,
        """mutation($t: [ID!]) { createAgent(name: "Maya Lind", email: "maya@example.com", teamIds: $t) {
        errors { code message } agent { id } } }""",
        {"t": [team["team"]["id"]]},
    )["createAgent"]
    assert agent["errors"] == []
    sign_in(page, merchant.keys["agent"])
    page.goto(f"/admin/#/ticket/{ticket['id']}")
    expect(page.get_by_test_id("ticket-detail")).to_be_visible()
    expect(page.get_by_test_id("messages-heading")).to_have_text("Messages (1)")

    # Reply, then an internal note.
    page.get_by_test_id("composer").fill("Sorry to hear that! We will sort it out.")
    page.get_by_test_id("reply-button").click()
    expect(page.get_by_test_id("messages-heading")).to_contain_text("Messages (2)")
    expect(page.get_by_test_id("ticket-messages")).to_contain_text("We will sort it out.")
    page.get_by_test_id("composer").fill("Customer sounds reasonable; check the warranty.")
    page.get_by_test_id("note-button").click()
    expect(page.get_by_test_id("note")).to_contain_text("check the warranty")
    expect(page.get_by_test_id("messages-heading")).to_contain_text("Messages (2) · 1 internal note")

    # Assign with the picker.
    page.get_by_test_id("assign-team").select_option(label="support")
    page.get_by_test_id("assign-agent").select_option(label="Maya Lind")
    page.get_by_test_id("assign-button").click()
    expect(page.get_by_test_id("ticket-detail")).to_contain_text("support / Maya Lind")
    state = live_server.graphql(merchant.keys["viewer"], STATE, {"t": ticket["id"]})["ticket"]
    assert state["assignee"] == {"name": "Maya Lind"} and state["team"] == {"name": "support"}

    # Moves: exactly the edges the ruleset's graph has from the current stage, as buttons.
    stage = state["stage"].lower()
    buttons = page.get_by_test_id("stage-buttons").locator("button")
    expect(buttons).to_have_count(len(DEFAULT_EDGES[stage]))
    page.get_by_test_id("move-in_progress" if stage == "assigned" else "move-assigned").click()
    moved = "in_progress" if stage == "assigned" else "assigned"
    expect(page.get_by_test_id("ticket-detail")).to_contain_text(f"Move from {moved.replace('_', ' ')}")
    assert (
        live_server.graphql(merchant.keys["viewer"], STATE, {"t": ticket["id"]})["ticket"]["stage"]
        == moved.upper()
    )

    # A refund: the decision is shown before anything is sent, and follows the amount.
    page.get_by_test_id("action-type").select_option("REFUND")
    page.get_by_test_id("action-amount").fill("450")
    expect(page.get_by_test_id("preview-effect")).to_have_text("Needs approval by admin")
    expect(page.get_by_test_id("action-preview")).to_contain_text("agent-large-money")
    page.get_by_test_id("action-amount").fill("25")
    expect(page.get_by_test_id("preview-effect")).to_have_text("Allowed: it runs when sent")
    assert [
        a["type"]
        for a in live_server.graphql(merchant.keys["viewer"], STATE, {"t": ticket["id"]})["ticket"]["actions"]
    ] == ["NOTE"]  # checking sent nothing
    page.get_by_test_id("action-amount").fill("450")
    expect(page.get_by_test_id("preview-effect")).to_have_text("Needs approval by admin")
    page.get_by_test_id("request-button").click()
    expect(page.get_by_test_id("ticket-actions")).to_contain_text("pending approval")
    actions = live_server.graphql(merchant.keys["viewer"], STATE, {"t": ticket["id"]})["ticket"]["actions"]
    assert {"type": "REFUND", "amount": 450.0, "status": "PENDING_APPROVAL"} in actions

    # The audit trail names who did what, and the assignee by name.
    audit = page.get_by_test_id("ticket-audit")
    expect(audit).to_contain_text("agent key")
    expect(audit).to_contain_text("Maya Lind")
    expect(audit).not_to_contain_text(agent["agent"]["id"])


def test_a_viewer_reads_the_ticket_without_a_workspace(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    ticket = live_server.graphql(
        merchant.keys["partner"], CREATE, {"input": {"subject": "Hello", "body": "Where is my order?"}}
    )["createTicket"]["ticket"]
    sign_in(page, merchant.keys["viewer"])
    page.goto(f"/admin/#/ticket/{ticket['id']}")
    expect(page.get_by_test_id("ticket-detail")).to_be_visible()
    expect(page.get_by_test_id("workspace")).to_have_count(0)
