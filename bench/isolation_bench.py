"""Tenant isolation under hostile load (issue #12): how much one hostile merchant (A) slows another (B).

    .venv/bin/python bench/isolation_bench.py [--phase-seconds 20] [--b-rate 20] [--database-url URL]
        [--phases quiet,regex,alias_bomb,cost,subscriptions,publish,flood] [--server-env NAME=VALUE ...]

One ``bookbag serve`` process (``bench/live_bench.Server``: the real CLI, hence ``bookbag.server.run_server``)
on a fresh SQLite file, or on ``--database-url`` (e.g. PostgreSQL; two new merchants are added to it).
Both merchants are made by the demo path (``workflow.demo.seed.create_demo``, what ``bookbag demo`` runs): keys
for every role, teams, agents and ``--tickets`` tickets each.

Merchant B runs a steady mix all the time, open loop: ``--b-rate`` requests per second in total (default 20),
one every 1/rate seconds in the cycle tickets page (``tickets(first: 50)``, viewer key) → ``createTicket``
(partner key) → ``{ me }`` (viewer key). Each request's latency is measured from the moment it was
*scheduled* to go, not from when it went, so a stalled server or a late client shows up in the figures
instead of thinning the samples (no coordinated omission). A request that fails or times out
(``--timeout``) counts as an error and its time so far counts in the percentiles. B runs in its own process
with its own event loop (and httpx): A's traffic is generated in this process, and a flood or 2,000
websocket subscriptions here would otherwise delay B's sends (event loop and GIL) and be mistaken for the
server's slowness. Both processes read the same system-wide monotonic clock, so each of B's requests is put
in the phase its scheduled time falls into. B's process still shares the machine's cores: how late it
started a request after its scheduled time is reported per phase (``client_start_lag_max_ms``).

Phases, one after another, ``--phase-seconds`` each (A's requests still unanswered at a phase's end are
cancelled and counted as such). Between phases, ``--settle-seconds`` pass, ``/healthz`` must answer, and
the next phase waits until a ``{ me }`` with B's key is answered within 250 ms again (at most
``--recover-seconds``): work A left running in the server would otherwise be charged to the next phase.
How long that took is reported, and B's samples from then are reported apart ("after"). A server that
exited, or did not recover within that time, is restarted on the same database before the next phase (and
the restart recorded there), so every phase is measured on its own:

* ``quiet``: A does nothing; B's baseline.
* ``regex``: ``simulate`` (viewer key) of a draft whose first routing rule is ``matches: "(a+)+$"``,
  against a body of ``--regex-body-chars`` ``a``s ending in ``!`` (catastrophic for a backtracking engine).
* ``alias_bomb``: ``validateRuleset`` (viewer key) of a "billion laughs" YAML document, ``--alias-levels``
  levels of nine aliases (7 levels: about 350 bytes, like the 337-byte source in the issue).
* ``cost``: batches of 5 queries (viewer key), each 30 aliased ``tickets(first: 100)`` with nested lists
  (messages, actions and their ticket's messages, the assignee's teams) through one fragment.
* ``subscriptions``: ``--subscriptions`` ``ticketEvents`` subscriptions, ``--subs-per-socket`` per websocket,
  the sockets spread over ``--subs-keys`` of A's keys in turn (viewer, agent, ai, partner, admin: one key
  is capped at 50 sockets, so 2,000 subscriptions need at least two keys; with ``--subs-keys 1`` the
  viewer key alone opens them all and the sockets over its cap are refused), while A's partner key creates ``--a-create-rate`` tickets per second.
* ``publish``: ``publishRuleset`` (admin key) of a 2,000-rule ruleset (``--publish-rules``; flow-style YAML,
  about 215 KB, under the API's 256 KiB body cap), renamed per request so every publish is a new version.
* ``flood``: ``{ me }`` (viewer key) from ``--flood-clients`` clients, each sending its next request as soon
  as the previous answer arrives, far beyond any sensible rate limit.

The HTTP phases other than the flood run ``--a-clients`` such clients. A's HTTP client is ``api_bench``'s
bare keep-alive connection (cheap per request, so the generator costs the shared cores little).

Reported per phase: B's requests, errors (by reason), p50/p95/p99/max (all and per kind); what A got
(counts of HTTP statuses, GraphQL error codes, payload error codes, ruleset problem codes, websocket close
codes and messages; A's own latencies); the server's RSS (peak, sampled every 0.2 s and read from VmHWM
after resetting it at the phase's start, and at the end; also summed with the processes it started, such
as workers for heavy work, which the table shows), its CPU, its log growth, and whether it stayed up;
the CPU this process and B's used. Target (issue #12): in every hostile phase B's p99 is at most twice its
quiet p99 and under 250 ms; a phase PASSes when that holds, B had no errors and the server stayed up.
Figures go to stdout and ``bench/results/isolation.json`` (``--out``), with the commit they ran against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import queue
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "isolation.json"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from api_bench import (  # noqa: E402 - sibling benchmark modules (bench/ is this script's directory)
    CREATE_QUERY,
    SUBJECTS,
    TICKETS_QUERY,
    Connection,
    check_create,
    check_page,
    http_request,
)
from live_bench import Server, cpu_seconds_of, percentile, raise_fd_limit  # noqa: E402
from policy_bench import ACTIONS, ACTORS, STAGES  # noqa: E402

PHASES = ("quiet", "regex", "alias_bomb", "cost", "subscriptions", "publish", "flood")
TARGET_P99_MS = 250.0
TARGET_RATIO = 2.0

ME_QUERY = "query Me { me { role merchant { id } } }"
SIMULATE = """mutation Simulate($s: String, $cases: [SimulationCaseInput!]!) { simulate(source: $s, cases: $cases) {
  errors { code message } problems { code message } results { label routing } } }"""
VALIDATE = """mutation Validate($s: String!) { validateRuleset(source: $s) {
  valid errors { code message } problems { code message } } }"""
PUBLISH = """mutation Publish($s: String!) { publishRuleset(source: $s, message: "isolation bench") {
  errors { code message } problems { code message } rulesetVersion { version } } }"""
TICKET_EVENTS = "subscription Events { ticketEvents { kind ticketId at data } }"
NEXT_FRAME = re.compile(r'"type":\s*"next"')


# ---------------------------------------------------------------- what the hostile merchant sends


def regex_draft_source(default_source: str) -> str:
    """The bundled default ruleset with a first routing rule whose pattern backtracks exponentially."""
    rule = (
        '  - id: catastrophic\n    when: {fact: ticket.body, matches: "(a+)+$"}\n'
        "    assign: {team: support, strategy: round_robin}\n"
    )
    if "\nrouting:\n" not in default_source:
        raise RuntimeError("the default ruleset has no routing section to put the rule in")
    return default_source.replace("\nrouting:\n", "\nrouting:\n" + rule, 1)


def alias_bomb_source(levels: int, width: int = 9) -> str:
    """A "billion laughs" document: ``levels`` anchors, each a list of ``width`` aliases of the one before."""
    names = [f"l{i}" for i in range(levels)]
    lines = ["ruleset: laughs", f"x0: &{names[0]} [" + ",".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &{names[i]} [" + ",".join([f"*{names[i - 1]}"] * width) + "]")
    lines.append(f"description: *{names[-1]}")
    return "\n".join(lines) + "\n"


def cost_batch(operations: int = 5, aliases: int = 30, page: int = 100) -> list[dict[str, Any]]:
    """``operations`` queries of ``aliases`` aliased ``tickets(first: page)``, their nested lists in one
    fragment (written once, executed per alias: few tokens, much work)."""
    fragment = (
        "fragment Deep on Ticket { id subject body tags messages { id body authorType createdAt } "
        "actions { id type status params ticket { id messages { id body } } } assignee { teams { id name } } }"
    )
    fields = " ".join(
        f"t{i}: tickets(first: {page}) {{ edges {{ node {{ ...Deep }} }} }}" for i in range(aliases)
    )
    return [{"query": f"query Costly{n} {{ {fields} }} {fragment}"} for n in range(operations)]


def large_ruleset_source(rules: int) -> str:
    """A valid ruleset of ``rules`` permission rules, one flow-style line each (~105 bytes), so that 2,000 of
    them fit under the API's 256 KiB body cap; thresholds vary so the rules compile to distinct conditions."""
    lines = ["ruleset: large", f"stages: [{', '.join(STAGES)}]", "defaults: {effect: deny}", "permissions:"]
    for i in range(rules):
        effect = ("allow", "deny")[i % 2]
        lines.append(
            f"  - {{id: r{i}, actors: [{ACTORS[i % len(ACTORS)]}], actions: [{ACTIONS[i % len(ACTIONS)]}], "
            f"when: {{fact: action.amount, gt: {i % 997}}}, effect: {effect}}}"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- outcomes


def outcome_labels(status: int, body: bytes) -> list[str]:
    """What one HTTP answer said: its status, then every GraphQL error code, payload error code and
    ruleset problem code in it (top-level fields of ``data`` only: a 3 MB page is not walked)."""
    labels = [f"http {status}"]
    try:
        document = json.loads(body)
    except ValueError:
        return [*labels, "body not JSON"]
    for result in document if isinstance(document, list) else [document]:
        if not isinstance(result, dict):
            labels.append("result not an object")
            continue
        for error in result.get("errors") or []:
            code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
            labels.append(f"graphql {code or 'error without code'}")
        data = result.get("data")
        for value in data.values() if isinstance(data, dict) else ():
            if isinstance(value, dict):
                labels += [
                    f"payload {e.get('code')}" for e in value.get("errors") or [] if isinstance(e, dict)
                ]
                labels += [
                    f"problem {p.get('code')}" for p in value.get("problems") or [] if isinstance(p, dict)
                ]
    return labels


@dataclass
class Tally:
    """What one kind of A's requests got: outcome counts and latencies."""

    counts: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    requests: int = 0

    def add(self, labels: list[str], seconds: float | None) -> None:
        self.requests += 1
        self.counts.update(labels)
        if seconds is not None:
            self.latencies.append(seconds)

    def report(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": len(self.latencies),
            "outcomes": dict(self.counts.most_common()),
            "p50_ms": ms(percentile(self.latencies, 0.5)),
            "max_ms": ms(max(self.latencies, default=math.nan)),
        }


def ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 1)


class Client:
    """``api_bench.Connection`` with a deadline per request; a connection that failed or timed out is dropped
    (its state is unknown) and the next request opens a new one."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.connection: Connection | None = None

    async def post(self, key: str, payload: Any, tally: Tally) -> None:
        raw = http_request("POST", "/graphql", key, json.dumps(payload).encode())
        if self.connection is None:
            self.connection = Connection("127.0.0.1", self.port)
        started = time.monotonic()
        try:
            status, body = await asyncio.wait_for(self.connection.request(raw), self.timeout)
        except TimeoutError:
            self.drop()
            tally.add(["timeout"], None)
        except asyncio.CancelledError:
            self.drop()
            tally.add(["unanswered at phase end"], None)
            raise
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            IndexError,
        ) as exc:
            self.drop()
            tally.add([f"connection {type(exc).__name__}"], None)
        else:
            tally.add(outcome_labels(status, body), time.monotonic() - started)

    def drop(self) -> None:
        if self.connection is not None and self.connection.writer is not None:
            self.connection.writer.close()
        self.connection = None


async def closed_loop(
    clients: list[Client], until: float, send: Callable[[Client, int], Awaitable[None]]
) -> None:
    """Each client sends its next request as soon as the previous one is answered; at ``until`` everything
    still in flight is cancelled (and counted as unanswered by ``Client.post``)."""
    sent = 0

    async def loop(client: Client) -> None:
        nonlocal sent
        while time.monotonic() < until:
            sent += 1
            await send(client, sent)

    tasks = [asyncio.create_task(loop(c)) for c in clients]
    await asyncio.wait(tasks, timeout=max(0.0, until - time.monotonic()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in clients:
        client.drop()


# ---------------------------------------------------------------- the hostile phases


@dataclass
class Hostile:
    """Everything A's phases need: the server, A's keys, the options."""

    server: Server
    keys: dict[str, str]
    args: argparse.Namespace
    default_source: str

    def clients(self, n: int) -> list[Client]:
        return [Client(self.server.port, self.args.timeout) for _ in range(n)]

    async def run(self, phase: str, until: float) -> dict[str, Any]:
        if phase == "quiet":
            await asyncio.sleep(max(0.0, until - time.monotonic()))
            return {}
        runner: Callable[[float], Awaitable[dict[str, Any]]] = getattr(self, phase)
        return await runner(until)

    async def http_phase(
        self, name: str, key: str, payload: Callable[[int], Any], until: float, clients: int
    ) -> dict[str, Any]:
        tally = Tally()

        async def send(client: Client, n: int) -> None:
            await client.post(key, payload(n), tally)

        await closed_loop(self.clients(clients), until, send)
        return {name: tally.report()}

    async def regex(self, until: float) -> dict[str, Any]:
        body = "a" * self.args.regex_body_chars + "!"
        variables = {
            "s": regex_draft_source(self.default_source),
            "cases": [{"facts": {"ticket": {"body": body}}}],
        }
        request = {"query": SIMULATE, "variables": variables}
        return await self.http_phase(
            "simulate", self.keys["viewer"], lambda _n: request, until, self.args.a_clients
        )

    async def alias_bomb(self, until: float) -> dict[str, Any]:
        request = {"query": VALIDATE, "variables": {"s": alias_bomb_source(self.args.alias_levels)}}
        return await self.http_phase(
            "validateRuleset", self.keys["viewer"], lambda _n: request, until, self.args.a_clients
        )

    async def cost(self, until: float) -> dict[str, Any]:
        batch = cost_batch()
        return await self.http_phase(
            "query batch", self.keys["viewer"], lambda _n: batch, until, self.args.a_clients
        )

    async def publish(self, until: float) -> dict[str, Any]:
        source = large_ruleset_source(self.args.publish_rules)

        def request(n: int) -> dict[str, Any]:  # a new name, so a new digest and version each time
            renamed = source.replace("ruleset: large", f"ruleset: large-{os.getpid()}-{n}", 1)
            return {"query": PUBLISH, "variables": {"s": renamed}}

        return await self.http_phase(
            "publishRuleset", self.keys["admin"], request, until, self.args.a_clients
        )

    async def flood(self, until: float) -> dict[str, Any]:
        request = {"query": ME_QUERY}
        return await self.http_phase(
            "me", self.keys["viewer"], lambda _n: request, until, self.args.flood_clients
        )

    async def subscriptions(self, until: float) -> dict[str, Any]:
        """Sockets of up to ``--subs-per-socket`` ``ticketEvents`` each, opened 32 at a time and drained until
        the phase ends, while A's partner key creates tickets at ``--a-create-rate`` per second."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus
        from websockets.typing import Subprotocol

        args = self.args
        roles = ["viewer", "agent", "ai", "partner", "admin"][: max(1, args.subs_keys)]
        counts: Counter[str] = Counter()
        gate = asyncio.Semaphore(32)
        started = time.monotonic()
        all_sent_at: list[float] = []
        sockets = math.ceil(args.subscriptions / args.subs_per_socket)
        state = ["not started"] * sockets  # where each socket was when the phase ended

        async def socket(index: int) -> None:
            subs = min(args.subs_per_socket, args.subscriptions - index * args.subs_per_socket)
            key = self.keys[roles[index % len(roles)]]
            state[index] = "connecting"
            try:
                async with connect(
                    self.server.ws,
                    subprotocols=[Subprotocol("graphql-transport-ws")],
                    open_timeout=args.timeout,
                    close_timeout=1,
                    ping_interval=None,
                ) as ws:
                    state[index] = "open, not acknowledged"
                    async with gate:  # handshakes a few dozen at a time, as a client library would
                        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
                        await ws.send(json.dumps(init))
                        ack = json.loads(await asyncio.wait_for(ws.recv(), args.timeout))
                        if ack.get("type") != "connection_ack":
                            state[index] = "closed"
                            counts[f"connection_init answered {ack.get('type')}"] += 1
                            return
                        counts["sockets acknowledged"] += 1
                        state[index] = "acknowledged, subscribing"
                        for sid in range(subs):
                            body = {"id": str(sid), "type": "subscribe", "payload": {"query": TICKET_EVENTS}}
                            await ws.send(json.dumps(body))
                        counts["subscriptions sent"] += subs
                        all_sent_at.append(time.monotonic())
                    state[index] = "subscribed"
                    async for message in ws:
                        text = message if isinstance(message, str) else message.decode()
                        if NEXT_FRAME.search(text, 0, 80):  # events: counted, not decoded (cheap to drain)
                            counts["next frames"] += 1
                            continue
                        await count_frame(ws, json.loads(text))
                    # The loop ends when the server closed the socket normally (we never do before the end).
                    state[index] = "closed"
                    counts[f"closed by server {ws.close_code} {ws.close_reason or ''}".strip()] += 1
            except ConnectionClosed as exc:
                state[index] = "closed"
                code = exc.rcvd.code if exc.rcvd is not None else "without close frame"
                reason = exc.rcvd.reason[:60] if exc.rcvd is not None else ""
                counts[f"closed by server {code} {reason}".strip()] += 1
            except InvalidStatus as exc:
                state[index] = "closed"
                counts[f"upgrade refused http {exc.response.status_code}"] += 1
            except TimeoutError:
                state[index] = "closed"
                counts["websocket timeout"] += 1
            except OSError as exc:
                state[index] = "closed"
                counts[f"websocket {type(exc).__name__}"] += 1

        async def count_frame(ws: Any, frame: dict[str, Any]) -> None:
            kind = frame.get("type")
            if kind == "ping":
                await ws.send('{"type": "pong"}')
            elif kind == "error":  # a refused subscription: its payload is a list of GraphQL errors
                errors = frame.get("payload") or [{}]
                for error in errors if isinstance(errors, list) else [errors]:
                    code = (error.get("extensions") or {}).get("code") or str(error.get("message"))[:60]
                    counts[f"subscription error {code}"] += 1
            else:
                counts[f"frame {kind}"] += 1

        creates = Tally()
        creator = Client(self.server.port, args.timeout)

        async def create_load() -> None:
            n = 0
            begin = time.monotonic()
            while args.a_create_rate > 0 and time.monotonic() < until:
                variables = {
                    "input": {
                        "subject": f"hostile {n}",
                        "body": "where is my parcel",
                        "customer": {"email": "a@example.com"},
                    }
                }
                await creator.post(
                    self.keys["partner"], {"query": CREATE_QUERY, "variables": variables}, creates
                )
                n += 1
                await asyncio.sleep(max(0.0, begin + n / args.a_create_rate - time.monotonic()))

        tasks = [asyncio.create_task(socket(i)) for i in range(sockets)]
        tasks.append(asyncio.create_task(create_load()))
        await asyncio.wait(tasks, timeout=max(0.0, until - time.monotonic()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        creator.drop()
        counts.update(f"sockets {where} at phase end" for where in state if where != "closed")
        return {
            "ticketEvents": {
                "sockets": sockets,
                "subscriptions": args.subscriptions,
                "seconds_to_send_all": round(max(all_sent_at) - started, 2)
                if len(all_sent_at) == sockets
                else None,
                "outcomes": dict(counts.most_common()),
            },
            "createTicket": creates.report(),
        }


# ---------------------------------------------------------------- merchant B (its own process)


def b_process(http: str, keys: dict[str, str], rate: float, timeout: float, stop: Any, out: Any) -> None:
    out.put(asyncio.run(b_main(http, keys, rate, timeout, stop)))


async def b_main(
    http: str, keys: dict[str, str], rate: float, timeout: float, stop: Any
) -> list[tuple[float, float, str, str, float]]:
    """Send B's mix open loop until ``stop`` is set; one record per request: (scheduled time, seconds from
    then to the answer or failure, kind, error or "", seconds from then until this process started it)."""
    import httpx

    records: list[tuple[float, float, str, str, float]] = []
    requests: dict[str, tuple[str, Callable[[int], dict[str, Any]]]] = {
        "page": (keys["viewer"], lambda _n: {"query": TICKETS_QUERY}),
        "create": (keys["partner"], create_request),
        "me": (keys["viewer"], lambda _n: {"query": ME_QUERY}),
    }
    kinds = list(requests)
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=64)

    async with httpx.AsyncClient(base_url=http, timeout=timeout, limits=limits) as client:

        async def one(n: int, due: float) -> None:
            kind = kinds[n % len(kinds)]
            key, build = requests[kind]
            error = ""
            lag = time.monotonic() - due  # how late this process got to it: must stay small
            try:
                response = await asyncio.wait_for(
                    client.post("/graphql", json=build(n), headers={"authorization": f"Bearer {key}"}),
                    timeout,
                )
                error = b_error(kind, response.status_code, response.content)
            except TimeoutError:
                error = "timeout"
            except httpx.HTTPError as exc:
                error = f"connection {type(exc).__name__}"
            records.append((due, time.monotonic() - due, kind, error, lag))

        inflight: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        n = 0
        while not stop.is_set():
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(one(n, due))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            n += 1
        if inflight:
            await asyncio.wait(inflight, timeout=timeout + 5)
    return records


def create_request(n: int) -> dict[str, Any]:
    subject, body = SUBJECTS[n % len(SUBJECTS)]
    variables = {
        "input": {
            "subject": subject,
            "body": body.format(n=n),
            "customer": {"email": "b@example.com"},
            "order": {"id": str(n), "total": 19.9, "currency": "EUR"},
        }
    }
    return {"query": CREATE_QUERY, "variables": variables}


def b_error(kind: str, status: int, body: bytes) -> str:
    """ "" when the answer is what B asked for, else the first thing wrong with it."""
    try:
        if kind == "page" and status == 200 and check_page(body):
            return ""
        if kind == "create" and status == 200 and check_create(body):
            return ""
        if kind == "me" and status == 200:
            document = json.loads(body)
            if "errors" not in document and document["data"]["me"]["role"]:
                return ""
    except (ValueError, KeyError, TypeError):
        pass
    wrong = [label for label in outcome_labels(status, body) if label != "http 200"]
    return wrong[0] if wrong else "unexpected answer"


def b_summary(
    records: list[tuple[float, float, str, str, float]], start: float, end: float
) -> dict[str, Any]:
    """B's requests scheduled in [start, end): latency percentiles (errors included) and errors by reason."""
    chosen = [r for r in records if start <= r[0] < end]
    latencies = [r[1] for r in chosen]
    errors = Counter(r[3] for r in chosen if r[3])
    per_kind = {}
    for kind in ("page", "create", "me"):
        of_kind = [r[1] for r in chosen if r[2] == kind]
        per_kind[kind] = {
            "requests": len(of_kind),
            "p50_ms": ms(percentile(of_kind, 0.5)),
            "p99_ms": ms(percentile(of_kind, 0.99)),
        }
    return {
        "requests": len(chosen),
        "rate_per_s": round(len(chosen) / max(end - start, 1e-9), 1),
        "errors": sum(errors.values()),
        "errors_by_reason": dict(errors.most_common()),
        "p50_ms": ms(percentile(latencies, 0.5)),
        "p95_ms": ms(percentile(latencies, 0.95)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies, default=math.nan)),
        "by_kind": per_kind,
        # the same without the phase's first second (A setting up: connecting, subscribing), to tell a burst
        # at the start from a steady cost
        "p99_after_first_second_ms": ms(percentile([r[1] for r in chosen if r[0] >= start + 1.0], 0.99)),
        # when in the phase the slowest requests were scheduled: a burst at the phase's start (A setting up)
        # reads differently from a steady cost
        "slowest": [
            [round(r[0] - start, 2), ms(r[1]), r[2]] for r in sorted(chosen, key=lambda r: -r[1])[:6]
        ],
        # B's own event loop starting a request late would inflate its latencies: this shows it did not
        "client_start_lag_max_ms": ms(max((r[4] for r in chosen), default=math.nan)),
    }


# ---------------------------------------------------------------- the server's memory and health


def proc_status(pid: int, name: str) -> int:
    """A byte figure (``VmRSS``, ``VmHWM``) from /proc/<pid>/status; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """The processes the server started (worker processes, if it has any), and theirs."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU of the server and of its live descendants, plus what its exited (reaped) children used."""
    total = 0.0
    for member in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        if member == pid:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: its children that exited
        total += ticks / os.sysconf("SC_CLK_TCK")
    return total


class MemoryWatch:
    """The server's RSS: sampled every 0.2 s in a thread of its own (this event loop may be busy), plus the
    kernel's own high-water mark (VmHWM) after resetting it at each phase's start where /proc allows; and
    the RSS of the server with every process it started (e.g. workers for heavy work), sampled alike."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.tree_peak = 0
        self.hwm_reset = False
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def tree_rss(self) -> tuple[int, int]:
        """(RSS of the server process, RSS summed over it and its descendants)."""
        own = proc_status(self.pid, "VmRSS")
        return own, own + sum(proc_status(child, "VmRSS") for child in descendants(self.pid))

    def sample(self) -> None:
        while not self.stopped.wait(0.2):
            own, tree = self.tree_rss()
            self.peak, self.tree_peak = max(self.peak, own), max(self.tree_peak, tree)

    def begin_phase(self) -> None:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # 5: reset the peak RSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.peak, self.tree_peak = self.tree_rss()

    def phase_report(self) -> dict[str, Any]:
        end, tree_end = self.tree_rss()
        peak = max(self.peak, end, proc_status(self.pid, "VmHWM") if self.hwm_reset else 0)
        return {
            "rss_peak_mib": round(peak / 2**20, 1),
            "rss_end_mib": round(end / 2**20, 1),
            "peak_from_vmhwm": self.hwm_reset,
            "with_child_processes_rss_peak_mib": round(max(self.tree_peak, tree_end) / 2**20, 1),
            "with_child_processes_rss_end_mib": round(tree_end / 2**20, 1),
            "child_processes_at_end": len(descendants(self.pid)),
        }

    def stop(self) -> None:
        self.stopped.set()


def healthz(server: Server, timeout: float) -> float | None:
    """Seconds /healthz took to answer 200, or None (no answer within ``timeout``, or the process is gone)."""
    import httpx

    if server.proc.poll() is not None:
        return None
    started = time.monotonic()
    try:
        ok = httpx.get(f"{server.http}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return None
    return time.monotonic() - started if ok else None


def wait_until_responsive(server: Server, key: str, limit: float) -> float | None:
    """Seconds until a ``{ me }`` with ``key`` was answered correctly within the 250 ms target (polled every
    0.25 s), or None when that did not happen within ``limit`` seconds."""
    import httpx

    started = time.monotonic()
    with httpx.Client(base_url=server.http) as client:
        while (left := limit - (time.monotonic() - started)) > 0 and server.proc.poll() is None:
            sent = time.monotonic()
            try:
                response = client.post(
                    "/graphql",
                    json={"query": ME_QUERY},
                    headers={"authorization": f"Bearer {key}"},
                    timeout=max(0.1, left),
                )
            except httpx.HTTPError:
                continue
            if (
                time.monotonic() - sent < TARGET_P99_MS / 1000
                and b_error("me", response.status_code, response.content) == ""
            ):
                return time.monotonic() - started
            time.sleep(0.25)
    return None


# ---------------------------------------------------------------- setup and main


def prepare(url: str, tickets: int) -> dict[str, dict[str, str]]:
    """Merchants A and B through the demo path (what ``bookbag demo`` runs): keys for every role."""
    from bookbag.settings import Settings
    from bookbag.wiring import build_services
    from storage.db import Database
    from storage.migrate import upgrade
    from workflow.demo.seed import create_demo

    db = Database.from_url(url)
    try:
        upgrade(db.engine)
        services = build_services(Settings())
        keys = {}
        for name in ("A", "B"):
            slug = f"isolation-{name.lower()}-{os.getpid()}"
            print(f"creating merchant {name} ({slug}) with {tickets} tickets", file=sys.stderr)
            keys[name] = create_demo(db, services, slug=slug, tickets=tickets).keys
    finally:
        db.dispose()
    return keys


def git_commit() -> dict[str, Any]:
    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", *argv], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def verdict(phase: dict[str, Any], quiet_p99: float | None) -> str:
    p99 = phase["b"]["p99_ms"]
    if not phase["server"]["up"]:
        return "FAIL (server exited)"
    if p99 is None or quiet_p99 is None:
        return "FAIL (no samples)"
    if phase["b"]["errors"]:
        return "FAIL (B errors)"
    if p99 > TARGET_RATIO * quiet_p99 or p99 >= TARGET_P99_MS:
        return "FAIL"
    return "PASS"


def a_summary(a: dict[str, Any], top: int = 4) -> str:
    parts = []
    for name, report in a.items():
        outcomes = report.get("outcomes", {})
        shown = ", ".join(f"{label} x{count}" for label, count in list(outcomes.items())[:top])
        parts.append(f"{name}: {shown}" if shown else name)
    return "; ".join(parts) or "-"


def up_label(server: dict[str, Any]) -> str:
    """yes; hung (alive, /healthz unanswered after the phase); NO (the process exited)."""
    if not server["up"]:
        return "NO"
    return "yes" if server["healthz_after_settle_ms"] is not None else "hung"


def print_table(phases: list[dict[str, Any]]) -> None:
    """One row per phase: B's figures in ms, the server's memory (with its child processes, e.g. workers for
    heavy work), whether it stayed up, how long it took to
    answer B within 250 ms again afterwards, the verdict; under it, A's most frequent outcomes."""
    header = (
        f"{'phase':14} {'B n':>5} {'err':>4} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} "
        f"{'RSS peak/end MiB':>17} {'up':>4} {'recov s':>7}  verdict"
    )
    print(header)
    print("-" * len(header))

    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for phase in phases:
        b, server = phase["b"], phase["server"]
        rss = f"{server['with_child_processes_rss_peak_mib']:.0f}/{server['with_child_processes_rss_end_mib']:.0f}"
        print(
            f"{phase['phase']:14} {b['requests']:>5} {b['errors']:>4} {f(b['p50_ms']):>8} {f(b['p95_ms']):>8} "
            f"{f(b['p99_ms']):>8} {f(b['max_ms']):>8} {rss:>17} {up_label(server):>4} "
            f"{f(server['seconds_until_responsive']):>7}  {phase['verdict']}"
        )
        if phase["a"]:
            print(f"{'':14} A got: {a_summary(phase['a'])}")


class LoadB:
    """Merchant B's load process (``b_process``) against the current server; its records and CPU time add up
    over server restarts."""

    def __init__(self, keys: dict[str, str], args: argparse.Namespace) -> None:
        self.keys, self.args = keys, args
        self.records: list[tuple[float, float, str, str, float]] = []
        self.cpu_seconds = 0.0
        self.wall_seconds = 0.0
        self.proc: Any = None

    def start(self, http: str) -> None:
        """Start sending, then let ``--warmup-seconds`` pass (those requests fall in no phase)."""
        ctx = mp.get_context("spawn")
        self.stop_event, self.queue = ctx.Event(), ctx.Queue()
        args = (http, self.keys, self.args.b_rate, self.args.timeout, self.stop_event, self.queue)
        self.proc = ctx.Process(target=b_process, args=args)
        self.proc.start()
        time.sleep(self.args.warmup_seconds)
        self.started = time.monotonic()
        self.cpu_before = cpu_seconds_of(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.is_alive():
            self.cpu_seconds += cpu_seconds_of(self.proc.pid) - self.cpu_before
            self.wall_seconds += time.monotonic() - self.started
        self.stop_event.set()
        try:
            self.records += self.queue.get(timeout=self.args.timeout + 60)
        except queue.Empty:
            print("merchant B's process returned no records", file=sys.stderr)
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc = None


class Stack:
    """The server process, B's load on it and the watch on its memory; restarted as one."""

    def __init__(self, url: str, server_env: dict[str, str], b: LoadB) -> None:
        self.url, self.server_env, self.b = url, server_env, b
        self.server: Server | None = None
        self.memory: MemoryWatch | None = None

    def start(self) -> Server:
        self.server = Server(self.url, "bookbag", 0.1, env=self.server_env)
        self.memory = MemoryWatch(self.server.proc.pid)
        self.b.start(self.server.http)
        return self.server

    def stop(self) -> None:
        self.b.stop()
        if self.memory is not None:
            self.memory.stop()
        if self.server is not None:
            self.server.stop()


async def run_phases(
    stack: Stack, hostile: Hostile, phases: list[str], args: argparse.Namespace, b_viewer_key: str
) -> list[dict[str, Any]]:
    """Run the phases; a server that died, or did not answer B within 250 ms again for ``--recover-seconds``
    after a phase, is restarted (on the same database) before the next one, so each phase is measured on
    its own instead of inheriting a stall; the restart is recorded in the next phase."""
    done: list[dict[str, Any]] = []
    restart_reason: str | None = None
    for name in phases:
        if restart_reason is not None:
            print(f"restarting the server before {name}: {restart_reason}", file=sys.stderr)
            await asyncio.to_thread(stack.stop)
            hostile.server = await asyncio.to_thread(stack.start)
        server, memory = hostile.server, stack.memory
        assert memory is not None
        log_before = os.path.getsize(server.log.name)
        cpu_before, own_before = tree_cpu_seconds(server.proc.pid), own_cpu_seconds()
        memory.begin_phase()
        start = time.monotonic()
        print(f"phase {name} ({args.phase_seconds:g} s)", file=sys.stderr)
        a = await hostile.run(name, start + args.phase_seconds)
        end = time.monotonic()
        alive = server.proc.poll() is None
        cpu_window = tree_cpu_seconds(server.proc.pid) - cpu_before if alive else None
        memory_report = memory.phase_report()
        own_cpu = own_cpu_seconds() - own_before
        await asyncio.sleep(args.settle_seconds)
        health = await asyncio.to_thread(healthz, server, args.timeout)
        recovered = await asyncio.to_thread(wait_until_responsive, server, b_viewer_key, args.recover_seconds)
        alive = alive and server.proc.poll() is None
        done.append(
            {
                "phase": name,
                "server_restarted_before_because": restart_reason,
                "window": (start, end),
                "after_window": (end, time.monotonic()),
                "seconds": round(end - start, 2),
                "a": a,
                "server": {
                    "up": alive,  # the process did not exit (a hung one is "up" and fails on B's figures)
                    "healthz_after_settle_ms": ms(health) if health is not None else None,
                    # after the settle pause, until B's { me } was answered within 250 ms again
                    "seconds_until_responsive": round(recovered, 2) if recovered is not None else None,
                    **memory_report,
                    # its CPU with its child processes', if any (heavy-work workers)
                    "cpu_cores_busy": round(cpu_window / (end - start), 2)
                    if cpu_window is not None
                    else None,
                    "log_bytes_written": os.path.getsize(server.log.name) - log_before,
                },
                "load_generator_a_cpu_cores_busy": round(own_cpu / (end - start), 2),
            }
        )
        print(f"  A got: {a_summary(a)}; server {done[-1]['server']}", file=sys.stderr)
        if not alive:
            restart_reason = f"it exited during or after {name}"
        elif recovered is None:
            restart_reason = f"it did not answer B within 250 ms for {args.recover_seconds:g} s after {name}"
        else:
            restart_reason = None
    return done


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--phase-seconds", type=float, default=20.0, help="length of every phase, quiet included"
    )
    parser.add_argument(
        "--recover-seconds",
        type=float,
        default=120.0,
        help="longest wait after a phase for the server to answer B within 250 ms again",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=2.0,
        help="pause after each phase (B's samples there are reported apart)",
    )
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=3.0,
        help="B runs this long before the quiet phase, unmeasured",
    )
    parser.add_argument(
        "--phases", default=",".join(PHASES), help="comma-separated subset; quiet always runs first"
    )
    parser.add_argument(
        "--b-rate", type=float, default=20.0, help="B's requests per second, all kinds together"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds any one request (B or A) may take"
    )
    parser.add_argument(
        "--tickets", type=int, default=200, help="demo tickets per merchant (A's pages need 100)"
    )
    parser.add_argument("--a-clients", type=int, default=4, help="A's concurrent clients in the HTTP phases")
    parser.add_argument("--flood-clients", type=int, default=8, help="A's concurrent clients in the flood")
    parser.add_argument("--regex-body-chars", type=int, default=30)
    parser.add_argument("--alias-levels", type=int, default=7)
    parser.add_argument("--subscriptions", type=int, default=2000)
    parser.add_argument("--subs-keys", type=int, default=5, help="A's keys the sockets are spread over (1-5)")
    parser.add_argument("--subs-per-socket", type=int, default=20)
    parser.add_argument(
        "--a-create-rate",
        type=float,
        default=2.0,
        help="A's createTicket per second during the subscriptions",
    )
    parser.add_argument("--publish-rules", type=int, default=2000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the server, e.g. BOOKBAG_DB_READ_THREADS=4 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON results go")
    args = parser.parse_args()
    phases = ["quiet", *[p for p in args.phases.split(",") if p and p != "quiet"]]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s) {unknown}; choose from {', '.join(PHASES)}")
    raise_fd_limit()

    commit = git_commit()  # now: the tree may change while a long run goes on
    tmp = tempfile.TemporaryDirectory(prefix="isolation-bench-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.sqlite3'}"
    keys = prepare(url, args.tickets)
    b = LoadB(keys["B"], args)
    stack = Stack(url, dict(item.split("=", 1) for item in args.server_env), b)
    load_start = os.getloadavg()
    try:
        server = stack.start()
        hostile = Hostile(server, keys["A"], args, (REPO / "rulesets" / "default.yaml").read_text())
        done = asyncio.run(run_phases(stack, hostile, phases, args, keys["B"]["viewer"]))
    finally:
        stack.stop()
        tmp.cleanup()

    records = b.records
    for phase in done:
        phase["b"] = b_summary(records, *phase.pop("window"))
        phase["b_after"] = b_summary(records, *phase.pop("after_window"))
    quiet_p99 = done[0]["b"]["p99_ms"] if done else None
    for phase in done[1:]:
        phase["verdict"] = verdict(phase, quiet_p99)
    if done:
        done[0]["verdict"] = "baseline" + (
            ""
            if (quiet_p99 or math.inf) < TARGET_P99_MS and not done[0]["b"]["errors"]
            else " (itself off target)"
        )
    results = {
        "command": " ".join(["python bench/isolation_bench.py", *sys.argv[1:]]),
        **commit,
        "database": url.split(":", 1)[0],
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": [round(v, 2) for v in load_start],
        "loadavg_at_end": [round(v, 2) for v in os.getloadavg()],
        "options": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "database_url"
        },
        "target": f"B's p99 in every hostile phase <= {TARGET_RATIO:g} x quiet p99 and < {TARGET_P99_MS:g} ms, "
        "B without errors, server up",
        "load_generator_b_cpu_cores_busy": round(b.cpu_seconds / max(b.wall_seconds, 1e-9), 2),
        "server_restarts": sum(1 for d in done if d["server_restarted_before_because"]),
        "phases": done,
        "all_passed": len(done) == len(phases) and all(d["verdict"] == "PASS" for d in done[1:]),
    }
    print_table(done)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
