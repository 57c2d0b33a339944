"""The webhook dispatcher alone: its CPU per delivery and its commit → receipt latency, no API in its process.

    .venv/bin/python bench/webhook_dispatch_cpu.py [--events 1000] [--rate 200] [--poll 0.05]
        [--database-url URL] [--profile out.prof] [--out PATH]

A writer process commits ``--events`` tickets through the real ingest path (``workflow.tickets.ingest``, one unit
of work each, each a ``ticket.created`` outbox row for one endpoint at the receiver) at ``--rate`` per
second. This process runs the dispatcher as ``bookbag webhooks dispatch`` builds it
(``bookbag.webhook_worker.build_webhook_dispatcher``), in another process than the writer, so it learns of new
rows the way a separate worker does (PostgreSQL: NOTIFY when the tree has it, else polling every
``--poll`` seconds). The receiver (``bench/webhook_common.Receiver``) is a third process.

Reported: this process's CPU (``time.process_time``: every thread) from the writer's start until the
last delivery is recorded, divided by the deliveries; commit → receipt p50/p99/max (the receiver's arrival
time minus the outbox row's ``created_at``). ``--profile`` runs the dispatcher's database work in the
event loop's thread (instead of ``asyncio.to_thread``) under cProfile, so one profile holds all of it;
the CPU figure of a profiled run is not comparable.

The script uses only what the dispatcher had before the per-delivery work was made cheaper, so the same
file can be run against an older tree (``PYTHONPATH=<tree>``) and the two interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TREE = Path(os.environ.get("BOOKBAG_TREE", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(TREE))


def write_paced(database_url: str, merchant_id: str, events: int, rate: float) -> None:
    from storage.db import Database
    from tests.live.app_process import fixed_services

    try:
        from workflow.tenancy.principal import Principal, Role
        from workflow.tickets.ingest import TicketInput, create_ticket
    except ImportError:  # a tree from before the layout commit (the before/after comparison)
        from workflow.ingest import TicketInput, create_ticket  # type: ignore[no-redef]
        from workflow.principal import Principal, Role  # type: ignore[no-redef]

    db = Database.from_url(database_url)
    services = fixed_services()
    principal = Principal(merchant_id, Role.PARTNER)
    start = time.monotonic()
    try:
        for i in range(events):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with db.unit_of_work() as session:
                create_ticket(session, services, principal, TicketInput(subject=f"Order {i}", body="Late"))
    finally:
        db.dispose()


def lines_in(path: str) -> int:
    with open(path, "rb") as f:
        return f.read().count(b"\n")


async def dispatch(args: argparse.Namespace, url: str, receiver: Any, merchant: Any) -> dict[str, Any]:
    from bookbag.settings import Settings
    from bookbag.webhook_worker import build_webhook_dispatcher
    from storage.db import Database
    from tests.live.app_process import fixed_services

    settings = Settings(
        database_url=url,
        webhook_allow_private=True,
        webhook_poll_seconds=args.poll,
    )
    db = Database.from_url(url)
    services = fixed_services()
    dispatcher = build_webhook_dispatcher(settings, db, services)
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0.5)  # started, first (empty) claim done
    cpu0 = time.process_time()
    writer = subprocess.Popen(
        [sys.executable, __file__, "--write", url, merchant.merchant_id, str(args.events), str(args.rate)],
        env={**os.environ, "BOOKBAG_TREE": str(TREE)},
    )
    deadline = time.monotonic() + 120 + args.events / args.rate
    while lines_in(receiver.log_path) < args.events and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # the last results recorded
    cpu = time.process_time() - cpu0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    writer.wait(30)
    db.dispose()
    return {"cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--database-url")
    parser.add_argument("--profile")
    parser.add_argument("--label", default="")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.write:
        url, merchant_id, n, rate = args.write
        write_paced(url, merchant_id, int(n), float(rate))
        return

    from bench.webhook_common import Receiver, prepare
    from storage.db import Database
    from storage.tables import WebhookDelivery, WebhookEvent

    tmp = tempfile.mkdtemp(prefix="webhook-dispatch-cpu-")
    url = args.database_url or f"sqlite:///{tmp}/bookbag.sqlite3"
    receiver = Receiver(secrets={})
    (merchant,) = prepare(url, 1, receiver.url, ["ticket.created"])
    receiver.secrets = {merchant.path: merchant.secret}
    receiver.start()
    try:
        if args.profile:
            import cProfile

            async def inline(func: Any, /, *a: Any, **k: Any) -> Any:
                return func(*a, **k)

            asyncio.to_thread = inline
            profiler = cProfile.Profile(time.thread_time)  # CPU, not waiting
            profiler.enable()
            measured = asyncio.run(dispatch(args, url, receiver, merchant))
            profiler.disable()
            profiler.dump_stats(args.profile)
        else:
            measured = asyncio.run(dispatch(args, url, receiver, merchant))
        records = [r for r in receiver.records() if r["path"] == merchant.path]
    finally:
        receiver.stop()
    from sqlmodel import col, func, select

    db = Database.from_url(url)
    with db.read_only() as session:
        created = dict(
            session.exec(
                select(WebhookEvent.id, WebhookEvent.created_at).where(
                    WebhookEvent.merchant_id == merchant.merchant_id
                )
            ).all()
        )
        delivered = session.exec(select(func.count()).where(col(WebhookDelivery.status) == "delivered")).one()
    db.dispose()
    lat = sorted(1000 * (r["arrived"] - created[r["id"]].timestamp()) for r in records if r["id"] in created)
    result = {
        "label": args.label,
        "tree": str(TREE),
        "backend": "postgresql" if url.startswith("postgres") else "sqlite",
        "events": args.events,
        "rate": args.rate,
        "poll_s": args.poll,
        "received": len(records),
        "unique": len({r["id"] for r in records}),
        "recorded_delivered": delivered,
        "signatures_failed": sum(1 for r in records if not r["verified"]),
        "cpu_s": round(measured["cpu_s"], 3),
        "cpu_ms_per_delivery": round(1000 * measured["cpu_s"] / max(1, len(records)), 3),
        "commit_to_receipt_p50_ms": round(statistics.median(lat), 1) if lat else None,
        "commit_to_receipt_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None,
        "commit_to_receipt_max_ms": round(lat[-1], 1) if lat else None,
        "loadavg": os.getloadavg(),
        "profiled": bool(args.profile),
    }
    print(json.dumps(result))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
