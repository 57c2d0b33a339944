"""What metrics and JSON request logs cost per request: the same app with ``/metrics`` off, on, and on with
JSON request lines (written to /dev/null), driven through the ASGI interface in one process, interleaved.

    .venv/bin/python bench/observability_bench.py [--rounds 12] [--per-round 60]

One SQLite database and one set of services; each round runs ``--per-round`` ``tickets(first: 50)`` queries and
as many ``createTicket`` mutations against each configuration in turn (the order rotates every round), and
records the process CPU time and wall time per request. The machine is shared: the ratios to "off" within
the same run are the figures to read, and the cost of one JSON request line is also measured alone. Results go
to stdout and ``bench/results/observability_bench.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bookbag.app import create_app
from bookbag.logs import JsonFormatter, configure_logging
from bookbag.settings import Settings
from bookbag.wiring import build_services
from storage.db import Database
from storage.migrate import upgrade
from workflow.metrics import NoMetrics
from workflow.tenancy.merchants import create_api_key, create_merchant

PAGE = "query Page { tickets(first: 50) { edges { node { id subject stage priority } } } }"
CREATE = """mutation Create($input: CreateTicketInput!) { createTicket(input: $input) {
  errors { code } ticket { id } } }"""
CONFIGS = ("off", "metrics", "metrics+json_logs")


async def run(rounds: int, per_round: int) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bookbag-obs-"))
    url = f"sqlite:///{directory / 'bench.sqlite3'}"
    database = Database.from_url(url)
    upgrade(database.engine)
    base = Settings(env="test", database_url=url, run_migrations_on_start=False, heavy_in_processes=False)
    services = build_services(base)
    with database.unit_of_work() as session:
        merchant = create_merchant(session, name="Bench", slug="bench")
        key = create_api_key(session, merchant_id=merchant.id, role="partner", name="bench").secret
    # JSON lines formatted and written, to /dev/null (only the json_logs app emits request lines)
    configure_logging("info", "json")
    sink = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
    sink.setFormatter(JsonFormatter())
    logging.getLogger("bookbag").handlers[:] = [sink]
    apps = {
        name: create_app(
            base.model_copy(
                update={"metrics": name != "off", "log_format": "json" if "json" in name else "text"}
            ),
            # one classifier and policy engine; each app its own metrics seam ("off" keeps NoMetrics)
            services=dataclasses.replace(services, metrics=NoMetrics()),
            database=database,
        )
        for name in CONFIGS
    }
    headers = {"authorization": f"Bearer {key}"}
    samples: dict[str, dict[str, list[float]]] = {
        n: {"page_cpu": [], "page_wall": [], "create_cpu": [], "create_wall": []} for n in CONFIGS
    }
    for round_ in range(-1, rounds):  # round -1 warms every app up and is not recorded
        order = CONFIGS[round_ % 3 :] + CONFIGS[: round_ % 3]
        for name in order:
            transport = httpx.ASGITransport(app=apps[name])
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for kind, body in (
                    (
                        "create",
                        lambda n: {
                            "query": CREATE,
                            "variables": {"input": {"subject": f"late parcel {n}", "body": "ten days"}},
                        },
                    ),
                    ("page", lambda n: {"query": PAGE}),
                ):
                    cpu, wall = time.process_time(), time.perf_counter()
                    for n in range(per_round):
                        response = await client.post("/graphql", json=body(n), headers=headers)
                        assert response.status_code == 200 and "errors" not in response.json(), response.text
                    if round_ >= 0:
                        samples[name][f"{kind}_cpu"].append((time.process_time() - cpu) / per_round * 1e6)
                        samples[name][f"{kind}_wall"].append((time.perf_counter() - wall) / per_round * 1e6)
    summary: dict[str, Any] = {}
    for name in CONFIGS:
        summary[name] = {
            metric: round(statistics.median(values), 1) for metric, values in samples[name].items()
        }
    for name in CONFIGS[1:]:
        summary[name]["ratio_to_off"] = {
            metric: round(summary[name][metric] / summary["off"][metric], 3) for metric in samples[name]
        }
    database.dispose()
    return {
        "rounds": rounds,
        "per_round": per_round,
        "unit": "µs per request (median of rounds)",
        "results": summary,
        # the request line alone, formatted and written, without the noise of whole requests
        "json_request_line_cpu_us": round(line_cost(), 1),
        # what the edge adds per operation with metrics on (count, latency, errors), measured alone
        "metrics_edge_cpu_us": round(edge_cost(), 1),
    }


def edge_cost(calls: int = 50_000) -> float:
    from strawberry.types import ExecutionResult

    from bookbag.metrics import Metrics

    metrics = Metrics()
    result = ExecutionResult(data={"tickets": {"edges": [{"node": {"id": "t"}}] * 50}}, errors=None)
    started = time.process_time()
    for _ in range(calls):
        metrics.operation("Page", 0.004)
        metrics.errors_of(result)
    return (time.process_time() - started) / calls * 1e6


def line_cost(lines: int = 20_000) -> float:
    log = logging.getLogger("bookbag.request")
    extra = {
        "request_id": "9f2c",
        "merchant": "mer_x",
        "operation": "Page",
        "status": 200,
        "duration_ms": 1.2,
    }
    started = time.process_time()
    for _ in range(lines):
        log.info("%s %s %s %s %.1f ms", "POST", "/graphql", 200, "Page", 1.2, extra=extra)
    return (time.process_time() - started) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=60)
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds, args.per_round))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    out = Path(__file__).parent / "results" / "observability_bench.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
