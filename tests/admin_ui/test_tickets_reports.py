"""The Tickets page (search and filters kept in the URL) and the Reports page (period, split, CSV), in a
real browser against a real server."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.admin_ui.admin_ui_support import LiveServer, Merchant, sign_in

pytestmark = pytest.mark.browser

CREATE = """
mutation Create($input: CreateTicketInput!) {
  createTicket(input: $input) { errors { code message } ticket { id stage priority } }
}
"""


def create(server: LiveServer, key: str, **fields: Any) -> dict[str, Any]:
    data = server.graphql(key, CREATE, {"input": {"body": "Please help.", **fields}})["createTicket"]
    assert data["errors"] == [], data
    ticket: dict[str, Any] = data["ticket"]
    return ticket


def row_ids(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        '[data-testid="ticket-row"]', "rows => rows.map(r => r.dataset.id)"
    )
    return ids


def test_filter_the_ticket_list_and_reload_to_the_same_view(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    key = merchant.keys["partner"]
    alice = create(
        live_server, key, subject="Parcel lost", customer={"email": "alice@shop.test"}, order={"id": "A-77"}
    )
    create(
        live_server, key, subject="Broken teapot", customer={"email": "bob@shop.test"}, order={"id": "B-88"}
    )
    create(live_server, key, subject="Address change", customer={"email": "carol@shop.test"})
    sign_in(page, merchant.keys["viewer"])
    page.goto("/admin/#/tickets")
    expect(page.get_by_test_id("tickets-count")).to_have_text("3")

    page.get_by_test_id("tickets-search").fill("alice@shop.test")
    expect(page.get_by_test_id("tickets-count")).to_have_text("1")
    assert row_ids(page) == [alice["id"]]
    page.get_by_test_id("tickets-sort").select_option("priority")
    page.get_by_test_id("tickets-dir").select_option("asc")
    expect(page).to_have_url("/admin/#/tickets?search=alice%40shop.test&sort=priority&dir=asc")

    page.reload()  # the same view, from the URL alone
    expect(page.get_by_test_id("tickets-count")).to_have_text("1")
    assert row_ids(page) == [alice["id"]]
    expect(page.get_by_test_id("tickets-search")).to_have_value("alice@shop.test")
    expect(page.get_by_test_id("tickets-sort")).to_have_value("priority")
    expect(page.get_by_test_id("tickets-dir")).to_have_value("asc")

    page.get_by_test_id("tickets-search").fill("")
    page.get_by_test_id("tickets-order").fill("B-88")
    expect(page.get_by_test_id("tickets-count")).to_have_text("1")
    expect(page.get_by_test_id("ticket-row")).to_contain_text("Broken teapot")
    page.get_by_test_id("tickets-order").fill("")
    page.get_by_test_id("tickets-stage").select_option("closed")
    expect(page.get_by_test_id("tickets-empty")).to_be_visible()
