"""Take the README screenshots of the admin UI (``docs/screenshots/``: ``queue.png``, ``rules.png``,
``approvals.png`` and ``ticket.png``).

Runs the product as a user would, through its CLI, so this package stays free of domain imports:
``bookbag demo`` fills a throw-away SQLite database, ``bookbag serve`` serves it on a free port, and
Debian's chromium (driven by Playwright) signs in with the demo admin key and photographs both screens.

    .venv/bin/python -m admin_ui.screenshots [--out docs/screenshots] [--tickets 300]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KEY_LINE = re.compile(r"^\s*admin\s+key:\s*(\S+)\s*$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bookbag.cli", *args]


def create_demo(env: dict[str, str], tickets: int) -> str:
    """Create the demo merchant; return its admin key."""
    done = subprocess.run(
        _cli("demo", "--tickets", str(tickets)), env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bookbag demo failed: {done.stderr.strip() or done.stdout.strip()}")
    match = KEY_LINE.search(done.stdout)
    if match is None:
        raise RuntimeError(f"no admin key in the output of bookbag demo:\n{done.stdout}")
    return match.group(1)


@contextmanager
def serve(env: dict[str, str], port: int) -> Iterator[str]:
    """``bookbag serve`` on 127.0.0.1:port until the block ends; yields the base URL."""
    process = subprocess.Popen(
        _cli("serve", "--host", "127.0.0.1", "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"bookbag serve exited: {process.stderr.read() if process.stderr else ''}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("bookbag serve did not answer /healthz within 60 s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _graphql(url: str, key: str, query: str, variables: dict[str, object] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body: dict[str, Any] = json.loads(response.read())
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


def ask_for_approval(url: str, admin_key: str) -> None:
    """An agent asks for a refund above its limit on the oldest open ticket: one request in the admin's inbox."""
    agent_key = _graphql(
        url, admin_key, 'mutation { createApiKey(role: AGENT, name: "Sam (agent)") { secret } }'
    )
    secret = agent_key["createApiKey"]["secret"]
    oldest = _graphql(url, admin_key, "{ oldestOpenTickets(first: 1) { id } }")["oldestOpenTickets"]
    if oldest:
        _graphql(
            url,
            secret,
            "mutation($t: ID!) { requestAction(input: {ticketId: $t, type: REFUND, amount: 349.9}) "
            "{ errors { code } } }",
            {"t": oldest[0]["id"]},
        )


def photograph(url: str, key: str, out: Path) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    queue_png, rules_png = out / "queue.png", out / "rules.png"
    approvals_png, ticket_png = out / "approvals.png", out / "ticket.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
            page.set_default_timeout(20_000)
            page.goto(f"{url}/admin/")
            page.get_by_test_id("api-key-input").fill(key)
            page.get_by_test_id("sign-in-button").click()
            expect(page.get_by_test_id("connection-status")).to_have_text("live")
            expect(page.get_by_test_id("oldest-open-table")).to_be_visible()
            expect(page.get_by_test_id("time-in-stage-chart")).to_be_visible()
            page.screenshot(path=str(queue_png), full_page=True)

            page.get_by_role("link", name="Rules").click()
            expect(page.get_by_test_id("validation-status")).to_contain_text("valid")
            page.get_by_test_id("simulate-button").click()
            expect(page.get_by_test_id("decision-effect").first).to_be_visible()
            page.screenshot(path=str(rules_png), full_page=False)

            ask_for_approval(url, key)
            page.get_by_test_id("nav-approvals").click()
            expect(page.get_by_test_id("approvals-list")).to_be_visible()
            expect(page.get_by_test_id("approvals-count")).not_to_have_text("–")
            page.screenshot(path=str(approvals_png), full_page=False)

            first = page.get_by_test_id("approval-ticket").first
            if first.count():
                first.click()
            else:  # nothing waits for the admin: any ticket of the queue will do
                page.get_by_role("link", name="Queue").click()
                page.get_by_test_id("oldest-open-table").locator("a").first.click()
            expect(page.get_by_test_id("workspace")).to_be_visible()
            page.get_by_test_id("action-amount").fill("120")
            expect(page.get_by_test_id("preview-effect")).to_be_visible()
            page.screenshot(path=str(ticket_png), full_page=True)
        finally:
            browser.close()
    return [queue_png, rules_png, approvals_png, ticket_png]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m admin_ui.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="where the PNGs go")
    parser.add_argument("--tickets", type=int, default=300, help="demo tickets to create (default 300)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bookbag-shots-") as tmp:
        env = {
            **os.environ,
            "BOOKBAG_DATA_DIR": tmp,
            "BOOKBAG_DATABASE_URL": f"sqlite:///{Path(tmp) / 'bookbag.sqlite3'}",
            "BOOKBAG_LOG_LEVEL": "warning",
        }
        env.pop("DATABASE_URL", None)
        print("creating the demo data…", file=sys.stderr)
        key = create_demo(env, args.tickets)
        with serve(env, _free_port()) as url:
            print(f"photographing {url}/admin/ …", file=sys.stderr)
            for path in photograph(url, key, args.out):
                print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
