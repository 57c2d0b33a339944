"""Cost as data grows: the queue, ticket pages, createTicket, the scheduler's scan and the live snapshot at
10k, 100k and 1M tickets of one merchant among several.

    .venv/bin/python bench/scale_bench.py [--sizes 10000,100000,1000000] [--backend postgres|sqlite]
        [--runs 60] [--database-url postgresql://postgres@127.0.0.1:5432/test] [--keep] [--reuse]

Per size a database of its own (PostgreSQL: ``bookbag_scale_<size>``, made from the maintenance URL; SQLite:
``/tmp/bookbag_scale/<size>.sqlite3``, at most 100k) is migrated and seeded by ``bench/scale_seed.py``
(``RATE`` tickets a day for the main merchant, so the sizes are 10, 100 and 1,000 days of history behind the
same open backlog; the merchants, keys, teams, agents and ruleset made through the app, the history in bulk
— COPY on PostgreSQL). The roll-ups are checked against the app's own computation on a sample of tickets
(``report_rollups._current`` from the stored rows against the seeded ``ticket_report_states``) and in
total (created = tickets; stage durations = transitions; every split dimension sums the same).

Each scenario runs through the ASGI app in this process (``create_app``: real auth, resolvers, database; no
network hop), except the scheduler's pass (``workflow.scheduler.run_due_work`` at the wall clock: one warm-up
tick catches up on what fell due since the seeding, then each run is the steady-state tick) and the live
snapshot refresh (``QueueHub``'s counts snapshot, ``queue_snapshot(window=None)``, and its time-in-stage
refresh, ``queue.time_in_stage``, each in a read-only unit of work). Scenarios are interleaved round-robin,
``--runs`` times each, so a load spike on the shared machine hits all of them alike. p50/p90/p99/max per
scenario and size, and the ratio of the largest size's p99 to the smallest's (the target: within 2×), go to
stdout and ``bench/results/scale_bench.json`` (``scale_bench_sqlite.json``), with the load average before and
after each size. On PostgreSQL every SELECT the list and queue scenarios (and the scheduler's scan) send is
captured once per size and run again under ``EXPLAIN (ANALYZE, BUFFERS)``; the plans' key lines go to the
JSON file and to ``bench/results/scale_bench_plans.md``.

``--keep`` leaves the databases (and ``bench/results/scale_bench.<backend>.<size>.seeded.json``) for
``--reuse``, which measures again without seeding; without either, each database is dropped after its size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

RESULTS = REPO / "bench" / "results"
SQLITE_DIR = Path("/tmp/bookbag_scale")
SQLITE_MAX = 100_000

TICKET_FIELDS = "id subject stage priority stageEnteredAt teamId assigneeId customer { email } order { id }"
TICKETS = f"""query($f: TicketFilter, $o: TicketOrder) {{ tickets(filter: $f, orderBy: $o, first: 50) {{
  edges {{ node {{ {TICKET_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
QUEUE = """{ queue { version openCount stages { stage count oldestAgeSeconds slaBreached oldestTicketId }
  timeInStage { fromStage toStage count meanSeconds p50Seconds p90Seconds } } }"""
CREATE = """mutation($input: CreateTicketInput!) { createTicket(input: $input) {
  errors { code message } ticket { id stage priority } } }"""


# -- databases -----------------------------------------------------------------------------------------------


def _conninfo(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    from storage.db import normalize_url

    parsed = make_url(normalize_url(url))
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(backend: str, admin_url: str, size: int) -> str:
    if backend == "sqlite":
        return f"sqlite:///{SQLITE_DIR / f'{size}.sqlite3'}"
    from sqlalchemy.engine import make_url

    from storage.db import normalize_url

    return (
        make_url(normalize_url(admin_url))
        .set(database=f"bookbag_scale_{size}")
        .render_as_string(hide_password=False)
    )


def drop(backend: str, admin_url: str, size: int) -> None:
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_DIR / f'{size}.sqlite3'}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "bookbag_scale_{size}" WITH (FORCE)')


def create(backend: str, admin_url: str, size: int) -> None:
    drop(backend, admin_url, size)
    if backend == "sqlite":
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        return
    import psycopg

    with psycopg.connect(_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "bookbag_scale_{size}"')


# -- checks --------------------------------------------------------------------------------------------------


def check_rollups(database: Any, merchant_id: str, rng: random.Random, sample: int = 300) -> dict[str, Any]:
    """The seeded roll-ups are what the app computes from the seeded rows (a sample of tickets), and the
    totals agree with the rows (all tickets)."""
    from sqlalchemy import text

    from workflow.reports import rollups as report_rollups

    with database.read_only() as session:
        ids = [
            r[0]
            for r in session.execute(
                text("SELECT id FROM tickets WHERE merchant_id = :m ORDER BY id"), {"m": merchant_id}
            )
        ]
        chosen = sorted(rng.sample(ids, min(sample, len(ids))))
        _, current = report_rollups._current(session, chosen)
        stored = report_rollups._stored(session, chosen, False)
        mismatched = []
        for tid in chosen:
            a, b = current.get(tid, {}), stored.get(tid, {})
            same = a.keys() == b.keys() and all(
                a[k][0] == b[k][0] and abs(a[k][1] - b[k][1]) < 1e-6 for k in a
            )
            if not same:
                mismatched.append(tid)

        def one(sql: str) -> Any:
            return session.execute(text(sql), {"m": merchant_id}).scalar()

        totals = {
            "tickets": one("SELECT count(*) FROM tickets WHERE merchant_id = :m"),
            "created": one(
                "SELECT sum(n) FROM report_counts WHERE merchant_id = :m AND dim = '' AND metric = 'created'"
            ),
            "transitions_timed": one(
                "SELECT count(*) FROM stage_transitions WHERE merchant_id = :m "
                "AND from_stage IS NOT NULL AND seconds_in_from_stage IS NOT NULL"
            ),
            "stage_durations": one(
                "SELECT sum(n) FROM report_counts WHERE merchant_id = :m AND dim = '' AND metric = 'stage'"
            ),
        }
        per_dim = dict(
            session.execute(
                text("SELECT dim, sum(n) FROM report_counts WHERE merchant_id = :m GROUP BY dim"),
                {"m": merchant_id},
            ).all()
        )
    ok = (
        not mismatched
        and totals["tickets"] == totals["created"]
        and totals["transitions_timed"] == totals["stage_durations"]
        and len({int(v) for v in per_dim.values()}) == 1
    )
    return {"ok": ok, "sampled": len(chosen), "mismatched": mismatched[:5], **totals, "per_dim": per_dim}


# -- scenarios -----------------------------------------------------------------------------------------------


def scenarios(seeded: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """name → a function giving (key role, query, variables, check) for one run."""
    teams = list(seeded["teams"].values())
    agents = seeded["agents"]

    def page(flt: Any, order: Any = None) -> Any:
        def make() -> tuple[str, str, dict[str, Any], Any]:
            f = flt() if callable(flt) else flt

            def check(data: dict[str, Any]) -> bool:
                return isinstance(data["tickets"]["edges"], list)

            return "agent", TICKETS, {"f": f, "o": order}, check

        return make

    def queue() -> tuple[str, str, dict[str, Any], Any]:
        return (
            "agent",
            QUEUE,
            {},
            lambda data: data["queue"]["openCount"] > 0 and data["queue"]["timeInStage"],
        )

    counter = [0]

    def create_ticket() -> tuple[str, str, dict[str, Any], Any]:
        counter[0] += 1
        n = counter[0]
        subject, body = rng.choice(
            [
                ("Where is my order #{n}?", "Tracking for order #{n} has not moved for a week."),
                ("Refund for a broken mug", "The mug in order #{n} arrived broken, I would like a refund."),
                ("Invoice needed", "Could you send me an invoice with VAT for order #{n}?"),
            ]
        )
        variables = {
            "input": {
                "subject": subject.format(n=n),
                "body": body.format(n=n),
                "customer": {"email": f"bench{n}@example.com", "name": "Bench Customer"},
                "order": {"id": f"#B{n}", "total": 42.0, "currency": "EUR"},
            }
        }
        return (
            "partner",
            CREATE,
            variables,
            lambda data: not data["createTicket"]["errors"] and data["createTicket"]["ticket"]["id"],
        )

    return {
        "queue": queue,
        "tickets_newest": page(None),
        "tickets_stage_in_progress": page({"stage": "IN_PROGRESS"}),
        "tickets_team_open": page(lambda: {"teamId": rng.choice(teams), "openOnly": True}),
        "tickets_assignee_open": page(lambda: {"assigneeId": rng.choice(agents), "openOnly": True}),
        "tickets_needs_human_open": page({"needsHuman": True, "openOnly": True}),
        "tickets_breached_by_stage_age": page(
            {"slaBreached": True, "openOnly": True}, {"field": "STAGE_AGE"}
        ),
        "tickets_open_by_priority": page({"openOnly": True}, {"field": "PRIORITY"}),
        "tickets_open_by_updated": page({"openOnly": True}, {"field": "UPDATED"}),
        "create_ticket": create_ticket,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "runs": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p90_ms": round(statistics.quantiles(values, n=10, method="inclusive")[8], 2),
        "p99_ms": round(statistics.quantiles(values, n=100, method="inclusive")[98], 2),
        "max_ms": round(max(values), 2),
    }


async def measure(
    app: Any, database: Any, services: Any, hub: Any, seeded: dict[str, Any], made: dict[str, Any], runs: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    import httpx

    from workflow import queue as queue_module
    from workflow.scheduler import run_due_work

    merchant_id = seeded["merchant_id"]
    timings: dict[str, list[float]] = {name: [] for name in made}
    timings.update({"scheduler_tick": [], "live_snapshot": [], "live_time_in_stage_refresh": []})
    # This process's CPU time per run (the app's Python; the database server's time is in the plans).
    cpu: dict[str, list[float]] = {name: [] for name in timings}
    failures: dict[str, int] = dict.fromkeys(timings, 0)
    extra: dict[str, Any] = {}

    def tick() -> Any:
        return run_due_work(database, services, datetime.now(UTC))

    def live_snapshot() -> Any:
        return hub._compute(merchant_id)

    def refresh() -> Any:
        with database.read_only() as session:
            return queue_module.time_in_stage(
                session, merchant_id, since=datetime.now(UTC) - timedelta(days=7)
            )

    began = time.perf_counter()
    catch_up = await asyncio.to_thread(tick)
    extra["scheduler_catch_up"] = {
        "ms": round((time.perf_counter() - began) * 1000, 1),
        "breaches": len(catch_up.breaches),
        "escalations": len(catch_up.escalations),
        "more_due": catch_up.more_due,
    }
    direct = {"scheduler_tick": tick, "live_snapshot": live_snapshot, "live_time_in_stage_refresh": refresh}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
        keys = seeded["keys"]

        async def request(make: Any) -> tuple[float, bool, Any]:
            role, query, variables, check = make()
            headers = {"authorization": f"Bearer {keys[role]}"}
            start = time.perf_counter()
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            elapsed = (time.perf_counter() - start) * 1000
            body = response.json()
            ok = response.status_code == 200 and not body.get("errors") and bool(check(body["data"]))
            return elapsed, ok, body

        for make in made.values():  # warm-up: one of each
            await request(make)
        for fn in direct.values():
            await asyncio.to_thread(fn)
        for _ in range(runs):
            for name, make in made.items():
                cpu_start = time.process_time()
                elapsed, ok, body = await request(make)
                cpu[name].append((time.process_time() - cpu_start) * 1000)
                if not ok:
                    failures[name] += 1
                    print(f"  {name}: unexpected answer {str(body)[:300]}", file=sys.stderr)
                timings[name].append(elapsed)
            for name, fn in direct.items():
                cpu_start, start = time.process_time(), time.perf_counter()
                await asyncio.to_thread(fn)
                timings[name].append((time.perf_counter() - start) * 1000)
                cpu[name].append((time.process_time() - cpu_start) * 1000)
    return {
        name: {
            **summary(values),
            "cpu_p50_ms": round(statistics.median(cpu[name]), 2),
            "failures": failures[name],
        }
        for name, values in timings.items()
    }, extra


# -- plans ---------------------------------------------------------------------------------------------------


async def capture_statements(
    app: Any, database: Any, services: Any, seeded: dict[str, Any], made: dict[str, Any]
) -> dict[str, list[tuple[str, Any]]]:
    """The SELECTs each list/queue scenario (and the scheduler's scan) sends, with their parameters."""
    import httpx
    from sqlalchemy import event

    from workflow.scheduler import run_due_work

    captured: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and "pg_catalog" not in statement:
            captured.append((statement, parameters))

    engine = database.engine
    out: dict[str, list[tuple[str, Any]]] = {}
    transport = httpx.ASGITransport(app=app)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
            for name, make in made.items():
                if name == "create_ticket":
                    continue
                role, query, variables, _check = make()
                captured.clear()
                await client.post(
                    "/graphql",
                    json={"query": query, "variables": variables},
                    headers={"authorization": f"Bearer {seeded['keys'][role]}"},
                )
                out[name] = [s for s in captured if "api_keys" not in s[0]]
        captured.clear()
        await asyncio.to_thread(run_due_work, database, services, datetime.now(UTC))
        out["scheduler_tick"] = list(captured)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return out


KEY_WORDS = (
    "Scan",
    "Sort",
    "Limit",
    "Aggregate",
    "Join",
    "Loop",
    "Rows Removed",
    "Execution Time",
    "Heap Fetches",
)


def explain(database: Any, statements: dict[str, list[tuple[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    plans: dict[str, list[dict[str, Any]]] = {}
    with database.engine.connect() as conn:
        for name, items in statements.items():
            seen = set()
            for statement, parameters in items:
                if statement in seen:
                    continue
                seen.add(statement)
                rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).all()
                lines = [r[0] for r in rows]
                total = next((ln for ln in lines if ln.startswith("Execution Time")), "")
                plans.setdefault(name, []).append(
                    {
                        "sql": " ".join(statement.split())[:400],
                        "execution_time": total,
                        "key_lines": [ln for ln in lines if any(w in ln for w in KEY_WORDS)][:12],
                    }
                )
            conn.rollback()
    return plans


def write_plans_markdown(path: Path, by_size: dict[str, Any]) -> None:
    out = [
        "# scale_bench: PostgreSQL plans (EXPLAIN ANALYZE, BUFFERS) of the list, queue and scheduler queries",
        "",
    ]
    for size, plans in by_size.items():
        out.append(f"## {size} tickets")
        for name, items in plans.items():
            out.append(f"### {name}")
            for item in items:
                out.append(f"- `{item['sql'][:200]}` — {item['execution_time']}")
                out.extend(f"    {line}" for line in item["key_lines"])
            out.append("")
    path.write_text("\n".join(out) + "\n")


# -- main ----------------------------------------------------------------------------------------------------


def run_size(args: argparse.Namespace, size: int) -> dict[str, Any]:
    import scale_seed

    from bookbag.app import create_app
    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from storage.db import Database
    from storage.migrate import upgrade
    from workflow.live.queue_hub import QueueHub

    backend = args.backend
    url = database_url(backend, args.database_url, size)
    seed_file = RESULTS / f"scale_bench.{backend}.{size}.seeded.json"
    load_before = os.getloadavg()
    rng = random.Random(size)
    if args.reuse and seed_file.exists():
        seeded = json.loads(seed_file.read_text())
    else:
        create(backend, args.database_url, size)
        seeded = {}
    database = Database.from_url(url)
    try:
        upgrade(database.engine)
        settings = Settings(env="test", database_url=url, run_migrations_on_start=False, log_level="warning")
        services = build_services(settings)
        app = create_app(settings, services=services, database=database)  # installs the roll-up hook
        if not seeded:
            began = time.perf_counter()
            seeded = scale_seed.seed(database, services, url, size, datetime.now(UTC).replace(microsecond=0))
            seeded["seed_seconds"] = round(time.perf_counter() - began, 1)
            print(
                f"[{size}] seeded {seeded['tickets']} tickets, {seeded['rows']} rows in {seeded['seed_seconds']} s"
                f" (load {seeded['load_seconds']} s, indexes + analyze {seeded['index_seconds']} s)",
                flush=True,
            )
            seed_file.write_text(json.dumps(seeded, indent=1))
        checked = check_rollups(database, seeded["merchant_id"], rng)
        print(f"[{size}] roll-ups check: {checked}", flush=True)
        hub = QueueHub(database, clock=lambda: datetime.now(UTC))
        made = scenarios(seeded, rng)
        plans: dict[str, Any] = {}
        if backend == "postgres":
            statements = asyncio.run(capture_statements(app, database, services, seeded, made))
            plans = explain(database, statements)
        results, extra = asyncio.run(measure(app, database, services, hub, seeded, made, args.runs))
        load_after = os.getloadavg()
        for name, r in results.items():
            print(
                f"[{size}] {name:32s} p50 {r['p50_ms']:8.2f} ms  p90 {r['p90_ms']:8.2f}  p99 {r['p99_ms']:8.2f}"
                f"  max {r['max_ms']:8.2f}  cpu p50 {r['cpu_p50_ms']:7.2f}  failures {r['failures']}"
            )
        print(f"[{size}] load average before {load_before}, after {load_after}", flush=True)
        size_bytes = None
        if backend == "postgres":
            with database.engine.connect() as conn:
                size_bytes = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
        return {
            "tickets": seeded["tickets"],
            "rows": seeded["rows"],
            "seed_seconds": seeded.get("seed_seconds"),
            "seeded_at": seeded["seeded_at"],
            "database_bytes": size_bytes,
            "rollup_check": checked,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "scenarios": results,
            **extra,
            "plans": plans,
        }
    finally:
        database.dispose()
        if not (args.keep or args.reuse):
            drop(backend, args.database_url, size)
            seed_file.unlink(missing_ok=True)


def write_report(args: argparse.Namespace, out: Path, sizes: list[int], by_size: dict[str, Any]) -> None:
    done = [int(s) for s in by_size]
    first, last = str(min(done)), str(max(done))
    ratios = {
        name: round(by_size[last]["scenarios"][name]["p99_ms"] / max(0.01, r["p99_ms"]), 2)
        for name, r in by_size[first]["scenarios"].items()
    }
    print(f"p99 ratio {last}/{first}: " + ", ".join(f"{k} {v}" for k, v in ratios.items()))
    report = {
        "command": " ".join(["bench/scale_bench.py", *sys.argv[1:]]),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": args.backend,
        "cpus": os.cpu_count(),
        "runs_per_scenario": args.runs,
        "sizes_asked": sizes,
        f"p99_ratio_{last}_over_{first}": ratios,
        "target": "p99 at the largest size within 2x of the smallest",
        "sizes": by_size,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    if args.backend == "postgres":
        write_plans_markdown(
            out.with_name(out.stem + "_plans.md"), {s: r["plans"] for s, r in by_size.items()}
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--runs", type=int, default=60, help="runs per scenario and size")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BOOKBAG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL maintenance database; the bench creates and drops its own",
    )
    parser.add_argument("--keep", action="store_true", help="keep the seeded databases (for --reuse)")
    parser.add_argument("--reuse", action="store_true", help="measure again on the databases --keep left")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if args.backend == "sqlite" and max(sizes) > SQLITE_MAX:
        parser.error(f"SQLite goes up to {SQLITE_MAX} tickets here")
    out = args.out or RESULTS / (
        "scale_bench.json" if args.backend == "postgres" else "scale_bench_sqlite.json"
    )
    by_size: dict[str, Any] = {}
    for size in sizes:  # the file is rewritten after each size: a long run leaves what it measured
        by_size[str(size)] = run_size(args, size)
        write_report(args, out, sizes, by_size)
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
