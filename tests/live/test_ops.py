"""Running it for real, with real server processes: JSON log lines (request id, merchant, operation,
duration), a client that closes its socket mid-body logged as one quiet line, ``--workers`` refusing SQLite,
two workers on PostgreSQL that both answer and pass an event from one to the other, and SIGTERM with
requests in flight losing no acknowledged request (websockets closed with 1012, service restart)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select
from websockets.exceptions import ConnectionClosed

from bookbag.cli import main as cli_main
from storage.db import Database
from storage.tables import Ticket
from tests.conftest import MerchantKeys

from .servers import CREATE, QUEUE_UPDATES, ProcessServer, WsClient

pytestmark = pytest.mark.slow  # real server processes


@pytest.fixture
def servers(database_url: str) -> Iterator[Callable[..., ProcessServer]]:
    started: list[ProcessServer] = []

    def start(*args: str, **env: str) -> ProcessServer:
        values = {
            "BOOKBAG_QUEUE_COALESCE_SECONDS": "0.05",
            "BOOKBAG_SCHEDULER_INTERVAL_SECONDS": "0",
            "BOOKBAG_HEAVY_IN_PROCESSES": "false",  # no ruleset worker processes: fewer processes to start
            **env,
        }
        server = ProcessServer(database_url, env=values, args=args)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def stderr_of(server: ProcessServer) -> str:
    server.stop()
    assert server.proc is not None and server.proc.stderr is not None
    return server.proc.stderr.read().decode()


async def test_json_log_lines_and_a_quiet_client_disconnect(
    servers: Callable[..., ProcessServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    server = servers(BOOKBAG_LOG_FORMAT="json", BOOKBAG_LOG_LEVEL="info")
    merchant = make_merchant()
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as client:
        response = await client.post(
            "/graphql",
            json={"query": CREATE, "variables": {"input": {"subject": "parcel late", "body": "ten days"}}},
            headers={"authorization": f"Bearer {merchant.keys['partner']}"},
        )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    # A real socket that announces a body and closes half way through it.
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = (
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {merchant.keys['partner']}\r\nContent-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"query": "{ me { role')
        time.sleep(0.3)
    time.sleep(0.5)
    output = stderr_of(server)
    # Every log record is a JSON line (Python's own warnings at exit, e.g. multiprocessing's, are not records).
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's lines are JSON too
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    requests = [line for line in lines if line.get("request_id") == request_id]
    assert len(requests) == 1, output
    line = requests[0]
    assert line["logger"] == "bookbag.request" and line["merchant"] == merchant.merchant_id
    assert line["operation"] == "Create" and line["status"] == 200 and line["duration_ms"] > 0
    assert "Exception in ASGI application" not in output and "Traceback" not in output
    disconnects = [line for line in lines if "disconnected" in line["message"]]
    assert len(disconnects) == 1, output
    assert disconnects[0]["level"] == "info" and disconnects[0]["merchant"] == merchant.merchant_id
    assert "traceback" not in disconnects[0]


def test_workers_refuse_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOKBAG_DATABASE_URL", f"sqlite:///{tmp_path / 'one.sqlite3'}")
    assert cli_main(["serve", "--workers", "2"]) == 2
    error = capsys.readouterr().err
    assert "--workers 2 needs PostgreSQL" in error and "SQLite" in error
    assert not (tmp_path / "one.sqlite3").exists()  # refused before anything was opened


# -- several workers (PostgreSQL) ------------------------------------------------------------------------------


@pytest.fixture
def pg(database: Database) -> None:
    if not database.is_postgres:
        pytest.skip("several workers need PostgreSQL (SQLite refuses them: test_workers_refuse_sqlite)")


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.add(child)
            todo.append(child)
    return found


def _hex_endpoint(port: int) -> str:
    return f"0100007F:{port:04X}"


def server_side_owner(server: ProcessServer, client_port: int, timeout: float = 5) -> int:
    """The worker process holding the server side of the TCP connection from ``client_port``."""
    assert server.proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inode = None
        for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[1] == _hex_endpoint(server.port) and fields[2] == _hex_endpoint(client_port):
                inode = fields[9]
        if inode and inode != "0":
            for pid in descendants(server.proc.pid):
                try:
                    fds = os.listdir(f"/proc/{pid}/fd")
                except OSError:
                    continue
                for fd in fds:
                    try:
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                            return pid
                    except OSError:
                        continue
        time.sleep(0.05)
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def connect_to_worker(server: ProcessServer, wanted: Callable[[int], bool]) -> tuple[socket.socket, int]:
    deadline = time.monotonic() + 90  # the second worker may still be starting on a loaded machine
    while time.monotonic() < deadline:
        sock = socket.create_connection(("127.0.0.1", server.port))
        owner = server_side_owner(server, sock.getsockname()[1])
        if wanted(owner):
            return sock, owner
        sock.close()
        time.sleep(0.1)
    raise AssertionError("the workers never took a connection as wanted")


def raw_post(sock: socket.socket, key: str, body: dict[str, object]) -> dict[str, object]:
    data = json.dumps(body).encode()
    head = (
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    raw = b"".join(chunks)
    status_line, _, rest = raw.partition(b"\r\n")
    assert b" 200 " in status_line, raw[:500]
    result: dict[str, object] = json.loads(rest.partition(b"\r\n\r\n")[2])
    return result


async def test_two_workers_answer_and_an_event_crosses_them(
    pg: None, servers: Callable[..., ProcessServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    server = servers("--workers", "2")
    merchant = make_merchant()
    ws = await WsClient.open(server.ws, merchant.keys["viewer"])
    await ws.ack()
    local = ws.conn.local_address
    subscriber_worker = server_side_owner(server, int(local[1]))
    sid = await ws.subscribe(QUEUE_UPDATES)
    assert (await ws.next_data(sid))["queueUpdates"]["openCount"] == 0
    # The ticket is created through the other worker: the update can only arrive by LISTEN/NOTIFY.
    sock, writer_worker = await asyncio.to_thread(
        connect_to_worker, server, lambda pid: pid != subscriber_worker
    )
    with sock:
        variables = {"input": {"subject": "parcel late", "body": "ordered ten days ago"}}
        answer = await asyncio.to_thread(
            raw_post, sock, merchant.keys["partner"], {"query": CREATE, "variables": variables}
        )
    assert answer["data"]["createTicket"]["ticket"]["id"]  # type: ignore[index]
    assert writer_worker != subscriber_worker
    update = (await ws.next_data(sid, timeout=15))["queueUpdates"]
    while update["openCount"] < 1:
        update = (await ws.next_data(sid, timeout=15))["queueUpdates"]
    assert update["openCount"] == 1
    await ws.close()
    async with httpx.AsyncClient(base_url=server.http) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


async def test_metrics_add_up_over_two_workers(
    pg: None,
    servers: Callable[..., ProcessServer],
    make_merchant: Callable[..., MerchantKeys],
    tmp_path: Path,
) -> None:
    server = servers(
        "--workers",
        "2",
        BOOKBAG_METRICS="true",
        BOOKBAG_METRICS_TOKEN="t",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
    )
    merchant = make_merchant()
    owners: set[int] = set()
    sent = 0
    while sent < 6 or len(owners) < 2:  # on fresh connections, until both workers have served some
        anyone = sent < 5 or len(owners) == 2

        def wanted(pid: int, anyone: bool = anyone) -> bool:
            return anyone or pid not in owners

        sock, owner = await asyncio.to_thread(connect_to_worker, server, wanted)
        owners.add(owner)
        with sock:
            variables = {"input": {"subject": f"parcel {sent}", "body": "late"}}
            await asyncio.to_thread(
                raw_post, sock, merchant.keys["partner"], {"query": CREATE, "variables": variables}
            )
        sent += 1
    assert len(owners) == 2
    async with httpx.AsyncClient(base_url=server.http) as client:
        text = (await client.get("/metrics", headers={"authorization": "Bearer t"})).text
    assert f'bookbag_graphql_operations_total{{operation="Create"}} {float(sent)}' in text


async def test_sigterm_loses_no_acknowledged_request(
    pg: None,
    servers: Callable[..., ProcessServer],
    make_merchant: Callable[..., MerchantKeys],
    database: Database,
) -> None:
    server = servers("--workers", "2")
    merchant = make_merchant()
    ws = await WsClient.open(server.ws, merchant.keys["viewer"])
    await ws.ack()
    sid = await ws.subscribe(QUEUE_UPDATES)
    await ws.next_data(sid)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.http, timeout=60, limits=limits) as client:

        async def create(n: int) -> str | None:
            variables = {"input": {"subject": f"shutdown {n}", "body": "where is it"}}
            response = await client.post(
                "/graphql",
                json={"query": CREATE, "variables": variables},
                headers={"authorization": f"Bearer {merchant.keys['partner']}"},
            )
            if response.status_code != 200:
                return None
            ticket = response.json()["data"]["createTicket"]["ticket"]
            return str(ticket["id"]) if ticket else None

        tasks = [asyncio.create_task(create(n)) for n in range(120)]
        while not any(task.done() for task in tasks):
            await asyncio.sleep(0.005)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    acknowledged = [outcome for outcome in outcomes if isinstance(outcome, str)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert acknowledged
    assert all(isinstance(exc, httpx.TransportError) for exc in refused), refused
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.receive(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # service restart: reconnect
    assert await asyncio.to_thread(server.proc.wait, 30) == 0
    print(
        f"{len(acknowledged)} acknowledged, {len(refused)} refused, exit {time.monotonic() - signalled:.1f} s"
    )
    with database.read_only() as session:
        stored = set(session.exec(select(Ticket.id).where(col(Ticket.id).in_(acknowledged))).all())
    assert stored == set(acknowledged)
