"""The core CLI as a user runs it: a real process, a real database, one-line errors and exit codes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

BOOKBAG = [sys.executable, "-m", "bookbag.cli"]


def run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BOOKBAG_DATABASE_URL")}
    environ.update({"BOOKBAG_DATA_DIR": str(data_dir), **env})
    return subprocess.run([*BOOKBAG, *args], capture_output=True, text=True, env=environ, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr


def test_merchants_and_keys(tmp_path: Path) -> None:
    created = run(["merchants", "create", "Acme Outdoor", "--slug", "acme"], tmp_path)
    assert created.returncode == 0, created.stderr
    assert re.search(r"admin key \(shown once\): bb_[0-9a-f]{8}_\S+", created.stdout)
    assert (tmp_path / "bookbag.sqlite3").exists()

    key = run(["keys", "create", "--merchant", "acme", "--role", "ai"], tmp_path)
    assert key.returncode == 0 and "ai key for acme" in key.stdout

    assert_one_line_error(run(["merchants", "create", "Acme again", "--slug", "acme"], tmp_path), "exists")
    assert_one_line_error(
        run(["keys", "create", "--merchant", "nobody", "--role", "ai"], tmp_path), "not found"
    )
    bad_role = run(["keys", "create", "--merchant", "acme", "--role", "root"], tmp_path)
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr


def test_db_upgrade_and_unreachable_database(tmp_path: Path) -> None:
    upgraded = run(["db", "upgrade"], tmp_path)
    assert upgraded.returncode == 0 and "revision" in upgraded.stdout
    broken = run(["db", "upgrade"], tmp_path, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert_one_line_error(broken, "cannot open the database")


def test_demo_fills_the_database(tmp_path: Path) -> None:
    result = run(["demo", "--tickets", "20", "--slug", "shop"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "demo merchant shop: 20 tickets" in result.stdout
    assert len(re.findall(r"key: bb_", result.stdout)) == 5
    assert_one_line_error(run(["demo", "--tickets", "5", "--slug", "shop"], tmp_path), "exists already")
    from storage.db import Database, sqlite_url_for
    from tests.conftest import assert_open_counts_match
    from workflow.tenancy.merchants import get_merchant_by_slug

    database = Database.from_url(sqlite_url_for(tmp_path))
    with database.read_only() as session:
        merchant_id = get_merchant_by_slug(session, "shop").id
    assert_open_counts_match(database, merchant_id)  # the demo's assignments and moves kept the counts
    with database.unit_of_work() as session:  # a count gone wrong (as a bug or a manual edit would leave it)
        session.connection().exec_driver_sql("UPDATE agents SET open_tickets = 99")
    repaired = run(["db", "recount-load", "--merchant", "shop"], tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert "1 merchant(s)" in repaired.stdout and "0 count(s)" not in repaired.stdout
    assert_open_counts_match(database, merchant_id)
    again = run(["db", "recount-load"], tmp_path)
    assert again.returncode == 0 and "0 count(s) corrected" in again.stdout, again.stdout
    assert_one_line_error(run(["db", "recount-load", "--merchant", "nope"], tmp_path), "not found")
    database.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_on_its_port(tmp_path: Path) -> None:
    port = _free_port()
    environ = {**os.environ, "BOOKBAG_DATA_DIR": str(tmp_path)}
    environ.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [*BOOKBAG, "serve", "--port", str(port)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start: {proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.3)
        assert health.status_code == 200 and health.json()["database"] == "sqlite"
        unauthenticated = httpx.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": "{ me { role } }"}, timeout=5
        )
        assert "errors" in unauthenticated.json() or unauthenticated.status_code in (401, 403)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_corrections_export_as_training_rows(tmp_path: Path) -> None:
    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from classifier import load_labelled
    from storage.db import Database
    from storage.tables import Ticket
    from workflow.tenancy.merchants import get_merchant_by_slug
    from workflow.tenancy.principal import Principal, Role
    from workflow.tickets.service import correct_classification

    assert run(["demo", "--tickets", "3", "--slug", "shop"], tmp_path).returncode == 0
    database = Database.from_url(f"sqlite:///{tmp_path / 'bookbag.sqlite3'}")
    services = build_services(Settings())
    with database.unit_of_work() as session:
        merchant = get_merchant_by_slug(session, "shop")
        ticket = session.exec(select(Ticket).where(Ticket.merchant_id == merchant.id)).first()
        assert ticket is not None
        agent = Principal(merchant_id=merchant.id, role=Role.AGENT)
        correct_classification(
            session, services, agent, ticket_id=ticket.id, category="invoice", priority="low"
        )
    database.dispose()

    out = tmp_path / "corrections.jsonl"
    result = run(["classifier", "export-corrections", "--merchant", "shop", "--out", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = load_labelled([out], priority_col="priority", group_col="source")
    assert [(r.category, r.priority) for r in rows] == [("invoice", "low")]
    assert_one_line_error(
        run(["classifier", "export-corrections", "--merchant", "nobody", "--out", str(out)], tmp_path),
        "not found",
    )
