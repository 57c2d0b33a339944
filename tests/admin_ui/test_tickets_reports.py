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
    # Both fields settle (each after its own pause in typing) before the list is judged.
    expect(page).to_have_url("/admin/#/tickets?sort=priority&dir=asc&order=B-88")
    expect(page.get_by_test_id("ticket-row")).to_have_count(1)
    expect(page.get_by_test_id("ticket-row")).to_contain_text("Broken teapot")
    expect(page.get_by_test_id("tickets-count")).to_have_text("1")
    page.get_by_test_id("tickets-order").fill("")
    page.get_by_test_id("tickets-stage").select_option("closed")
    expect(page.get_by_test_id("tickets-empty")).to_be_visible()


TRANSITION = """mutation($id: ID!, $to: Stage!, $v: Int!) {
  transitionTicket(input: {ticketId: $id, to: $to, expectedVersion: $v}) { errors { code message } }
}"""
REPLY = """mutation($id: ID!) {
  addMessage(input: {ticketId: $id, body: "Looking into it."}) { errors { code } ticket { version } }
}"""


def test_open_a_report_change_period_and_split_and_download_the_csv(
    page: Any, live_server: LiveServer, merchant: Merchant
) -> None:
    key = merchant.keys["partner"]
    made = [
        create(live_server, key, subject="Refund please", body="The mug broke, refund me."),
        create(live_server, key, subject="Where is my parcel", body="Order #55 has not arrived."),
        create(live_server, key, subject="Chargeback", body="I will file a chargeback with my lawyer."),
    ]
    agent = merchant.keys["agent"]
    for ticket in made[:2]:
        replied = live_server.graphql(agent, REPLY, {"id": ticket["id"]})["addMessage"]
        assert replied["errors"] == []
        version = replied["ticket"]["version"]
        moved = live_server.graphql(agent, TRANSITION, {"id": ticket["id"], "to": "RESOLVED", "v": version})
        assert moved["transitionTicket"]["errors"] == [], moved
    sign_in(page, merchant.keys["viewer"])
    page.goto("/admin/#/reports")
    expect(page.get_by_test_id("report-volume-table")).to_be_visible()
    expect(page.get_by_test_id("report-period")).to_contain_text("by day")
    # The slowest step is highlighted in the stage chart, as on the live queue.
    expect(page.locator('[data-testid="report-stages-chart"] .row.highlight')).to_have_count(1)

    page.get_by_test_id("report-days").select_option("7")
    page.get_by_test_id("report-g").select_option("week")
    page.get_by_test_id("report-split").select_option("priority")
    expect(page.get_by_test_id("report-period")).to_contain_text("by week, split by priority")
    expect(page).to_have_url("/admin/#/reports?days=7&g=week&split=priority")

    with page.expect_download() as info:
        page.get_by_test_id("report-volume-csv").click()
    download = info.value
    assert download.suggested_filename.endswith("-week-priority.csv")
    with open(download.path(), encoding="utf-8") as csv_file:
        lines = csv_file.read().splitlines()
    assert lines[0] == "priority,bucket,created,closed,reopened,backlog"
    rows = [dict(zip(lines[0].split(","), line.split(","), strict=True)) for line in lines[1:]]
    assert sum(int(r["created"]) for r in rows) == 3
    assert sum(int(r["closed"]) for r in rows) == 2
    priorities = {t["priority"].lower() for t in made}
    assert {r["priority"] for r in rows} == priorities  # one group per priority of the tickets

    page.reload()  # the report's choices come back from the URL too
    expect(page.get_by_test_id("report-split")).to_have_value("priority")
    expect(page.get_by_test_id("report-g")).to_have_value("week")
