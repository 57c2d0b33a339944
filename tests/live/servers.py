"""Real servers and real websocket clients for the live tests: a uvicorn server on a free port (in a thread of
this process, so the test can look at its hub; or as a separate ``bookbag serve`` process), a minimal
graphql-transport-ws client, and an HTTP GraphQL helper."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

REPO_ROOT = Path(__file__).resolve().parents[2]

CREATE = """
mutation Create($input: CreateTicketInput!) {
  createTicket(input: $input) { errors { code message } ticket { id stage version } }
}
"""
TRANSITION = """
mutation Move($input: TransitionTicketInput!) {
  transitionTicket(input: $input) { errors { code message } ticket { id stage version } }
}
"""
QUEUE_UPDATES = """
subscription { queueUpdates { version openCount generatedAt
  stages { stage count oldestOpenAt oldestAgeSeconds slaBreached oldestTicketId }
  timeInStage { fromStage toStage count meanSeconds p50Seconds p90Seconds } } }
"""
TICKET_EVENTS = """
subscription Events($id: ID) { ticketEvents(ticketId: $id) { kind ticketId at data } }
"""


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with free_socket() as sock:
        return int(sock.getsockname()[1])


class ThreadServer:
    """uvicorn serving ``app`` (lifespan on) from a background thread of the test process."""

    def __init__(self, app: Starlette, *, ws_deflate: bool = False) -> None:
        self.app = app
        self._sock = free_socket()
        self.port = int(self._sock.getsockname()[1])
        # As ``bookbag serve`` runs it: websockets-sansio without permessage-deflate (``ws_deflate`` turns it
        # on, which takes the fan-out's per-connection fallback path).
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", ws="websockets-sansio", ws_per_message_deflate=ws_deflate
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(20)
        self._sock.close()


@dataclass
class ProcessServer:
    """A ``bookbag serve``-like server as a separate OS process (its own hub, LISTEN connection, scheduler)."""

    database_url: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    # ``bookbag serve`` itself is ("bookbag.cli", "serve"); the tests use the same app with a fixed classifier.
    module: tuple[str, ...] = ("tests.live.app_process",)
    args: tuple[str, ...] = ()  # more arguments, e.g. ("--workers", "2")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def start(self) -> ProcessServer:
        env = {
            **os.environ,
            "BOOKBAG_DATABASE_URL": self.database_url,
            "BOOKBAG_RUN_MIGRATIONS_ON_START": "false",
            "BOOKBAG_ENV": "test",
            **self.env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.module, "--port", str(self.port), *self.args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a process group: a kill takes its worker processes too
        )
        deadline = time.monotonic() + 120  # several worker processes start slowly on a loaded machine
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"bookbag serve exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{self.http}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("bookbag serve did not become healthy")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def crash(self) -> None:
        """SIGKILL: no shutdown, no cleanup — as if the machine lost the process."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


async def gql(base: str, key: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"authorization": f"Bearer {key}"},
        )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def create_ticket(base: str, key: str, subject: str = "where is my parcel") -> dict[str, Any]:
    data = await gql(base, key, CREATE, {"input": {"subject": subject, "body": "ordered ten days ago"}})
    payload: dict[str, Any] = data["createTicket"]
    assert payload["errors"] == [], payload
    ticket: dict[str, Any] = payload["ticket"]
    return ticket


class WsClient:
    """A graphql-transport-ws client: ``connection_init`` with the key, then subscribe/next/complete."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self._ids = 0

    @classmethod
    async def open(
        cls, url: str, key: str | None, *, payload: dict[str, Any] | None = None, max_queue: int = 16
    ) -> WsClient:
        conn = await connect(url, subprotocols=["graphql-transport-ws"], max_queue=max_queue)  # type: ignore[list-item]
        init = payload if payload is not None else ({"Authorization": f"Bearer {key}"} if key else {})
        await conn.send(json.dumps({"type": "connection_init", "payload": init}))
        return cls(conn)

    async def ack(self, timeout: float = 10) -> dict[str, Any]:
        message = await self.receive(timeout)
        assert message["type"] == "connection_ack", message
        return message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._ids += 1
        sid = str(self._ids)
        body = {"id": sid, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}
        await self.conn.send(json.dumps(body))
        return sid

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.conn.recv(), timeout)
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") == "ping":
                await self.conn.send(json.dumps({"type": "pong"}))
                continue
            return message

    async def next_data(self, sid: str, timeout: float = 10) -> dict[str, Any]:
        message = await self.receive(timeout)
        assert message.get("id") == sid and message["type"] == "next", message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def close(self) -> None:
        await self.conn.close()
