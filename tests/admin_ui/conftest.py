"""Fixtures for the admin UI's end-to-end tests: a real uvicorn server on 127.0.0.1 (random port, temp SQLite
database) and Debian's chromium driven by Playwright.

Without ``/usr/bin/chromium`` the tests skip locally and FAIL when ``CI=true``. A failing test leaves a
screenshot of its page in ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.admin_ui.admin_ui_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveServer,
    Merchant,
    require_chromium,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Remember each phase's outcome on the item, so the page fixture knows to take a screenshot.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``bookbag``'s app under uvicorn in a background thread, on a fresh migrated SQLite file."""
    require_chromium()
    import uvicorn

    from bookbag.app import create_app
    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from storage.db import Database
    from storage.migrate import upgrade

    path = tmp_path_factory.mktemp("admin-ui") / "bookbag.sqlite3"
    url = f"sqlite:///{path}"
    database = Database.from_url(url)
    upgrade(database.engine)
    settings = Settings(
        env="test", database_url=url, run_migrations_on_start=False, data_dir=path.parent, log_level="warning"
    )
    services = build_services(settings)
    app = create_app(settings, services=services, database=database)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="auto")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-admin-ui", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the uvicorn server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", database=database, services=services)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        database.dispose()


@pytest.fixture
def make_merchant(live_server: LiveServer) -> Callable[..., Merchant]:
    """A merchant with one key per role, created through ``workflow.tenancy.merchants`` as the CLI does."""
    from workflow.tenancy.merchants import create_api_key, create_merchant

    def make(name: str | None = None) -> Merchant:
        slug = f"ui-{secrets.token_hex(5)}"
        with live_server.database.unit_of_work() as session:
            merchant = create_merchant(session, name=name or f"Store {slug}", slug=slug)
            result = Merchant(merchant_id=merchant.id, name=merchant.name)
            for role in ("admin", "agent", "ai", "partner", "viewer"):
                result.keys[role] = create_api_key(
                    session, merchant_id=merchant.id, role=role, name=f"{role} key"
                ).secret
        return result

    return make


@pytest.fixture
def merchant(make_merchant: Callable[..., Merchant]) -> Merchant:
    return make_merchant()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this thread while
    # it is open, which breaks every pytest-asyncio test that runs after it in the same session.
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context per test; JS errors on the page fail the test; screenshot on failure."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is None or report.failed or errors:
            ARTIFACTS.mkdir(exist_ok=True)
            name = request.node.nodeid.replace("/", "_").replace("::", "__")
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            except Exception as exc:  # a crashed page must not hide the original failure
                print(f"screenshot failed: {exc}")
        context.close()
