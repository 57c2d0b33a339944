"""In-process cost of the ingest pipeline per ticket, alone and in groups (what createTicket's group commit
buys), without HTTP or GraphQL.

    .venv/bin/python bench/ingest_bench.py [--tickets 1600] [--groups 1,4,16] [--rounds 3] [--database-url URL]
        [--rollups on|off|on,off]

The API benchmark's merchant (the demo's teams and agents, plus billing agents with room for every ticket,
so each ticket is classified, routed, given SLA due times, triaged and assigned — ``assigned`` counts it)
gets ``--tickets`` tickets per group size and round, each group written by
``workflow.tickets.ingest.create_tickets`` in one ``Database.unit_of_work()`` — exactly what
``workflow.tickets.group_commit`` runs in its worker thread. Group sizes alternate within each round, so a slow
spell of the VM hits them alike. CPU time is this process's (``time.process_time``); the database is a
fresh SQLite file unless ``--database-url`` names another. Results go to ``bench/results/ingest_bench.json``.

``--rollups`` (default ``on``, as the server runs): whether each unit of work also keeps the report roll-ups
(``workflow.reports.rollups``, the commit hook ``create_app`` installs); ``on,off`` alternates both within
each round, to measure what the roll-ups cost the ingest path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.api_bench import SUBJECTS, seed  # noqa: E402
from bookbag.settings import Settings  # noqa: E402
from bookbag.wiring import build_services  # noqa: E402
from storage.db import Database  # noqa: E402
from workflow.reports.read import rollups as report_rollups  # noqa: E402
from workflow.tenancy.merchants import authenticate  # noqa: E402
from workflow.tickets.ingest import TicketInput, create_tickets  # noqa: E402

RESULTS = REPO / "bench" / "results" / "ingest_bench.json"


def ticket(n: int) -> TicketInput:
    subject, body = SUBJECTS[n % len(SUBJECTS)]
    return TicketInput(
        subject=subject,
        body=body.format(n=100000 + n),
        customer_email="c@example.com",
        order_id=str(100000 + n),
        order_total=42.5,
        order_currency="EUR",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1600, help="tickets per group size and round")
    parser.add_argument("--groups", default="1,4,16", help="group sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--rollups", default="on", help="on, off, or on,off (alternating)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(x) for x in args.groups.split(",")]
    modes = args.rollups.split(",")
    if not set(modes) <= {"on", "off"}:
        parser.error("--rollups: on, off or on,off")

    tmp = tempfile.TemporaryDirectory(prefix="bookbag-ingest-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'ingest.sqlite3'}"
    keys = seed(url, 100)
    plain = Database.from_url(url)
    kept = Database.from_url(url)
    report_rollups.install(kept)
    databases = {"on": kept, "off": plain}
    db = databases[modes[0]]
    services = build_services(Settings())
    with db.read_only() as session:
        principal = authenticate(session, keys["partner"])
    assert principal is not None

    def write(first: int, count: int, size: int, db: Database = db) -> int:
        """Ingest ``count`` tickets in groups of ``size``; returns how many were assigned."""
        assigned = 0
        for start in range(first, first + count, size):
            batch = [(principal, ticket(n)) for n in range(start, min(start + size, first + count))]
            with db.unit_of_work() as session:
                results = create_tickets(session, services, batch)
            for result in results:
                assert not isinstance(result, Exception), result
                assigned += result.ticket.assignee_id is not None
        return assigned

    write(0, 200, 8)  # warm-up: caches, the classifier's first calls
    next_ticket = 1000
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for size in sizes:
            for mode in modes if round_ % 2 == 0 else reversed(modes):
                cpu, wall = time.process_time(), time.perf_counter()
                assigned = write(next_ticket, args.tickets, size, databases[mode])
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                next_ticket += args.tickets
                runs.append(
                    {
                        "round": round_,
                        "group_size": size,
                        "rollups": mode,
                        "tickets": args.tickets,
                        "assigned": assigned,
                        "cpu_ms_per_ticket": round(1000 * cpu / args.tickets, 3),
                        "wall_ms_per_ticket": round(1000 * wall / args.tickets, 3),
                    }
                )
                print(f"  {runs[-1]}", file=sys.stderr)
    plain.dispose()
    kept.dispose()
    tmp.cleanup()

    def label(size: int, mode: str) -> str:
        return str(size) if len(modes) == 1 else f"{size} rollups={mode}"

    by_size = {
        label(size, mode): {
            "cpu_ms_per_ticket_median": statistics.median(
                r["cpu_ms_per_ticket"] for r in runs if r["group_size"] == size and r["rollups"] == mode
            ),
            "cpu_ms_per_ticket_per_round": [
                r["cpu_ms_per_ticket"] for r in runs if r["group_size"] == size and r["rollups"] == mode
            ],
            "wall_ms_per_ticket_median": statistics.median(
                r["wall_ms_per_ticket"] for r in runs if r["group_size"] == size and r["rollups"] == mode
            ),
        }
        for size in sizes
        for mode in modes
    }
    summary = {
        "database": url.split(":", 1)[0],
        "cpu_count": os.cpu_count(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "by_group_size": by_size,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
