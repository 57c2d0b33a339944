"""Fair share between merchants and keys (runtime.fairness), through HTTP on SQLite and PostgreSQL.

Rate limits answer 429 RATE_LIMITED with a retry hint before anything is parsed or looked up; a merchant's
pile of database work queues behind its own requests; CPU-heavy ruleset work is bounded per merchant and per
process and never occupies the database threads. Slow units of work are made slow by blocking them on an
event, so the tests assert who finished while whom was blocked, never how long anything took.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import policy
import resolvers.tickets
from bookbag import graphql_http
from bookbag.app import create_app
from policy import PolicyEngine, RulesetLimits, default_ruleset_path
from runtime.context import ApiRuntime
from runtime.fairness import FairShare, TokenBuckets
from runtime.workers import RulesetParser
from storage.db import Database
from tests.api.conftest import CREATE, Api, make_settings
from tests.conftest import MerchantKeys, count_calls
from tests.waiting import eventually_sync
from workflow.rulesets import versions as rulesets_service
from workflow.rulesets.cache import RulesetCache
from workflow.services import WorkflowServices
from workflow.tickets import service as tickets_service

ME = "{ me { role } }"
TICKETS = "{ tickets(first: 5) { edges { node { id } } } }"
VALIDATE = "mutation($s: String!) { validateRuleset(source: $s) { valid errors { code } } }"
PUBLISH = """mutation($s: String!) { publishRuleset(source: $s, message: "m") {
  errors { code message } rulesetVersion { version active } } }"""
SLOW = "# slow: blocks in the test until released\n"

MakeApi = Callable[..., Awaitable[tuple[Api, ApiRuntime]]]


class FrozenClock:
    """The rate limits' clock in the rate-limit tests: buckets refill only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def default_source() -> str:
    return default_ruleset_path().read_text(encoding="utf-8")


@pytest.fixture
async def make_api(
    database_url: str, database: Database, services: WorkflowServices
) -> AsyncIterator[MakeApi]:
    """``await make_api(**settings)``: an app with those settings, its client and its runtime (with
    ``clock=`` the runtime's FairShare keeps time by that clock)."""
    clients: list[httpx.AsyncClient] = []

    async def make(
        client_host: str = "127.0.0.1", clock: FrozenClock | None = None, **overrides: Any
    ) -> tuple[Api, ApiRuntime]:
        app = create_app(make_settings(database_url, **overrides), services=services, database=database)
        runtime = app.state.bookbag.runtime
        if clock is not None:
            runtime.fair = FairShare(runtime.fair.limits, clock=clock)
        transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return Api(client), runtime

    yield make
    for client in clients:
        await client.aclose()


class Gate:
    """Blocks the worker threads that enter it until released; counts how many are inside at once."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.entered = 0

    def block(self) -> None:
        with self._lock:
            self.inside += 1
            self.entered += 1
            self.peak = max(self.peak, self.inside)
        try:
            assert self._open.wait(60), "the test never released the gate"
        finally:
            with self._lock:
                self.inside -= 1

    def release(self) -> None:
        self._open.set()


def block_slow_sources(monkeypatch: pytest.MonkeyPatch, name: str, gate: Gate) -> None:
    """Make ``workflow.rulesets.versions.<name>`` block in ``gate`` when given a source that starts with SLOW."""
    real = getattr(rulesets_service, name)

    def gated(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(arg, str) and arg.startswith(SLOW) for arg in args):
            gate.block()
        return real(*args, **kwargs)

    monkeypatch.setattr(rulesets_service, name, gated)


@contextmanager
def released(gate: Gate) -> Iterator[Gate]:
    try:
        yield gate
    finally:
        gate.release()  # never leave a worker thread blocked, whatever the test's outcome


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(2000):  # up to 20 s: generous on a busy machine
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def assert_rate_limited(response: httpx.Response) -> float:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after = error["extensions"]["retryAfter"]
    assert isinstance(retry_after, float | int) and retry_after > 0
    return float(retry_after)


# ---------------------------------------------------------------- rate limits


async def test_a_flood_from_one_key_is_refused_while_another_merchant_is_served(
    make_api: MakeApi, make_merchant: Callable[..., MerchantKeys]
) -> None:
    clock = FrozenClock()
    api, runtime = await make_api(
        clock=clock,
        rate_limit_key_per_second=2.0,
        rate_limit_key_burst=10,
        rate_limit_merchant_per_second=3.0,
        rate_limit_merchant_burst=15,
    )
    a, b = make_merchant(), make_merchant()
    flood = await asyncio.gather(*(api.post({"query": ME}, a.keys["viewer"]) for _ in range(40)))
    served = [r for r in flood if r.status_code == 200]
    assert len(served) == 10  # the key's burst
    assert all(r.json()["data"]["me"]["role"] == "VIEWER" for r in served)
    for response in flood:
        if response.status_code != 200:
            assert assert_rate_limited(response) == 0.5  # one token at 2 per second
            assert response.headers["retry-after"] == "1"
    # Refused before the body is even parsed: a malformed body gets the same 429, not a 400.
    garbage = await api.client.post(
        "/graphql", content=b"{not json", headers={"authorization": f"Bearer {a.keys['viewer']}"}
    )
    assert_rate_limited(garbage)

    # Another merchant is not affected at all (its own key's burst).
    for _ in range(10):
        assert (await api.ok(ME, key=b.keys["viewer"]))["me"]["role"] == "VIEWER"

    # Another key of the same merchant has its own bucket, but within the merchant's: 15 - 10 = 5 left.
    other_key = await asyncio.gather(*(api.post({"query": ME}, a.keys["agent"]) for _ in range(10)))
    assert [r.status_code for r in other_key].count(200) == 5
    assert all(r.status_code in (200, 429) for r in other_key)
    assert runtime.fair.stats["rate_limited"] == 30 + 1 + 5

    # The buckets refill: a second later the flooding key is served again (2 from its key, 3 merchant).
    clock.now += 1.0
    again = [await api.post({"query": ME}, a.keys["viewer"]) for _ in range(3)]
    assert [r.status_code for r in again] == [200, 200, 429]


async def test_unknown_keys_cannot_flood_the_key_lookup(
    make_api: MakeApi, make_merchant: Callable[..., MerchantKeys], monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = count_calls(monkeypatch, graphql_http, "authenticate")
    clock = FrozenClock()
    # Answered at once (no hold): the refusals are sent one after another, and holding each would outlast
    # the auth cache this test relies on.
    api, _runtime = await make_api(
        clock=clock,
        failed_auth_per_second=0.5,
        failed_auth_burst=5,
        rate_limit_hold_seconds=0,
        rate_limit_hold_min_seconds=0,
    )
    merchant = make_merchant()
    assert (await api.ok(ME, key=merchant.keys["viewer"]))["me"]["role"] == "VIEWER"  # now in the cache
    assert lookups.calls == 1

    answers = [await api.post({"query": ME}, f"bb_unknown_{n}") for n in range(20)]
    assert [r.status_code for r in answers[:5]] == [401] * 5
    for response in answers[5:]:
        assert_rate_limited(response)
    assert lookups.calls == 1 + 5  # the refused ones never reached the database

    # A known (cached) key from the same address is still served; a fresh key from it waits like the
    # unknown ones (its lookup would cost the same), and other addresses are not affected.
    assert (await api.ok(ME, key=merchant.keys["viewer"]))["me"]["role"] == "VIEWER"
    assert_rate_limited(await api.post({"query": ME}, merchant.keys["agent"]))
    elsewhere, _ = await make_api(client_host="10.1.2.3", failed_auth_per_second=0.5, failed_auth_burst=5)
    assert (await elsewhere.post({"query": ME}, "bb_unknown_x")).status_code == 401
    assert (await elsewhere.ok(ME, key=merchant.keys["agent"]))["me"]["role"] == "AGENT"
    # Failures refill slowly (0.5 per second): two seconds later one more lookup is allowed.
    clock.now += 2.0
    assert (await api.post({"query": ME}, "bb_unknown_y")).status_code == 401
    assert_rate_limited(await api.post({"query": ME}, "bb_unknown_z"))
    assert lookups.calls == 1 + 5 + 2 + 1  # ... + the two from elsewhere + bb_unknown_y


# ---------------------------------------------------------------- database slots


@pytest.mark.parametrize("units_per_merchant", [1, 2])
async def test_a_merchants_pile_of_reads_queues_behind_itself(
    make_api: MakeApi,
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
    units_per_merchant: int,
) -> None:
    """Two read threads. Merchant A sends six reads that block in their thread. With one slot per merchant
    (the default) one of A's reads runs, five wait on A's own slot, and B's read runs on the other thread.
    With two (as many as there are threads, the counter-example) A holds both threads and B waits."""
    a, b = make_merchant(), make_merchant()
    gate = Gate()
    real_list = tickets_service.list_tickets

    def list_tickets(session: Any, principal: Any, *args: Any, **kwargs: Any) -> Any:
        if principal.merchant_id == a.merchant_id:
            gate.block()
        return real_list(session, principal, *args, **kwargs)

    monkeypatch.setattr(tickets_service, "list_tickets", list_tickets)
    api, runtime = await make_api(db_read_threads=2, db_units_per_merchant=units_per_merchant)
    with released(gate):
        pile = [asyncio.create_task(api.ok(TICKETS, key=a.keys["viewer"])) for _ in range(6)]
        await until(lambda: runtime.fair.holding("read", a.merchant_id) == 6, "A's six reads hold or wait")
        await until(lambda: gate.inside == units_per_merchant, "A's reads are in their threads")
        b_read = asyncio.create_task(api.ok(TICKETS, key=b.keys["viewer"]))
        done, _ = await asyncio.wait([b_read], timeout=20 if units_per_merchant == 1 else 1.0)
        if units_per_merchant == 1:
            assert b_read in done, "B's read waited behind A's pile"
            assert b_read.result()["tickets"]["edges"] == []
        else:
            assert not done, "with A holding every thread, B's read cannot have run"
        assert not any(task.done() for task in pile)
        assert gate.peak == units_per_merchant  # A never had more units in threads than its slots
    results = await asyncio.wait_for(asyncio.gather(*pile, b_read), 30)
    assert all(r["tickets"]["edges"] == [] for r in results)
    assert runtime.fair.holding("read", a.merchant_id) == 0  # the gate is gone with its last user


async def test_group_commit_takes_merchants_in_turns(
    make_api: MakeApi, make_merchant: Callable[..., MerchantKeys], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a group is written, A queues 40 createTickets and then B one: B's goes into the very next group
    (without turns it would wait behind 32 of A's, for the group after), and every request is answered."""
    a, b = make_merchant(), make_merchant()
    gate = Gate()
    groups: list[list[str]] = []
    real_group = resolvers.tickets.ingest_group

    def ingest_group(session: Any, services: Any, requests: Any) -> Any:
        groups.append([principal.merchant_id for principal, _ in requests])
        if len(groups) == 1:
            gate.block()
        return real_group(session, services, requests)

    monkeypatch.setattr(resolvers.tickets, "ingest_group", ingest_group)
    api, runtime = await make_api(max_group_commit=32)

    def create(keys: MerchantKeys, n: int) -> asyncio.Task[dict[str, Any]]:
        variables = {"input": {"subject": f"Order {n}", "body": f"Where is order #{n}?"}}
        return asyncio.create_task(api.ok(CREATE, variables, key=keys.keys["partner"]))

    with released(gate):
        first = create(a, 0)
        await until(lambda: gate.inside == 1, "the first group is being written")
        pile = [create(a, n) for n in range(1, 41)]
        runtime_commit = runtime._group_commits["createTicket"]
        await until(lambda: len(runtime_commit._pending) == 40, "A's pile is queued")
        late = create(b, 99)
        await until(lambda: len(runtime_commit._pending) == 41, "B's request is queued")
    answers = await asyncio.wait_for(asyncio.gather(first, *pile, late), 60)
    assert all(r["createTicket"]["errors"] == [] and r["createTicket"]["ticket"] for r in answers)
    assert groups[0] == [a.merchant_id]
    assert b.merchant_id in groups[1], [len(g) for g in groups]
    assert len(groups[1]) == 32 and sorted(len(g) for g in groups[1:]) == [9, 32]
    assert sum(len(g) for g in groups) == 42


# ---------------------------------------------------------------- CPU-heavy ruleset work


async def test_heavy_work_is_bounded_per_merchant_and_outside_the_database_threads(
    make_api: MakeApi,
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
    default_source: str,
) -> None:
    """A and C each run a ruleset check that blocks; with ONE database read thread, B is still answered
    (heavy work has threads of its own). A's next check waits behind A's own (one may wait), the one after
    is refused at once with a retry hint; once released, A's waiting check is answered too."""
    a, b, c = make_merchant(), make_merchant(), make_merchant()
    gate = Gate()
    block_slow_sources(monkeypatch, "validate", gate)
    api, runtime = await make_api(
        db_read_threads=1, heavy_per_merchant=1, heavy_queue_per_merchant=1, heavy_per_process=2
    )
    slow = SLOW + default_source
    with released(gate):
        a_check = asyncio.create_task(api.ok(VALIDATE, {"s": slow}, key=a.keys["viewer"]))
        c_check = asyncio.create_task(api.ok(VALIDATE, {"s": slow}, key=c.keys["viewer"]))
        await until(lambda: gate.inside == 2, "A's and C's checks are running")

        a_waiting = asyncio.create_task(api.ok(VALIDATE, {"s": default_source}, key=a.keys["viewer"]))
        await until(lambda: runtime.fair.holding("heavy", a.merchant_id) == 2, "A's second check waits")
        refused = await api.post(
            {"query": "mutation { simulate(cases: [{facts: {}}]) { errors { code } } }"}, a.keys["viewer"]
        )
        assert_rate_limited(refused)  # every heavy operation counts against the merchant's slots
        assert refused.json()["data"] is None

        assert (await api.ok(ME, key=b.keys["viewer"]))["me"]["role"] == "VIEWER"
        assert (await api.ok(TICKETS, key=b.keys["viewer"]))["tickets"]["edges"] == []
        assert not a_check.done() and not c_check.done() and not a_waiting.done()
    for check in await asyncio.wait_for(asyncio.gather(a_check, c_check, a_waiting), 30):
        assert check["validateRuleset"] == {"valid": True, "errors": []}
    assert runtime.fair.stats["heavy_refused"] == 1
    # Released: A may check again.
    assert (await api.ok(VALIDATE, {"s": default_source}, key=a.keys["viewer"]))["validateRuleset"]["valid"]


async def test_heavy_work_waits_a_bounded_time_for_the_process_slots(
    make_api: MakeApi,
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
    default_source: str,
) -> None:
    a, b = make_merchant(), make_merchant()
    gate = Gate()
    block_slow_sources(monkeypatch, "validate", gate)
    api, _runtime = await make_api(heavy_per_process=1, heavy_wait_seconds=0.3)
    with released(gate):
        a_check = asyncio.create_task(api.ok(VALIDATE, {"s": SLOW + default_source}, key=a.keys["viewer"]))
        await until(lambda: gate.inside == 1, "A's check holds the process's only heavy slot")
        waited = await api.post({"query": VALIDATE, "variables": {"s": default_source}}, b.keys["viewer"])
        assert assert_rate_limited(waited) >= 0.3
        assert (await api.ok(ME, key=b.keys["viewer"]))["me"]["role"] == "VIEWER"
    assert (await asyncio.wait_for(a_check, 30))["validateRuleset"]["valid"]
    assert (await api.ok(VALIDATE, {"s": default_source}, key=b.keys["viewer"]))["validateRuleset"]["valid"]


async def test_publish_checks_its_ruleset_before_taking_the_writer(
    make_api: MakeApi,
    make_merchant: Callable[..., MerchantKeys],
    monkeypatch: pytest.MonkeyPatch,
    default_source: str,
) -> None:
    """While A's publish is being checked (blocked), B's createTicket is written: the checks do not run in
    the write transaction (on SQLite that would hold every merchant's writes). Then A's version is stored."""
    a, b = make_merchant(), make_merchant()
    gate = Gate()
    block_slow_sources(monkeypatch, "check_source", gate)
    api, _runtime = await make_api(db_write_threads=1)
    with released(gate):
        publish = asyncio.create_task(api.ok(PUBLISH, {"s": SLOW + default_source}, key=a.keys["admin"]))
        await until(lambda: gate.inside == 1, "A's publish is being checked")
        variables = {"input": {"subject": "Where is my order?", "body": "Order #7 is late."}}
        created = await asyncio.wait_for(api.ok(CREATE, variables, key=b.keys["partner"]), 20)
        assert created["createTicket"]["errors"] == [] and created["createTicket"]["ticket"]
        assert not publish.done()
    published = (await asyncio.wait_for(publish, 30))["publishRuleset"]
    assert published["errors"] == [] and published["rulesetVersion"] == {"version": 1, "active": True}
    assert gate.entered == 1  # checked once, outside the transaction, not again inside it
    source = (await api.ok("{ ruleset { version source } }", key=a.keys["admin"]))["ruleset"]
    assert source["version"] == 1 and source["source"].startswith(SLOW)


# ---------------------------------------------------------------- worker processes

SIMULATE = """mutation($s: String, $cases: [SimulationCaseInput!]!) { simulate(source: $s, cases: $cases) {
  errors { code message field } problems { code line } results { label changed facts routing escalations
  plannedEscalations draft { effect decidingRules trace } active { effect decidingRules } } } }"""
TEST_RULESET = """mutation($s: String!) { testRuleset(source: $s) { passed results { name passed message }
  errors { code message } problems { code message line } } }"""
VALIDATE_ALL = """mutation($s: String!) { validateRuleset(source: $s) { valid errors { code message field }
  problems { code message path line col severity } warnings { code message line } } }"""
BACKTEST = "mutation($s: String!) { backtest(source: $s, limit: 100) { errors { code message } report } }"
PUBLISH_ALL = """mutation($s: String!) { publishRuleset(source: $s, message: "m") {
  errors { code message field } testFailures { name passed message } problems { code line }
  rulesetVersion { version active name digest } } }"""
NOW = "2026-03-02T10:00:00+00:00"


def refund_cases(count: int) -> list[dict[str, Any]]:
    return [
        {
            "facts": {
                "ticket": {"stage": "in_progress", "priority": "high"},
                "customer": {"vip": n % 2 == 0},
            },
            "action": {"type": "REFUND", "amount": 50 + n, "actor": "AGENT"},
            "now": NOW,
        }
        for n in range(count)
    ]


async def test_ruleset_work_in_worker_processes_answers_exactly_as_in_threads(
    make_api: MakeApi, make_merchant: Callable[..., MerchantKeys], default_source: str
) -> None:
    """The same operations against two apps on the same data, one computing in threads, one in worker
    processes: every answer is identical (problems with their lines, test failures, traces, refusals)."""
    merchant = make_merchant()
    in_threads, _ = await make_api(heavy_in_processes=False)
    in_workers, runtime = await make_api(heavy_in_processes=True, heavy_timeout_seconds=60)
    assert runtime.workers is not None
    try:
        created = await in_threads.ok(
            CREATE,
            {"input": {"subject": "Refund please", "body": "Order #5 broke."}},
            key=merchant.keys["partner"],
        )
        ticket_id = created["createTicket"]["ticket"]["id"]
        tighter = default_source.replace("{fact: action.amount, lte: 200}", "{fact: action.amount, lte: 100}")
        assert tighter != default_source
        admin, viewer = merchant.keys["admin"], merchant.keys["viewer"]
        operations: list[tuple[str, dict[str, Any], str]] = [
            (VALIDATE_ALL, {"s": default_source}, viewer),
            (VALIDATE_ALL, {"s": "ruleset: x\nrouting:\n  - id: r\n    when: {fact: nope, eq: 1}\n"}, viewer),
            (VALIDATE_ALL, {"s": "ruleset: ["}, viewer),
            (TEST_RULESET, {"s": default_source}, viewer),
            (TEST_RULESET, {"s": tighter}, viewer),
            (TEST_RULESET, {"s": "ruleset: ["}, viewer),
            (
                SIMULATE,
                {"s": tighter, "cases": [*refund_cases(3), {"ticketId": ticket_id, "now": NOW}]},
                viewer,
            ),
            (SIMULATE, {"cases": refund_cases(2)}, viewer),
            (SIMULATE, {"cases": [{"ticketId": "tkt_nope"}]}, viewer),
            (SIMULATE, {"s": "ruleset: [", "cases": refund_cases(1)}, viewer),
            (BACKTEST, {"s": tighter}, admin),
            (BACKTEST, {"s": "ruleset: ["}, admin),
            (PUBLISH_ALL, {"s": tighter}, admin),
            (PUBLISH_ALL, {"s": "ruleset: ["}, admin),
        ]
        for query, variables, key in operations:
            expected = await in_threads.raw(query, variables, key=key)
            answered = await in_workers.raw(query, variables, key=key)
            assert "errors" not in expected, expected
            assert answered == expected
        assert runtime.workers.stats["calls"] == len(operations) - 1  # the unknown ticket fails before
        assert runtime.workers.stats["timeouts"] == 0

        published = await in_workers.ok(PUBLISH_ALL, {"s": default_source}, key=admin)
        assert published["publishRuleset"]["rulesetVersion"]["version"] == 1
        # Both now simulate against the published version (the worker parses the active one itself).
        renamed = default_source.replace("ruleset: default", "ruleset: default-v2")
        for query, variables in (
            (SIMULATE, {"s": renamed, "cases": refund_cases(2)}),
            (BACKTEST, {"s": renamed}),
        ):
            assert await in_workers.raw(query, variables, key=admin) == await in_threads.raw(
                query, variables, key=admin
            )
    finally:
        runtime.workers.close()


async def test_a_worker_over_its_time_is_killed_and_replaced(
    make_api: MakeApi, make_merchant: Callable[..., MerchantKeys], default_source: str
) -> None:
    merchant = make_merchant()
    api, runtime = await make_api(heavy_in_processes=True, heavy_timeout_seconds=60)
    workers = runtime.workers
    assert workers is not None
    viewer = merchant.keys["viewer"]
    try:
        assert (await api.ok(VALIDATE, {"s": default_source}, key=viewer))["validateRuleset"]["valid"]
        (first_pid,) = workers.pids()

        # 200 cases take a good while (about 0.3 s on 2 busy cores); 20 ms is far too little.
        workers.timeout_seconds = 0.02
        timed_out = await api.ok(SIMULATE, {"cases": refund_cases(200)}, key=viewer)
        assert [e["code"] for e in timed_out["simulate"]["errors"]] == ["TIMEOUT"]
        assert workers.stats["timeouts"] == 1 and workers.pids() == []
        await until(lambda: not pid_alive(first_pid), "the timed-out worker is gone")

        workers.timeout_seconds = 60
        again = await api.ok(SIMULATE, {"cases": refund_cases(200)}, key=viewer)
        assert again["simulate"]["errors"] == [] and len(again["simulate"]["results"]) == 200
        (second_pid,) = workers.pids()
        assert second_pid != first_pid

        # A worker killed from outside while idle is replaced without failing the next call.
        os.kill(second_pid, signal.SIGKILL)
        await until(lambda: not pid_alive(second_pid), "the killed worker is gone")
        await asyncio.sleep(0.2)  # the executor notices its worker died
        assert (await api.ok(VALIDATE, {"s": default_source}, key=viewer))["validateRuleset"]["valid"]
        (third_pid,) = workers.pids()
        assert third_pid not in (first_pid, second_pid)
    finally:
        workers.close()


async def test_heavy_work_of_one_merchant_in_workers_leaves_the_others_answered(
    make_api: MakeApi, make_merchant: Callable[..., MerchantKeys]
) -> None:
    """A sends three 200-case simulations at once (none may wait): one runs in a worker, two are refused; B's
    ``me`` is answered while A's simulation still runs (it includes starting the worker: seconds, against
    milliseconds for ``me``)."""
    a, b = make_merchant(), make_merchant()
    api, runtime = await make_api(
        heavy_in_processes=True, heavy_timeout_seconds=60, heavy_queue_per_merchant=0
    )
    assert runtime.workers is not None
    try:
        runs = [
            asyncio.create_task(
                api.post({"query": SIMULATE, "variables": {"cases": refund_cases(200)}}, a.keys["viewer"])
            )
            for _ in range(3)
        ]
        await until(lambda: runtime.fair.stats["heavy_refused"] == 2, "two of A's simulations are refused")
        assert (await api.ok(ME, key=b.keys["viewer"]))["me"]["role"] == "VIEWER"
        assert sum(task.done() for task in runs) == 2  # only the refused ones
        answers = await asyncio.wait_for(asyncio.gather(*runs), 60)
        assert sorted(r.status_code for r in answers) == [200, 429, 429]
        (ran,) = [r for r in answers if r.status_code == 200]
        assert len(ran.json()["data"]["simulate"]["results"]) == 200, ran.json()
    finally:
        runtime.workers.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child stays a zombie until reaped; count that as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the two checks, or while reading
        return False


def test_buckets_stay_bounded_and_forgetting_is_lenient() -> None:
    """Many client addresses (or keys) at once: the buckets kept stay under the bound, and a bucket that was
    forgotten is full again (never stricter than remembering it)."""
    clock = FrozenClock()
    buckets = TokenBuckets(1.0, 3, max_tracked=100, clock=clock)
    for _ in range(3):
        buckets.take("busy")
    assert buckets.wait("busy") == 1.0
    for n in range(1000):
        buckets.take(f"address-{n}")
        assert len(buckets) <= 100
    assert buckets.wait("busy") in (0.0, 1.0)  # forgotten (full again) or still remembered, never worse
    assert buckets.wait("address-999") == 0.0  # 2 tokens left of 3
    clock.now += 0.5
    for _ in range(3):
        buckets.take("fresh")
    assert buckets.wait("fresh") == 1.0


async def test_a_refused_answer_is_held_until_its_retry_hint_so_a_closed_loop_flood_slows_down(
    make_api: MakeApi, make_merchant: Callable[..., MerchantKeys], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client retrying at once gets its 429 only after the retry hint (capped by the setting): the flood
    costs a sleeping task per refusal, not a spin of the event loop. Sleeps are recorded, not timed."""
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded(delay: float, *args: Any) -> Any:
        slept.append(delay)
        return await real_sleep(0)

    monkeypatch.setattr(graphql_http.RefusalHold, "sleep", staticmethod(recorded))
    api, _runtime = await make_api(
        rate_limit_key_per_second=0.5, rate_limit_key_burst=1, rate_limit_hold_seconds=1.5
    )
    merchant = make_merchant()
    first = await api.post({"query": ME}, merchant.keys["viewer"])
    assert first.status_code == 200 and slept == []
    refused = await api.post({"query": ME}, merchant.keys["viewer"])
    hint = assert_rate_limited(refused)
    assert slept == [pytest.approx(min(hint, 1.5))] and 1.0 < slept[0] <= 1.5  # hint ~2 s, capped at 1.5

    # A tiny hint (a high rate limit) is held at least the minimum; past the cap of held answers,
    # refusals are answered at once.
    slept.clear()
    await graphql_http.RefusalHold(1.0, min_seconds=0.25).wait(0.005)
    assert slept == [0.25]
    hold = graphql_http.RefusalHold(1.0, max_held=0)
    slept.clear()
    await hold.wait(5.0)
    assert slept == [] and hold.held == 0


def test_stored_versions_are_parsed_in_a_worker_process_and_decide_exactly_as_parsed_here() -> None:
    """The server hands a stored version's parse to a process of its own (0.35 s of CPU for 2,000 rules
    that would hold the GIL other merchants need); what comes back decides exactly like a local parse,
    errors come back as RulesetInvalid with their report, and a broken worker falls back to parsing here."""
    source = (
        Path("rulesets/default.yaml")
        .read_text()
        .replace(
            "\nrouting:\n",
            '\nrouting:\n  - id: refund-words\n    when: {fact: ticket.body, matches: "(?i)\\\\brefund"}\n'
            "    assign: {team: billing, strategy: round_robin}\n",
            1,
        )
    )
    limits = RulesetLimits()
    parser = RulesetParser(limits, timeout_seconds=60)
    try:
        remote = parser.parse(source)
        local = policy.load_ruleset(source, limits=limits)
        assert remote.digest == local.digest
        engine = PolicyEngine()
        for body in ("I want a REFUND now", "where is my parcel"):
            facts = {"ticket": {"body": body, "stage": "new"}, "classifier": {"category": "other"}}
            assert engine.route(remote, facts).to_dict() == engine.route(local, facts).to_dict()
        with pytest.raises(policy.RulesetInvalid) as invalid:
            parser.parse("ruleset: broken\npermissions: [{id: x, effect: maybe}]\n")
        assert invalid.value.report.problems

        cache = RulesetCache(limits=limits)
        cache.parser = parser.parse
        assert cache.get(remote.digest, source).digest == remote.digest
        parser.close()
        cache.parser = lambda _source: (_ for _ in ()).throw(BrokenProcessPool("gone"))
        assert cache.get("other-digest", source).digest == local.digest  # parsed here instead
    finally:
        parser.close()


def test_a_stuck_ruleset_parse_has_its_worker_killed_and_the_next_gets_a_new_one() -> None:
    """A parse past its time would otherwise keep the one parser worker busy, and every later parse of
    every merchant would queue behind it: the worker is killed and the next call starts a fresh one."""
    source = Path("rulesets/default.yaml").read_text()
    parser = RulesetParser(RulesetLimits(), timeout_seconds=60)
    try:
        parser.parse(source)  # the worker is up
        assert parser._executor is not None
        (first_pid,) = [p.pid for p in parser._executor._processes.values()]
        parser.timeout_seconds = 0.0001  # no parse finishes in time
        with pytest.raises(TimeoutError):
            parser.parse(source + "\n# another version\n")
        assert parser._executor is None
        eventually_sync(lambda: not pid_alive(first_pid), what="the stuck worker killed")
        parser.timeout_seconds = 60
        assert parser.parse(source).name == policy.load_ruleset(source).name
    finally:
        parser.close()
