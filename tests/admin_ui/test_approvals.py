"""The Approvals page: an AI request arriving through the API shows up live in every open tab with its count
in the navigation; rejecting needs a note; approving from the keyboard hands the refund to the partner system
(EXECUTING). A viewer is not offered the page."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.admin_ui.admin_ui_support import LiveServer, Merchant, sign_in

pytestmark = pytest.mark.browser

CREATE = """mutation($input: CreateTicketInput!) { createTicket(input: $input) {
  errors { code message } ticket { id } } }"""
REQUEST = """mutation($t: ID!, $amount: Float) { requestAction(input: {ticketId: $t, type: REFUND, amount: $amount}) {
  errors { code } action { id status } } }"""
ACTIONS = "query($t: ID!) { ticket(id: $t) { actions { id status decidedBy } } }"


def in_background(server: LiveServer, key: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Call the API from another thread, as an AI agent service would, while the pages are open."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(server.graphql(key, query, variables)))
    thread.start()
    thread.join(timeout=30)
    return result


def test_the_inbox_updates_live_in_every_tab_and_approves_from_the_keyboard(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    ticket = live_server.graphql(
        merchant.keys["partner"],
        CREATE,
        {"input": {"subject": "Kettle arrived broken", "body": "The lid is cracked, I want my money back."}},
    )["createTicket"]["ticket"]
    sign_in(page, merchant.keys["agent"])
    expect(page.get_by_test_id("approvals-badge")).to_have_text("0")
    page.get_by_test_id("nav-approvals").click()
    expect(page.get_by_test_id("approvals-empty")).to_be_visible()
    second = page.context.new_page()  # another tab of the same agent
    sign_in(second, merchant.keys["agent"])
    second.goto("/admin/#/approvals")
    expect(second.get_by_test_id("approvals-empty")).to_be_visible()
    expect(page.get_by_test_id("connection-status")).to_have_text("live")
    expect(second.get_by_test_id("connection-status")).to_have_text("live")

    # The AI asks for a refund over its limit: it waits for an agent, and both tabs show it by themselves.
    asked = in_background(live_server, merchant.keys["ai"], REQUEST, {"t": ticket["id"], "amount": 80.0})
    action_id = asked["requestAction"]["action"]["id"]
    assert asked["requestAction"]["action"]["status"] == "PENDING_APPROVAL"
    for tab in (page, second):
        card = tab.get_by_test_id("approval")
        expect(card).to_have_count(1)
        expect(card.get_by_test_id("approval-proposal")).to_have_text("ai proposes refund 80.00")
        expect(card.get_by_test_id("approval-why")).to_contain_text("require approval")
        expect(card).to_contain_text("The lid is cracked")  # the ticket's last messages
        expect(tab.get_by_test_id("approvals-badge")).to_have_text("1")

    # A rejection needs a note: the button stays disabled until one is written.
    card = page.get_by_test_id("approval")
    expect(card.get_by_test_id("reject-button")).to_be_disabled()
    card.get_by_test_id("reject-note").fill("let me check")
    expect(card.get_by_test_id("reject-button")).to_be_enabled()
    card.get_by_test_id("reject-note").fill("")
    card.get_by_test_id("reject-note").press("Escape")

    # Approve from the keyboard: the selected request, "a".
    card.focus()
    page.keyboard.press("a")
    expect(page.get_by_test_id("approvals-empty")).to_be_visible()
    expect(second.get_by_test_id("approvals-empty")).to_be_visible()  # the other tab too, live
    expect(page.get_by_test_id("approvals-badge")).to_have_text("0")
    expect(second.get_by_test_id("approvals-badge")).to_have_text("0")
    actions = live_server.graphql(merchant.keys["viewer"], ACTIONS, {"t": ticket["id"]})["ticket"]["actions"]
    assert actions == [{"id": action_id, "status": "EXECUTING", "decidedBy": "agent key"}]
    second.close()


def test_rejecting_with_a_note_and_roles_without_a_say(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    ticket = live_server.graphql(
        merchant.keys["partner"], CREATE, {"input": {"subject": "Refund please", "body": "Changed my mind."}}
    )["createTicket"]["ticket"]
    live_server.graphql(merchant.keys["ai"], REQUEST, {"t": ticket["id"], "amount": 95.0})
    sign_in(page, merchant.keys["agent"])
    page.goto("/admin/#/approvals")
    card = page.get_by_test_id("approval")
    expect(card).to_have_count(1)
    card.get_by_test_id("reject-note").fill("not returned yet")
    card.get_by_test_id("reject-note").press("Enter")
    expect(page.get_by_test_id("approvals-empty")).to_be_visible()
    actions = live_server.graphql(merchant.keys["viewer"], ACTIONS, {"t": ticket["id"]})["ticket"]["actions"]
    assert [a["status"] for a in actions] == ["REJECTED"]

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, merchant.keys["viewer"])
    expect(page.get_by_test_id("nav-approvals")).to_be_hidden()
