"""The live queue: counts change when a ticket is created through the API, and the page reconnects by
itself when the websocket drops."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.admin_ui.admin_ui_support import LiveServer, Merchant, sign_in

pytestmark = pytest.mark.browser

CREATE = """
mutation Create($input: CreateTicketInput!) {
  createTicket(input: $input) { errors { code message } ticket { id stage } }
}
"""


def create_in_background(server: LiveServer, key: str, subject: str) -> dict[str, Any]:
    """Create a ticket from another thread, as a partner system would, while the page is open."""
    result: dict[str, Any] = {}

    def work() -> None:
        data = server.graphql(
            key,
            CREATE,
            {"input": {"subject": subject, "body": "My order #2041 has not arrived after two weeks."}},
        )
        result.update(data["createTicket"])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert result.get("errors") == [], result
    ticket: dict[str, Any] = result["ticket"]
    return ticket


def stage_counts(page: Any) -> dict[str, int]:
    counts: dict[str, int] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-testid^="queue-count-"]')]
            .map(el => [el.dataset.testid.slice('queue-count-'.length), Number(el.textContent)]))"""
    )
    return counts


def test_a_new_ticket_shows_up_live(page: Any, live_server: LiveServer, merchant: Merchant) -> None:
    sign_in(page, merchant.keys["admin"])
    expect(page.get_by_test_id("connection-status")).to_have_text("live")
    expect(page.get_by_test_id("queue-stage-triaged")).to_be_visible()
    before = stage_counts(page)
    assert sum(before.values()) == 0

    ticket = create_in_background(live_server, merchant.keys["partner"], "Where is my parcel?")
    stage = ticket["stage"].lower()
    expect(page.get_by_test_id(f"queue-count-{stage}")).to_have_text(str(before[stage] + 1))
    expect(page.get_by_test_id("queue-open-count")).to_have_text("1")
    expect(page.get_by_test_id("oldest-open-table")).to_contain_text("Where is my parcel?")

    # The ticket detail opens from the list.
    page.get_by_role("link", name="Where is my parcel?").click()
    expect(page.get_by_test_id("ticket-detail")).to_contain_text("Where is my parcel?")
    expect(page.get_by_test_id("ticket-audit")).to_be_visible()

    # A message added elsewhere shows up on the open ticket by itself.
    live_server.graphql(
        merchant.keys["partner"],
        "mutation($i: AddMessageInput!) { addMessage(input: $i) { errors { code } } }",
        {"i": {"ticketId": ticket["id"], "body": "Any news on my parcel?", "authorType": "CUSTOMER"}},
    )
    expect(page.get_by_test_id("ticket-messages")).to_contain_text("Any news on my parcel?")


def test_the_page_reconnects_after_the_socket_drops(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    sign_in(page, merchant.keys["viewer"])
    status = page.get_by_test_id("connection-status")
    expect(status).to_have_text("live")

    page.evaluate("window.bookbag.client.dropForTesting()")
    expect(status).to_contain_text("reconnecting")
    expect(status).to_have_text("live", timeout=15_000)

    # Still subscribed after the reconnect: the next ticket arrives without a reload.
    ticket = create_in_background(live_server, merchant.keys["partner"], "Damaged item on arrival")
    expect(page.get_by_test_id(f"queue-count-{ticket['stage'].lower()}")).to_have_text("1")
