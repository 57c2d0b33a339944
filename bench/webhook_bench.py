"""Webhook throughput and latency (issue #14): 200 events/s offered to a healthy local receiver.

    .venv/bin/python bench/webhook_bench.py [--rate 200] [--seconds 20] [--dispatcher inline|worker]
        [--database-url URL] [--out PATH]

One server process (``tests.live.app_process``: the app as ``bookbag serve`` runs it) on a fresh SQLite
file (or ``--database-url``). ``--dispatcher inline`` (the default): the server's own dispatcher sends,
woken by its commits. ``--dispatcher worker``: the deployment with the dispatcher apart — the server runs
with ``BOOKBAG_WEBHOOK_DISPATCHER=off`` and a ``bookbag webhooks dispatch`` process sends (woken by NOTIFY
on PostgreSQL, polling every 0.1 s on SQLite); CPU figures are then the two processes' sum. A client in this process calls
``createTicket`` over HTTP at ``--rate`` per second, open loop (each request sent at its scheduled time,
whatever the previous answers), for ``--seconds``; every ticket is one ``ticket.created`` event for the
merchant's endpoint at the receiver (``bench/webhook_common.Receiver``, its own process, answering 200 at
once, verifying each signature).

Reported per round:
- delivered/s: the events received, divided by the time from the first request sent to the last event
  received;
- commit → receipt: the receiver's arrival time minus the outbox row's ``created_at`` (taken just before
  the COMMIT of the change, so the figure slightly overstates), p50/p99/max; target p99 < 500 ms;
- the server's CPU seconds per event (utime + stime of the process from the first request until the last
  event was received, or 2 s after the last answer without a dispatcher).

Dispatcher CPU per event: the same load is run with the dispatcher off (``BOOKBAG_WEBHOOK_DISPATCHER=false``:
the API still writes the outbox rows; that round's endpoint is disabled afterwards so no later round
delivers them), rounds interleaved on, off, off, on; the dispatcher's share is the difference of the
server's CPU per event between the two, with the ratio beside it. Results: stdout and ``--out`` (default
``bench/results/webhook_bench.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.webhook_common import (
    REPO,
    BenchMerchant,
    Receiver,
    ServerProcess,
    WorkerProcess,
    git_commit,
    prepare,
)

CREATE = """mutation($input: CreateTicketInput!) { createTicket(input: $input) { errors { code } ticket { id } } }"""


async def offer(server: ServerProcess, key: str, rate: float, seconds: float) -> dict[str, Any]:
    import httpx

    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=server.http, limits=limits, timeout=30) as client:
        start = time.monotonic()

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            body = {"query": CREATE, "variables": {"input": {"subject": f"Order {i}", "body": "Late parcel"}}}
            try:
                response = await client.post(
                    "/graphql", json=body, headers={"authorization": f"Bearer {key}"}
                )
                ok = response.status_code == 200 and not response.json()["data"]["createTicket"]["errors"]
            except (httpx.HTTPError, KeyError, TypeError):
                ok = False
            if not ok:
                errors += 1
            latencies.append(time.monotonic() - scheduled)

        # Open loop: each request is started at its scheduled time (only the requests in flight are tasks).
        tasks = []
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "requests": n,
        "errors": errors,
        "api_p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "api_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1),
    }


def created_at_of(database_url: str, merchant_id: str) -> dict[str, datetime]:
    from sqlmodel import select

    from storage.db import Database
    from storage.tables import WebhookEvent

    db = Database.from_url(database_url)
    try:
        with db.read_only() as session:
            rows = session.exec(
                select(WebhookEvent.id, WebhookEvent.created_at).where(
                    WebhookEvent.merchant_id == merchant_id
                )
            ).all()
    finally:
        db.dispose()
    return dict(rows)


def disable(database_url: str, endpoint_id: str) -> None:
    from sqlalchemy import update

    from storage.db import Database
    from storage.tables import WebhookEndpoint

    db = Database.from_url(database_url)
    try:
        with db.unit_of_work() as session:
            session.execute(
                update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(enabled=False)
            )
    finally:
        db.dispose()


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def run_round(
    url: str,
    receiver: Receiver,
    merchant: BenchMerchant,
    dispatcher: bool,
    rate: float,
    seconds: float,
    mode: str = "inline",
) -> dict[str, Any]:
    env = {} if dispatcher and mode == "inline" else {"BOOKBAG_WEBHOOK_DISPATCHER": "off"}
    server = ServerProcess(url, env).start()
    worker = WorkerProcess(url).start() if dispatcher and mode == "worker" else None
    try:
        time.sleep(1.0)  # start-up settles
        cpu0, wall0 = server.cpu_seconds() + (worker.cpu_seconds() if worker else 0.0), time.time()
        api = asyncio.run(offer(server, merchant.partner_key, rate, seconds))
        sent_end = time.time()
        expected = api["requests"] - api["errors"]
        mine: list[dict[str, Any]] = []
        if dispatcher:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                mine = [r for r in receiver.records() if r["path"] == merchant.path]
                if len(mine) >= expected:
                    break
                time.sleep(0.05)
            end = max((r["arrived"] for r in mine), default=sent_end)
        else:
            time.sleep(2.0)
            end = time.time()
        cpu = server.cpu_seconds() + (worker.cpu_seconds() if worker else 0.0) - cpu0
    finally:
        server.stop()
        if worker is not None:
            worker.stop()
    result: dict[str, Any] = {"dispatcher": dispatcher, "mode": mode, **api, "server_cpu_s": round(cpu, 3)}
    result["server_cpu_ms_per_event"] = round(1000 * cpu / max(1, expected), 3)
    if dispatcher:
        created = created_at_of(url, merchant.merchant_id)
        lat = sorted(1000 * (r["arrived"] - created[r["id"]].timestamp()) for r in mine if r["id"] in created)
        result.update(
            delivered=len({r["id"] for r in mine}),
            duplicates=len(mine) - len({r["id"] for r in mine}),
            signatures_failed=sum(1 for r in mine if not r["verified"]),
            delivered_per_s=round(len(mine) / max(1e-9, end - wall0), 1),
            commit_to_receipt_p50_ms=round(statistics.median(lat), 1),
            commit_to_receipt_p99_ms=round(percentile(lat, 0.99), 1),
            commit_to_receipt_max_ms=round(lat[-1], 1),
        )
    else:
        disable(url, merchant.endpoint_id)
    return result


def drain(url: str, receiver: Receiver, merchant: BenchMerchant, events: int) -> dict[str, Any]:
    """The dispatcher alone: ``events`` committed while no server runs (the real ingest path), then one
    server started with no API traffic delivers them; its CPU from start-up done to the last receipt."""
    from bench.webhook_durability import write_events

    write_events(url, [merchant], events, 0)
    server = ServerProcess(url, {"BOOKBAG_WEBHOOK_POLL_SECONDS": "0.05"}).launch()
    assert server.proc is not None
    # Time and CPU from the process's start: the start-up (imports, app, migrations check) is measured
    # apart by a run with nothing to deliver, below, and subtracted.
    start = time.time()
    server.ready()
    deadline = time.monotonic() + 300
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        mine = [r for r in receiver.records() if r["path"] == merchant.path]
        if len({r["id"] for r in mine}) >= events:
            break
        time.sleep(0.02)
    cpu = server.cpu_seconds()
    end = max(r["arrived"] for r in mine)
    first = min(r["arrived"] for r in mine)
    server.stop()
    idle = ServerProcess(url, {"BOOKBAG_WEBHOOK_POLL_SECONDS": "0.05"}).start()
    time.sleep(max(0.0, end - first))
    idle_cpu = idle.cpu_seconds()
    idle.stop()
    return {
        "events": events,
        "delivered": len({r["id"] for r in mine}),
        "delivered_per_s_first_to_last": round(len(mine) / max(1e-9, end - first), 1),
        "seconds_first_to_last": round(end - first, 2),
        "seconds_from_process_start": round(end - start, 2),
        "server_cpu_s": round(cpu, 3),
        "idle_server_cpu_s_same_span": round(idle_cpu, 3),
        "dispatcher_cpu_ms_per_event": round(1000 * (cpu - idle_cpu) / max(1, len(mine)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--dispatcher",
        choices=["inline", "worker"],
        default="inline",
        help="inline: in the server process; worker: serve with it off plus `bookbag webhooks dispatch`",
    )
    parser.add_argument("--drain", type=int, default=0, help="also: N events delivered by an idle server")
    parser.add_argument("--out")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="webhook-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bookbag.sqlite3"
    order = [True, False, False, True]
    receiver = Receiver(secrets={})
    merchants = prepare(url, len(order) + 1, receiver.url, ["ticket.created"])
    receiver.secrets = {m.path: m.secret for m in merchants}
    receiver.start()
    rounds = []
    drained = None
    try:
        for merchant, dispatcher in zip(merchants, order if args.rate > 0 else [], strict=False):
            result = run_round(url, receiver, merchant, dispatcher, args.rate, args.seconds, args.dispatcher)
            print(json.dumps(result))
            rounds.append(result)
        if args.drain:
            drained = drain(url, receiver, merchants[-1], args.drain)
            print(json.dumps(drained))
    finally:
        receiver.stop()
    on = [r for r in rounds if r["dispatcher"]]
    off = [r for r in rounds if not r["dispatcher"]]
    summary: dict[str, Any] = {
        "commit": git_commit(),
        "backend": "postgresql" if url.startswith("postgres") else "sqlite",
        "rate_offered": args.rate,
        "dispatcher": args.dispatcher,
        "loadavg_at_end": os.getloadavg(),
        "seconds": args.seconds,
    }
    if on and off:
        on_cpu = statistics.mean(r["server_cpu_ms_per_event"] for r in on)
        off_cpu = statistics.mean(r["server_cpu_ms_per_event"] for r in off)
        summary.update(
            delivered_per_s=[r["delivered_per_s"] for r in on],
            api_p50_ms=[r["api_p50_ms"] for r in rounds],
            commit_to_receipt_p50_ms=[r["commit_to_receipt_p50_ms"] for r in on],
            commit_to_receipt_p99_ms=[r["commit_to_receipt_p99_ms"] for r in on],
            server_cpu_ms_per_event_with_dispatcher=round(on_cpu, 3),
            server_cpu_ms_per_event_without=round(off_cpu, 3),
            dispatcher_cpu_ms_per_event=round(on_cpu - off_cpu, 3),
            cpu_ratio_with_to_without=round(on_cpu / off_cpu, 2) if off_cpu else None,
        )
    summary["rounds"] = rounds
    summary["drain"] = drained
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=2))
    out = Path(args.out) if args.out else REPO / "bench" / "results" / "webhook_bench.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
