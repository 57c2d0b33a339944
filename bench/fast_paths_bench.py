"""A/B benchmark of the two fast paths that lean on library internals (``bookbag/fast_paths.py``): the same
workload with the fast path on (``BOOKBAG_FAST_PATHS=auto``) and off (``off``), interleaved in one run.

    .venv/bin/python bench/fast_paths_bench.py [--rounds 4] [--requests 60] [--subscribers 500]
        [--window 4] [--rate 10] [--only execution|ws_direct]

* ``execution`` (``schema/fast_execution.py``): ``tickets(first: 50)`` with every ticket column (bench/api_bench.py's
  query and seeding) through the real app in this process (httpx's ASGI transport, no sockets), one request
  at a time. Two apps on the same database and services, one per setting. Per request: wall time and this
  process's CPU time (all threads: the resolvers' database reads run in worker threads).
* ``ws_direct`` (``bookbag/ws/direct.py``): two server processes (bench/live_bench.py's ``Server``, the real
  app through ``run_server`` with a fixed classifier), one per setting, each with ``--subscribers``
  ``queueUpdates`` subscribers (live_bench's bare-protocol clients, one client process per server) of a
  merchant of its own. In a window ``createTicket`` is sent to one server at ``--rate`` per second; each
  change fans a snapshot out to every subscriber. Per window: the server's CPU seconds (from /proc) and the
  frames its subscribers received; the figure is server CPU microseconds per delivered frame (it includes
  the mutations' own cost, the same on both sides, so its ratio understates the fan-out's). A third server
  without subscribers takes the same mutations once per round; with its median CPU subtracted, the
  ``fan_out_*`` figures are the fan-out's own cost.

Rounds run A B B A (A = fast path on), so drift in the machine's load falls on both sides alike. Every
response is checked (50 tickets, no errors; every subscriber's frames parse). The machine may be shared:
the load average before and after is recorded. Results go to stdout and ``bench/results/fast_paths.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "fast_paths.json"
sys.path.insert(0, str(REPO))

from bench import live_bench  # noqa: E402
from bench.api_bench import TICKETS_QUERY, seed  # noqa: E402
from bookbag.fast_paths import FastPathsMode  # noqa: E402

MODES: tuple[FastPathsMode, FastPathsMode] = ("auto", "off")  # A: the fast path on, B: off


def order(rounds: int) -> list[FastPathsMode]:
    """A B B A A B B A ...: each side goes first equally often."""
    return [mode for r in range(rounds) for mode in (MODES if r % 2 == 0 else MODES[::-1])]


def order_with_baseline(rounds: int) -> list[str]:
    """Each round: a baseline window (no subscribers), then A B or B A."""
    sides = order(rounds)
    return [side for r in range(rounds) for side in ("baseline", *sides[2 * r : 2 * r + 2])]


def summary(values: list[float], digits: int = 3) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


# ---------------------------------------------------------------- execution: a tickets page in-process


async def bench_execution(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    import httpx

    from bookbag.app import create_app
    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from storage.db import Database

    url = f"sqlite:///{tmp}/execution.sqlite3"
    keys = seed(url, args.tickets)
    db = Database.from_url(url)
    services = build_services(Settings())
    apps = {
        mode: create_app(
            Settings(database_url=url, env="production", run_migrations_on_start=False, fast_paths=mode),
            services=services,
            database=db,
        )
        for mode in MODES
    }
    assert apps["auto"].state.bookbag.fast_paths.execution, "the fast path is off at these library versions"
    assert not apps["off"].state.bookbag.fast_paths.execution
    body = {"query": TICKETS_QUERY}
    headers = {"authorization": f"Bearer {keys['viewer']}"}
    per_round: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    answers: dict[str, Any] = {}
    clients = {
        mode: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
        for mode, app in apps.items()
    }
    try:
        for mode in MODES:  # warm-up: plans, builders, caches, connections
            for _ in range(10):
                await clients[mode].post("/graphql", json=body, headers=headers)
        for mode in order(args.rounds):
            walls: list[float] = []
            cpu0 = time.process_time()
            for _ in range(args.requests):
                t = time.perf_counter()
                response = await clients[mode].post("/graphql", json=body, headers=headers)
                walls.append(time.perf_counter() - t)
                data = response.json()
                if (
                    response.status_code != 200
                    or "errors" in data
                    or len(data["data"]["tickets"]["edges"]) != 50
                ):
                    raise RuntimeError(f"bad answer ({mode}): {response.text[:300]}")
                answers[mode] = data
            cpu = time.process_time() - cpu0
            per_round[mode].append(
                {
                    "wall_ms_median": statistics.median(walls) * 1e3,
                    "cpu_ms_per_request": cpu / args.requests * 1e3,
                }
            )
            print(f"  execution {mode}: {per_round[mode][-1]}", file=sys.stderr)
    finally:
        for client in clients.values():
            await client.aclose()
        db.dispose()
    if answers["auto"] != answers["off"]:
        raise RuntimeError("the fast and the standard path answered differently")
    figures = {
        mode: {
            "wall_ms_median": summary([r["wall_ms_median"] for r in rounds]),
            "cpu_ms_per_request": summary([r["cpu_ms_per_request"] for r in rounds]),
        }
        for mode, rounds in per_round.items()
    }
    wall_ratios = [
        off["wall_ms_median"] / on["wall_ms_median"]
        for on, off in zip(per_round["auto"], per_round["off"], strict=True)
    ]
    cpu_ratios = [
        off["cpu_ms_per_request"] / on["cpu_ms_per_request"]
        for on, off in zip(per_round["auto"], per_round["off"], strict=True)
    ]
    return {
        "workload": f"POST /graphql tickets(first: 50), all ticket columns, {args.tickets} tickets seeded, "
        f"in-process (httpx ASGI transport), one at a time, {args.requests} requests per round",
        "rounds": args.rounds,
        "fast_path_on": figures["auto"],
        "fast_path_off": figures["off"],
        # off / on: how many times the standard path's cost the fast path's is (>1: the fast path is faster)
        "ratio_off_over_on_wall": summary(wall_ratios),
        "ratio_off_over_on_cpu": summary(cpu_ratios),
        "answers_identical": True,
        "per_round": per_round,
    }


# ---------------------------------------------------------------- ws_direct: queueUpdates fan-out


def start_server(url: str, mode: str, coalesce: float, subscribers: int) -> live_bench.Server:
    # live_bench.Server passes its environment on; every subscriber shares one viewer key
    settings = {
        "BOOKBAG_FAST_PATHS": mode,
        "BOOKBAG_WS_MAX_CONNECTIONS_PER_KEY": str(subscribers),
        "BOOKBAG_WS_MAX_CONNECTIONS_PER_MERCHANT": str(subscribers),
    }
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        return live_bench.Server(url, "fixed", coalesce, env=live_bench.CONNECT_AT_ONCE)
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


async def bench_ws_direct(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    import httpx

    # A database and a server per side, and a third server without subscribers: the mutations' own cost.
    sides = {"auto": "auto", "off": "off", "baseline": "auto"}
    urls = {side: f"sqlite:///{tmp}/ws-{side}.sqlite3" for side in sides}
    keys = {side: live_bench.prepare_database(urls[side]) for side in sides}
    servers = {
        side: start_server(urls[side], mode, args.coalesce, args.subscribers) for side, mode in sides.items()
    }
    clients: dict[str, tuple[subprocess.Popen[str], str]] = {}
    try:
        for mode in MODES:
            server = servers[mode]
            out = f"{tmp}/ws-client-{mode}.json"
            proc = subprocess.Popen(
                [
                    sys.executable,
                    live_bench.__file__,
                    "--client",
                    server.ws,
                    keys[mode]["viewer"],
                    str(args.subscribers),
                    out,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=live_bench.raise_fd_limit,
            )
            clients[mode] = (proc, out)
        for side, (proc, _) in clients.items():
            line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
            if not line.startswith("ready"):
                raise RuntimeError(f"{side} clients not ready: {line.strip()}")
        await asyncio.sleep(1.0)
        windows: list[dict[str, Any]] = []
        async with httpx.AsyncClient(timeout=60) as http:
            for side in order_with_baseline(args.rounds):
                server = servers[side]
                cpu0, t0 = server.cpu_seconds(), time.monotonic()
                for n in range(int(args.window * args.rate)):
                    body = {"input": {"subject": f"load {n}", "body": "where is my parcel"}}
                    response = await http.post(
                        f"{server.http}/graphql",
                        json={"query": live_bench.CREATE, "variables": body},
                        headers={"authorization": f"Bearer {keys[side]['partner']}"},
                    )
                    if "errors" in response.json():
                        raise RuntimeError(response.text[:300])
                    await asyncio.sleep(max(0.0, t0 + (n + 1) / args.rate - time.monotonic()))
                await asyncio.sleep(args.coalesce + 0.5)  # the last snapshot reaches everyone
                windows.append(
                    {
                        "mode": side,
                        "start": t0,
                        "end": time.monotonic(),
                        "server_cpu_s": server.cpu_seconds() - cpu0,
                    }
                )
                print(f"  ws_direct {side}: {windows[-1]['server_cpu_s']:.2f} s CPU", file=sys.stderr)
    finally:
        records: dict[str, list[list[Any]]] = {}
        failures: list[str] = []
        for side, (proc, out) in clients.items():
            try:
                proc.communicate("stop\n", timeout=60)
                data = json.loads(Path(out).read_text())
                records[side], failures = data["records"], failures + data["failures"]
            except Exception as exc:  # report what is missing; the servers stop below
                failures.append(f"{side} clients: {exc}")
        for server in servers.values():
            server.stop()
    if failures:
        raise RuntimeError(f"subscribers failed: {failures[:3]}")
    baseline_cpu = statistics.median(w["server_cpu_s"] for w in windows if w["mode"] == "baseline")
    per_round: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for window in windows:
        if window["mode"] == "baseline":
            continue
        mode = window["mode"]
        frames = sum(
            1
            for subscriber in records[mode]
            for t, _, _ in subscriber
            if window["start"] <= t <= window["end"]
        )
        per_round[mode].append(
            {
                "frames": frames,
                "server_cpu_s": round(window["server_cpu_s"], 3),
                "server_cpu_us_per_frame": window["server_cpu_s"] / max(frames, 1) * 1e6,
                "fan_out_cpu_us_per_frame": (window["server_cpu_s"] - baseline_cpu) / max(frames, 1) * 1e6,
            }
        )

    def ratios(figure: str) -> dict[str, float]:
        return summary(
            [off[figure] / on[figure] for on, off in zip(per_round["auto"], per_round["off"], strict=True)]
        )

    def figures_of(mode: str) -> dict[str, Any]:
        return {
            "frames_per_window": summary([r["frames"] for r in per_round[mode]], 0),
            "server_cpu_us_per_frame": summary([r["server_cpu_us_per_frame"] for r in per_round[mode]], 1),
            "fan_out_cpu_us_per_frame": summary([r["fan_out_cpu_us_per_frame"] for r in per_round[mode]], 1),
        }

    return {
        "workload": f"{args.subscribers} queueUpdates subscribers per server, createTicket at {args.rate}/s "
        f"for {args.window} s per window, coalescing {args.coalesce} s, SQLite, fixed classifier",
        "rounds": args.rounds,
        # the same mutations on a server without subscribers, once per round: subtracted for fan_out_*
        "baseline_server_cpu_s_per_window": summary(
            [w["server_cpu_s"] for w in windows if w["mode"] == "baseline"]
        ),
        "fast_path_on": figures_of("auto"),
        "fast_path_off": figures_of("off"),
        "ratio_off_over_on_cpu_per_frame": ratios("server_cpu_us_per_frame"),
        "ratio_off_over_on_fan_out_cpu_per_frame": ratios("fan_out_cpu_us_per_frame"),
        "per_round": per_round,
    }


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4, help="rounds; each runs A and B once")
    parser.add_argument("--requests", type=int, default=60, help="execution: requests per side and round")
    parser.add_argument("--tickets", type=int, default=200, help="execution: tickets seeded")
    parser.add_argument("--subscribers", type=int, default=500, help="ws_direct: subscribers per server")
    parser.add_argument("--window", type=float, default=4.0, help="ws_direct: seconds of load per window")
    parser.add_argument("--rate", type=float, default=10.0, help="ws_direct: createTicket per second")
    parser.add_argument("--coalesce", type=float, default=0.1, help="BOOKBAG_QUEUE_COALESCE_SECONDS")
    parser.add_argument("--only", choices=["execution", "ws_direct"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    live_bench.raise_fd_limit()
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "cpus": os.cpu_count(),
        # The machine may be shared: a high load average means each side got a fraction of a core.
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    tmp = tempfile.mkdtemp(prefix="fast-paths-bench-")
    try:
        if args.only in (None, "execution"):
            results["execution"] = asyncio.run(bench_execution(args, tmp))
            print(json.dumps(results["execution"], indent=2), flush=True)
        if args.only in (None, "ws_direct"):
            results["ws_direct"] = asyncio.run(bench_ws_direct(args, tmp))
            print(json.dumps(results["ws_direct"], indent=2), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
