"""The Webhooks page in a real browser: an admin adds an endpoint (the secret shown once), a ticket created
through the API reaches the test's receiver signed with that secret (the server's own dispatcher sends it),
the delivery log shows it and redelivers it, a test ping reports its attempt, rotate shows a new secret,
disable shows the endpoint disabled. Other roles get no Webhooks page."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from standardwebhooks import Webhook

from tests.admin_ui.admin_ui_support import LiveServer, Merchant, sign_in
from tests.waiting import eventually_sync
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.browser

CREATE_TICKET = """mutation { createTicket(input: {subject: "Where is my order?", body: "It is late."}) {
  errors { code } ticket { id } } }"""


@pytest.fixture(scope="module")
def webhook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app with its lifespan (hence its webhook dispatcher) on a fresh SQLite file, allowed to deliver
    to the test's receiver on 127.0.0.1."""
    import socket

    import uvicorn

    from bookbag.app import create_app
    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from storage.db import Database
    from storage.migrate import upgrade

    path = tmp_path_factory.mktemp("admin-ui-webhooks") / "bookbag.sqlite3"
    url = f"sqlite:///{path}"
    database = Database.from_url(url)
    upgrade(database.engine)
    settings = Settings(
        env="test",
        database_url=url,
        run_migrations_on_start=False,
        data_dir=path.parent,
        log_level="warning",
        webhook_allow_private=True,
        heavy_in_processes=False,
    )
    services = build_services(settings)
    app = create_app(settings, services=services, database=database)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", database=database, services=services)
    finally:
        server.should_exit = True
        thread.join(10)
        database.dispose()


def delivered_count(server: LiveServer) -> int:
    from sqlmodel import func, select

    from storage.tables import WebhookDelivery

    with server.database.unit_of_work() as session:
        query = select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "delivered")
        return int(session.exec(query).one())


@pytest.fixture
def webhook_page(browser: Any, webhook_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=webhook_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        context.close()


@pytest.fixture
def shop(webhook_server: LiveServer) -> Merchant:
    import secrets

    from workflow.tenancy.merchants import create_api_key, create_merchant

    slug = f"ui-wh-{secrets.token_hex(4)}"
    with webhook_server.database.unit_of_work() as session:
        merchant = create_merchant(session, name=f"Store {slug}", slug=slug)
        result = Merchant(merchant_id=merchant.id, name=merchant.name)
        for role in ("admin", "agent", "partner", "viewer"):
            result.keys[role] = create_api_key(session, merchant_id=merchant.id, role=role, name=role).secret
    return result


def test_an_admin_manages_an_endpoint_and_sees_its_deliveries(
    webhook_page: Any, webhook_server: LiveServer, shop: Merchant
) -> None:
    page = webhook_page
    receiver = Receiver()
    try:
        sign_in(page, shop.keys["admin"])
        page.get_by_role("link", name="Webhooks").click()
        expect(page.get_by_test_id("webhook-none")).to_be_visible()
        page.get_by_test_id("webhook-url").fill(receiver.url)
        page.get_by_test_id("webhook-description").fill("the warehouse")
        page.get_by_test_id("webhook-add").click()
        secret = page.get_by_test_id("webhook-secret").inner_text()
        assert secret.startswith("whsec_")
        endpoint = page.get_by_test_id("webhook-endpoint")
        expect(endpoint).to_contain_text(receiver.url)
        expect(endpoint.get_by_test_id("webhook-status")).to_have_text("enabled")

        ticket_id = webhook_server.graphql(shop.keys["partner"], CREATE_TICKET)["createTicket"]["ticket"][
            "id"
        ]
        received = receiver.wait_for(2)
        bodies = [Webhook(secret).verify(r.body, r.headers) for r in received]
        assert {b["type"] for b in bodies} == {"ticket.created", "ticket.transitioned"}
        assert {b["data"]["ticket_id"] for b in bodies} == {ticket_id}
        # The dispatcher records attempts in batches shortly after their answers: the log shows them then.
        eventually_sync(lambda: delivered_count(webhook_server) == 2, what="both deliveries recorded")

        endpoint.get_by_test_id("webhook-show-log").click()
        rows = endpoint.get_by_test_id("webhook-delivery")
        expect(rows).to_have_count(2)
        expect(rows.first).to_have_attribute("data-status", "delivered")
        expect(rows.first).to_contain_text("200")
        rows.first.get_by_test_id("webhook-redeliver").click()
        receiver.wait_for(3)
        assert len(receiver.received) == 3
        expect(endpoint.get_by_test_id("webhook-delivery")).to_have_count(3)

        endpoint.get_by_test_id("webhook-ping").click()
        expect(endpoint.get_by_test_id("webhook-ping-result")).to_contain_text("ping delivered: HTTP 200")
        assert (
            Webhook(secret).verify(receiver.received[-1].body, receiver.received[-1].headers)["type"]
            == "webhook.ping"
        )

        endpoint.get_by_test_id("webhook-rotate").click()
        expect(page.get_by_test_id("webhook-secret")).not_to_have_text(secret)
        assert page.get_by_test_id("webhook-secret").inner_text().startswith("whsec_")

        page.get_by_test_id("webhook-endpoint").get_by_test_id("webhook-toggle").click()
        expect(page.get_by_test_id("webhook-endpoint").get_by_test_id("webhook-status")).to_have_text(
            "disabled"
        )
        expect(page.get_by_test_id("webhook-disabled-reason")).to_have_text("disabled by an admin")
    finally:
        receiver.close()


def test_a_private_url_is_refused_with_the_reason_and_other_roles_have_no_page(
    webhook_page: Any, shop: Merchant
) -> None:
    page = webhook_page
    sign_in(page, shop.keys["admin"])
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_test_id("webhook-url").fill("ftp://example.com/hook")
    page.get_by_test_id("webhook-add").click()
    expect(page.get_by_test_id("webhook-form-error")).to_contain_text("only http and https")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, shop.keys["agent"])
    expect(page.get_by_role("link", name="Webhooks")).to_be_hidden()
