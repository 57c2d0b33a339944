"""What the two webhook benchmarks share: a receiver in its own process, server processes, a database with
merchants and endpoints.

The receiver (``Receiver``) is a threaded HTTP/1.1 server in a separate process (so neither the load
generator nor the analysis shares its GIL). Per request it verifies the Standard Webhooks signature with
``standardwebhooks.Webhook.verify`` (the endpoint's secret chosen by the path), waits a random
``delay`` (widening the window in which two attempts of one event would overlap), answers 500 with
probability ``fail_rate`` (else 200), and appends one JSON line: the ``webhook-id``, the ticket in the
payload, the answer, the arrival and end times (``time.time()``), whether the signature verified, whether the body arrived whole, and
whether another attempt with the same ``webhook-id`` was in flight at the receiver at the same time.

Servers run as ``tests.live.app_process``: ``create_app(Settings())`` served by ``bookbag.server.run_server``
exactly as ``bookbag serve`` runs it, only with a fixed classifier (starts in a second instead of loading
the model; the webhook path does not depend on it).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


# -- the receiver ---------------------------------------------------------------------------------------


def _serve_receiver(
    port: int, secrets: dict[str, str], fail_rate: float, delay: tuple[float, float], log_path: str, seed: int
) -> None:
    from standardwebhooks import Webhook, WebhookVerificationError

    rng = random.Random(seed)
    lock = threading.Lock()
    in_flight: dict[str, int] = {}
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
    hooks = {path: Webhook(secret) for path, secret in secrets.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            arrived = time.time()
            expected = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(expected)
            truncated = len(body) < expected  # the sender died while sending (the kill -9)
            headers = {k.lower(): v for k, v in self.headers.items()}
            webhook_id = headers.get("webhook-id", "")
            with lock:
                in_flight[webhook_id] = in_flight.get(webhook_id, 0) + 1
                overlap = in_flight[webhook_id] > 1
                fail = rng.random() < fail_rate
                wait = rng.uniform(*delay)
            verified = False
            ticket_id = None
            event_type = None
            try:
                data = hooks[self.path].verify(body, headers)
                verified = True
                ticket_id = data["data"].get("ticket_id")
                event_type = data["type"]
            except (KeyError, WebhookVerificationError):
                pass
            if wait:
                time.sleep(wait)
            status = 500 if fail else 200
            with lock:
                in_flight[webhook_id] -= 1
                log.write(
                    json.dumps(
                        {
                            "id": webhook_id,
                            "path": self.path,
                            "ticket_id": ticket_id,
                            "type": event_type,
                            "status": status,
                            "arrived": arrived,
                            "done": time.time(),
                            "verified": verified,
                            "overlap": overlap,
                            "truncated": truncated,
                        }
                    )
                    + "\n"
                )
            try:
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # connections reset by a killed sender

    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 512
    server.serve_forever()


@dataclass
class Receiver:
    secrets: dict[str, str]  # path → the endpoint's secret
    fail_rate: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)
    seed: int = 1

    def __post_init__(self) -> None:
        self.port = free_port()  # known before start: the endpoints are registered with it

    def start(self) -> Receiver:
        with tempfile.NamedTemporaryFile(prefix="webhook-receiver-", suffix=".jsonl", delete=False) as log:
            self.log_path = log.name
        ctx = mp.get_context("spawn")
        self.proc = ctx.Process(
            target=_serve_receiver,
            args=(self.port, self.secrets, self.fail_rate, self.delay, self.log_path, self.seed),
            daemon=True,
        )
        self.proc.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("receiver did not start") from None
                time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def records(self) -> list[dict[str, Any]]:
        text = Path(self.log_path).read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        Path(self.log_path).unlink(missing_ok=True)


# -- servers --------------------------------------------------------------------------------------------


class ServerProcess:
    """One server process on ``database_url`` (``env``: further ``BOOKBAG_*`` settings)."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.env = env or {}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        return self.launch().ready()

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it (``ready`` waits): several start side by side."""
        env = {
            **os.environ,
            "BOOKBAG_DATABASE_URL": self.database_url,
            "BOOKBAG_ENV": "test",
            "BOOKBAG_RUN_MIGRATIONS_ON_START": "false",
            "BOOKBAG_LOG_LEVEL": "warning",
            "BOOKBAG_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
            "BOOKBAG_HEAVY_IN_PROCESSES": "false",
            **self.env,
        }
        self.log = tempfile.NamedTemporaryFile(prefix="webhook-bench-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.live.app_process", "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        return self

    def ready(self) -> ServerProcess:
        import httpx

        assert self.proc is not None
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited: {Path(self.log.name).read_text(errors='replace')[-2000:]}"
                )
            try:
                if httpx.get(f"{self.http}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds_of(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- the database ---------------------------------------------------------------------------------------


@dataclass
class BenchMerchant:
    merchant_id: str
    partner_key: str
    endpoint_id: str
    secret: str
    path: str


def prepare(database_url: str, n_merchants: int, url_of: Any, event_types: list[str]) -> list[BenchMerchant]:
    """Migrate, then per merchant: a partner key and an endpoint at ``url_of(path)``."""
    from storage.db import Database
    from storage.migrate import upgrade
    from workflow.services import WorkflowServices
    from workflow.tenancy.merchants import create_api_key, create_merchant
    from workflow.tenancy.principal import Principal, Role
    from workflow.webhooks.endpoints import create_endpoint

    db = Database.from_url(database_url)
    services = WorkflowServices(policy=None, classifier=None)  # type: ignore[arg-type] - only the clock is used
    made: list[BenchMerchant] = []
    try:
        upgrade(db.engine)
        for i in range(n_merchants):
            with db.unit_of_work() as session:
                slug = f"whbench-{os.getpid()}-{i}-{random.randrange(1 << 30)}"
                merchant = create_merchant(session, name=slug, slug=slug)
                key = create_api_key(session, merchant_id=merchant.id, role="partner", name="partner").secret
                path = f"/m{i}"
                issued = create_endpoint(
                    session,
                    services,
                    Principal(merchant.id, Role.ADMIN),
                    url=url_of(path),
                    event_types=event_types,
                    allow_private=True,
                )
                made.append(BenchMerchant(merchant.id, key, issued.endpoint.id, issued.secret, path))
    finally:
        db.dispose()
    return made


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
