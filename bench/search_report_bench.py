"""Ticket search and report latency at 100k tickets on PostgreSQL, through the GraphQL HTTP API.

    .venv/bin/python bench/search_report_bench.py [--tickets 100000] [--other 10000] [--runs 60]
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--keep | --reuse]

A fresh database (``bookbag_search_bench``, made from the maintenance URL and dropped at the end) is
migrated and seeded with bulk INSERTs: one merchant with ``--tickets`` tickets over 90 days (customers,
order ids, tags, teams and agents, stage transitions consistent with each ticket's stage, AI and agent
action requests, corrections, escalation firings) and another merchant with ``--other`` (so every query
also has to leave another store's rows aside). The report roll-ups are then filled by
``workflow.reports.rollups.rebuild`` — the code the units of work run — and timed; ``ANALYZE`` follows.

Each scenario is one GraphQL request sent through the ASGI app in this process (``create_app``, real
auth, real resolvers and database; no network hop). Scenarios are interleaved round-robin, ``--runs`` times
each, each run with other values (another email, order id, word), so a load spike on the shared machine
hits all of them alike. Every answer is checked (no errors, the expected kind of result). p50/p90/p99 and
the maximum per scenario go to stdout and ``bench/results/search_report_bench.json``, with the machine's
load average before and after, and the PostgreSQL plans (EXPLAIN ANALYZE) of the main search queries.
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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results" / "search_report_bench.json"
DB_NAME = "bookbag_search_bench"

WORDS = [
    "refund",
    "broken",
    "parcel",
    "delayed",
    "invoice",
    "address",
    "teapot",
    "mug",
    "lamp",
    "chair",
    "size",
    "colour",
    "return",
    "exchange",
]
SUBJECTS = [
    "Refund for a broken {w}",
    "Where is my parcel",
    "Change the address of my order",
    "Invoice for order {o}",
    "Wrong size {w}",
    "Damaged {w} on arrival",
    "Cancel my order please",
    "Discount code does not work",
]
BODIES = [
    "Order {o} arrived with a broken {w}. I would like a refund.",
    "My parcel for order {o} has been delayed for ten days, where is it?",
    "Please send order {o} to my new address in {c}.",
    "I need an invoice for {o} for my company.",
    "The {w} I got is the wrong colour, can I exchange it?",
]
CITIES = ["Lyon", "Berlin", "Porto", "Leeds", "Gent", "Turin"]
NAMES = [
    "Alice Martin",
    "Bob Stone",
    "Carol Diaz",
    "Dan Wu",
    "Eve Novak",
    "Farah Ali",
    "Gus Berg",
    "Hana Sato",
]
TAGS = ["vip", "fragile", "repeat", "wholesale", "press", "gift"]
CHANNELS = ["email", "chat", "contact_form", "phone", "social", "api"]
PRIORITIES = ["urgent"] * 5 + ["high"] * 20 + ["normal"] * 60 + ["low"] * 15
PATH = ["new", "triaged", "assigned", "in_progress", "resolved", "closed"]
FINAL = (
    ["closed"] * 45
    + ["resolved"] * 25
    + ["in_progress"] * 10
    + ["assigned"] * 10
    + ["triaged"] * 6
    + ["waiting_on_customer"] * 4
)


def _admin_conninfo(url: str) -> str:
    from sqlalchemy.engine import make_url

    from storage.db import normalize_url

    return make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def fresh_database(admin_url: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    from storage.db import normalize_url

    with psycopg.connect(_admin_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return make_url(normalize_url(admin_url)).set(database=DB_NAME).render_as_string(hide_password=False)


def drop_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(_admin_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def seed_merchant(
    database: Any, rng: random.Random, count: int, slug: str, labels: list[str]
) -> dict[str, Any]:
    """Bulk-insert one merchant's history; returns its keys and some values to search for."""
    from sqlalchemy import insert

    from storage.tables import (
        ActionRequest,
        ClassificationCorrection,
        EscalationFiring,
        StageTransition,
        Ticket,
        new_id,
    )
    from workflow.tenancy import agents
    from workflow.tenancy.merchants import create_api_key, create_merchant
    from workflow.tenancy.principal import Principal, Role

    with database.unit_of_work() as session:
        merchant = create_merchant(session, name=slug, slug=slug)
        key = create_api_key(session, merchant_id=merchant.id, role="admin", name="bench").secret
        admin = Principal(merchant_id=merchant.id, role=Role.ADMIN)
        teams = [
            agents.create_team(session, admin, name=n).id for n in ("support", "billing", "senior", "returns")
        ]
        staff = [
            agents.create_agent(
                session, admin, name=f"Agent {i}", email=f"a{i}@{slug}.test", teams=[], capacity=1000
            ).id
            for i in range(20)
        ]
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=90)
    customers = max(1, count // 2)
    probe: dict[str, list[str]] = {"emails": [], "orders": []}
    tickets, transitions, actions, corrections, firings = [], [], [], [], []

    def flush() -> None:
        with database.engine.begin() as conn:  # raw bulk INSERTs: no roll-up hook, rebuilt afterwards
            for model, rows in (
                (Ticket, tickets),
                (StageTransition, transitions),
                (ActionRequest, actions),
                (ClassificationCorrection, corrections),
                (EscalationFiring, firings),
            ):
                if rows:
                    conn.execute(insert(model.__table__), rows)  # type: ignore[attr-defined]
                    rows.clear()

    for i in range(count):
        created = start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))
        word, order = rng.choice(WORDS), f"#{100000 + i}"
        customer = rng.randrange(customers)
        email = f"c{customer}@{slug}.example.com"
        final = rng.choice(FINAL)
        steps = PATH[: PATH.index(final) + 1] if final in PATH else [*PATH[:4], final]
        at = created
        moments = [at]
        for _ in steps[1:]:
            at = at + timedelta(
                seconds=rng.choice([0, 30, 300, 1800, 3600, 4 * 3600, 26 * 3600]) + rng.randrange(600)
            )
            moments.append(at)
        priority = rng.choice(PRIORITIES)
        responded = created + timedelta(minutes=rng.randrange(5, 2000)) if len(steps) > 3 else None
        resolved = moments[steps.index("resolved")] if "resolved" in steps else None
        ticket_id = new_id("tkt")
        tickets.append(
            {
                "id": ticket_id,
                "merchant_id": merchant.id,
                "channel": rng.choice(CHANNELS),
                "subject": rng.choice(SUBJECTS).format(w=word, o=order),
                "body": rng.choice(BODIES).format(w=word, o=order, c=rng.choice(CITIES)),
                "customer_email": email,
                "customer_name": rng.choice(NAMES),
                "customer_vip": rng.random() < 0.05,
                "customer_lifetime_value": None,
                "customer_order_count": None,
                "order_id": order,
                "order_total": 40.0,
                "order_currency": "EUR",
                "order_financial_status": None,
                "order_fulfillment_status": None,
                "order_created_at": None,
                "order_delivered_at": None,
                "category": rng.choice(labels),
                "category_confidence": 0.8,
                "priority": priority,
                "priority_confidence": 0.8,
                "model_version": "bench",
                "stage": steps[-1],
                "team_id": rng.choice(teams),
                "assignee_id": rng.choice(staff) if len(steps) > 2 else None,
                "tags": rng.sample(TAGS, rng.randrange(3)),
                "needs_human": rng.random() < 0.05,
                "routing_rule_id": None,
                "first_response_due_at": created + timedelta(hours=8),
                "resolution_due_at": created + timedelta(days=3),
                "first_responded_at": responded,
                "resolved_at": resolved,
                "sla_breached_at": created + timedelta(hours=8)
                if responded is None or responded > created + timedelta(hours=8)
                else None,
                "version": len(steps),
                "created_at": created,
                "updated_at": moments[-1],
                "stage_entered_at": moments[-1],
            }
        )
        if len(probe["emails"]) < 500 and rng.random() < 0.01:
            probe["emails"].append(email)
            probe["orders"].append(order)
        for k, stage in enumerate(steps):
            transitions.append(
                {
                    "merchant_id": merchant.id,
                    "ticket_id": ticket_id,
                    "from_stage": steps[k - 1] if k else None,
                    "to_stage": stage,
                    "seconds_in_from_stage": (moments[k] - moments[k - 1]).total_seconds() if k else None,
                    "actor": "system" if k < 2 else "agent",
                    "at": moments[k],
                }
            )
        if rng.random() < 0.3:
            effect = rng.choice(["allow", "allow", "require_approval", "deny"])
            status = {"allow": "executed", "deny": "denied"}.get(effect) or rng.choice(
                ["approved", "rejected", "pending_approval"]
            )
            asked = created + timedelta(minutes=rng.randrange(1, 600))
            actions.append(
                {
                    "id": new_id("act"),
                    "merchant_id": merchant.id,
                    "ticket_id": ticket_id,
                    "type": rng.choice(["refund", "reply", "cancel_order"]),
                    "amount": 20.0,
                    "params": {},
                    "actor": rng.choice(["ai", "ai", "agent"]),
                    "api_key_id": None,
                    "status": status,
                    "effect": effect,
                    "matched_rules": [],
                    "deciding_rules": [],
                    "approvers": [],
                    "handoff": False,
                    "explanation": "",
                    "ruleset_version": None,
                    "facts": {},
                    "decided_by_key_id": None,
                    "decided_at": asked + timedelta(minutes=rng.randrange(1, 300))
                    if status in ("approved", "rejected")
                    else None,
                    "reason": None,
                    "created_at": asked,
                }
            )
        if rng.random() < 0.03:
            corrections.append(
                {
                    "id": new_id("cor"),
                    "merchant_id": merchant.id,
                    "ticket_id": ticket_id,
                    "subject": "",
                    "body": "",
                    "old_category": rng.choice(labels),
                    "old_priority": None,
                    "category": rng.choice(labels),
                    "priority": None,
                    "model_version": "bench",
                    "api_key_id": None,
                    "created_at": created + timedelta(hours=1),
                }
            )
        if rng.random() < 0.02:
            firings.append(
                {
                    "merchant_id": merchant.id,
                    "ticket_id": ticket_id,
                    "rule_id": "high-stale",
                    "stage_entered_at": created,
                    "fired_at": created + timedelta(hours=4),
                }
            )
        if len(tickets) >= 5000:
            flush()
    flush()
    return {"merchant_id": merchant.id, "key": key, "teams": teams, "probe": probe}


def rebuild_rollups(database: Any, merchant_id: str) -> float:
    from workflow.reports import rollups as report_rollups

    began = time.perf_counter()
    report_rollups.rebuild(database, merchant_id)
    return time.perf_counter() - began


TICKETS = """query($f: TicketFilter, $o: TicketOrder) { tickets(filter: $f, orderBy: $o, first: 50) {
  totalCount edges { node { id subject stage priority customer { email } order { id } } } } }"""
REPORT = """query($start: Date, $end: Date, $g: ReportGranularity!, $s: ReportSplit!) {
  report(start: $start, end: $end, granularity: $g, split: $s) {
    volume { bucket group created closed backlog }
    sla { bucket group firstResponseAttainment resolutionAttainment breaches escalations }
    durations { group metric fromStage toStage count meanSeconds p50Seconds p90Seconds }
    trends { bucket group metric p50Seconds }
    actions { group actor effect status count } corrections { group fromCategory toCategory count } } }"""


def scenarios(seeded: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """name → a function giving (query, variables, check) for one run."""
    probe = seeded["probe"]
    today = date.today()

    def tickets(flt: Any, order: Any = None, expect_some: bool = True) -> Any:
        def make() -> tuple[str, dict[str, Any], Any]:
            f = flt() if callable(flt) else flt

            def check(data: dict[str, Any]) -> bool:
                return (data["tickets"]["totalCount"] > 0) or not expect_some

            return TICKETS, {"f": f, "o": order}, check

        return make

    def report(days: int, g: str, s: str) -> Any:
        def make() -> tuple[str, dict[str, Any], Any]:
            variables = {
                "start": (today - timedelta(days=days - 1)).isoformat(),
                "end": today.isoformat(),
                "g": g,
                "s": s,
            }
            return REPORT, variables, lambda data: len(data["report"]["volume"]) > 0

        return make

    return {
        "search_email": tickets(lambda: {"search": rng.choice(probe["emails"])}),
        "filter_customer_email": tickets(lambda: {"customerEmail": rng.choice(probe["emails"])}),
        "filter_order_id": tickets(lambda: {"orderId": rng.choice(probe["orders"])}),
        "search_order_id": tickets(lambda: {"search": rng.choice(probe["orders"])}),
        "search_common_word": tickets(lambda: {"search": rng.choice(WORDS)}),
        "search_two_words": tickets(
            lambda: {"search": f"{rng.choice(WORDS)} {rng.choice(CITIES)}"}, expect_some=False
        ),
        "team_open_by_priority": tickets(
            lambda: {"teamId": rng.choice(seeded["teams"]), "openOnly": True},
            {"field": "PRIORITY", "direction": "DESC"},
        ),
        "sla_breached_by_age_in_stage": tickets(
            {"slaBreached": True, "openOnly": True}, {"field": "STAGE_AGE"}
        ),
        "needs_human_by_updated": tickets({"needsHuman": True}, {"field": "UPDATED"}),
        "report_30d_day": report(30, "DAY", "NONE"),
        "report_90d_week_team": report(90, "WEEK", "TEAM"),
        "report_30d_day_category": report(30, "DAY", "CATEGORY"),
    }


async def measure(app: Any, key: str, made: dict[str, Any], runs: int) -> dict[str, Any]:
    import httpx

    timings: dict[str, list[float]] = {name: [] for name in made}
    failures: dict[str, int] = dict.fromkeys(made, 0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        headers = {"authorization": f"Bearer {key}"}
        for make in made.values():  # warm-up: one of each
            query, variables, _check = make()
            await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
        for _ in range(runs):
            for name, make in made.items():
                query, variables, check = make()
                began = time.perf_counter()
                response = await client.post(
                    "/graphql", json={"query": query, "variables": variables}, headers=headers
                )
                elapsed = (time.perf_counter() - began) * 1000
                body = response.json()
                if response.status_code != 200 or body.get("errors") or not check(body["data"]):
                    failures[name] += 1
                    print(f"  {name}: unexpected answer {str(body)[:300]}", file=sys.stderr)
                timings[name].append(elapsed)
    return {
        name: {
            "runs": len(values),
            "failures": failures[name],
            "p50_ms": round(statistics.median(values), 2),
            "p90_ms": round(statistics.quantiles(values, n=10, method="inclusive")[8], 2),
            "p99_ms": round(statistics.quantiles(values, n=100, method="inclusive")[98], 2),
            "max_ms": round(max(values), 2),
        }
        for name, values in timings.items()
    }


def plans(database: Any, merchant_id: str, probe: dict[str, list[str]]) -> dict[str, str]:
    """EXPLAIN ANALYZE of the searches' SQL as the service builds it."""
    from sqlalchemy.dialects import postgresql
    from sqlmodel import col, func, select

    from storage.tables import Ticket
    from workflow.tickets.service import TicketFilter, _filtered

    def sql(query: Any) -> str:
        return str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))  # type: ignore[no-untyped-call]

    cases = {
        "search_email_page": TicketFilter(search=probe["emails"][0]),
        "search_common_word_page": TicketFilter(search="refund"),
        "filter_order_id_page": TicketFilter(order_id=probe["orders"][0]),
    }
    out = {}
    with database.engine.connect() as conn:
        for name, flt in cases.items():
            page = (
                _filtered(select(Ticket.id), merchant_id, flt, "postgresql")
                .order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
                .limit(51)
            )
            count = _filtered(select(func.count()).select_from(Ticket), merchant_id, flt, "postgresql")
            for suffix, query in (("", page), ("_count", count)):
                rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF) {sql(query)}")
                out[name + suffix] = "\n".join(r[0] for r in rows)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--other", type=int, default=10_000, help="tickets of a second merchant")
    parser.add_argument("--runs", type=int, default=60, help="requests per scenario")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BOOKBAG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL maintenance database; the bench creates and drops its own",
    )
    parser.add_argument("--keep", action="store_true", help="keep the seeded database (for --reuse)")
    parser.add_argument("--reuse", action="store_true", help="measure again on the database --keep left")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from bookbag.app import create_app
    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from storage.db import Database
    from storage.migrate import upgrade

    load_before = os.getloadavg()
    seed_file = args.out.with_suffix(".seeded.json")
    rng = random.Random(17)
    if args.reuse:  # the database a --keep run left, and what it seeded
        from sqlalchemy.engine import make_url

        from storage.db import normalize_url

        url = (
            make_url(normalize_url(args.database_url))
            .set(database=DB_NAME)
            .render_as_string(hide_password=False)
        )
        kept = json.loads(seed_file.read_text())
        seeded, seed_seconds, rebuild_seconds = kept["seeded"], kept["seed_seconds"], kept["rebuild_seconds"]
    else:
        url = fresh_database(args.database_url)
    database = Database.from_url(url)
    try:
        upgrade(database.engine)
        settings = Settings(env="test", database_url=url, run_migrations_on_start=False, log_level="warning")
        services = build_services(settings)
        labels = list(services.classifier.info.labels)
        if not args.reuse:
            began = time.perf_counter()
            seeded = seed_merchant(database, rng, args.tickets, "bench-main", labels)
            other = seed_merchant(database, rng, args.other, "bench-other", labels)
            seed_seconds = time.perf_counter() - began
            print(f"seeded {args.tickets} + {args.other} tickets in {seed_seconds:.1f} s", flush=True)
            rebuild_seconds = rebuild_rollups(database, seeded["merchant_id"])
            rebuild_rollups(database, other["merchant_id"])
            print(
                f"report roll-ups rebuilt from {args.tickets} tickets in {rebuild_seconds:.1f} s", flush=True
            )
            seed_file.write_text(
                json.dumps(
                    {"seeded": seeded, "seed_seconds": seed_seconds, "rebuild_seconds": rebuild_seconds}
                )
            )
        with database.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
            rollup_rows = conn.exec_driver_sql(
                "SELECT count(*) FROM report_counts WHERE merchant_id = %(m)s", {"m": seeded["merchant_id"]}
            ).scalar()
        app = create_app(settings, services=services, database=database)
        made = scenarios(seeded, rng)
        results = asyncio.run(measure(app, seeded["key"], made, args.runs))
        load_after = os.getloadavg()
        for name, r in results.items():
            print(
                f"{name:32s} p50 {r['p50_ms']:8.1f} ms  p90 {r['p90_ms']:8.1f}  p99 {r['p99_ms']:8.1f}  max {r['max_ms']:8.1f}  failures {r['failures']}"
            )
        print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} CPUs)")
        report = {
            "command": " ".join(["bench/search_report_bench.py", *sys.argv[1:]]),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "tickets": args.tickets,
            "other_merchant_tickets": args.other,
            "runs_per_scenario": args.runs,
            "seed_seconds": round(seed_seconds, 1),
            "rollup_rebuild_seconds": round(rebuild_seconds, 1),
            "rollup_rows": rollup_rows,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "cpus": os.cpu_count(),
            "scenarios": results,
            "plans": plans(database, seeded["merchant_id"], seeded["probe"]),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results in {args.out}")
    finally:
        database.dispose()
        if not (args.keep or args.reuse):
            drop_database(args.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
