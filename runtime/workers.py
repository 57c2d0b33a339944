"""CPU-heavy ruleset work in worker processes, each call with a hard time limit.

Python runs one thread at a time: a ruleset check or a 200-case simulation in a thread of the server slows
every other request of every merchant (rough, on 2 shared cores: another merchant's ``{ me }`` p50/p99 went
from 5/10 ms to 17/109 ms while one 200-case simulation after another ran in a thread, 5/15 ms while the
same work ran in another process; through the API, where the server still reads the cases and builds the
response, p50 16-32 ms with threads against 10 ms with workers). So validate, test, publish's checks, and the evaluation half of simulate and backtest run here:
``size`` worker processes (``bookbag serve`` starts them with the server; else the first call does), one call at
a time each. A call over ``timeout_seconds`` has its worker killed (and replaced on the next call) and
answers TIMEOUT; a worker that dies (out of memory, a crash in the C engine) is replaced too and
the call fails as an unexpected error. The database half of simulate and backtest stays in the server.

Everything crossing the process boundary is plain data: sources, facts, problems, test results, decisions.
A worker answers a :class:`workflow.errors.DomainError` as ``(code, message, field, details)`` and it is
raised again here, so callers see exactly what the in-process call would have raised.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import policy
from policy import PolicyEngine, Ruleset, RulesetLimits, RulesetTestResult, ValidationReport
from workflow.errors import DomainError, ErrorCode
from workflow.rulesets import versions as rulesets_service
from workflow.rulesets.cache import RulesetCache

log = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerPool:
    """``size`` single-process executors handed out one call at a time (the caller bounds concurrency with
    its heavy slots; a call finding no idle worker starts one)."""

    def __init__(self, size: int, timeout_seconds: float, limits: RulesetLimits | None = None) -> None:
        self.size = size
        self.limits = limits or RulesetLimits()
        self.timeout_seconds = timeout_seconds
        self._idle: list[ProcessPoolExecutor] = []
        self.stats = {"calls": 0, "timeouts": 0, "replaced": 0}

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(tools, *args)`` in a worker process; DomainErrors come back as DomainErrors."""
        executor = self._idle.pop() if self._idle else self._start()
        self.stats["calls"] += 1
        try:
            submitted = executor.submit(_call, fn, *args)
        except BrokenProcessPool:  # its worker died while idle: this call has lost nothing, use a new one
            self._kill(executor)
            executor = self._start()
            submitted = executor.submit(_call, fn, *args)
        try:
            future = asyncio.wrap_future(submitted)
            outcome = await asyncio.wait_for(future, self.timeout_seconds)
        except TimeoutError:
            self.stats["timeouts"] += 1
            self._kill(executor)
            raise DomainError(
                ErrorCode.TIMEOUT,
                f"the ruleset work took longer than {self.timeout_seconds:g} s and was stopped",
            ) from None
        except BrokenProcessPool:
            log.error("a ruleset worker process died; replacing it")
            self._kill(executor)
            raise
        except BaseException:  # cancelled (the client went away): stop the work, do not finish it unseen
            self._kill(executor)
            raise
        self._keep(executor)
        if outcome[0] == "error":
            _, code, message, field, details = outcome
            raise DomainError(ErrorCode(code), message, field, details=details)
        result: T = outcome[1]
        return result

    def prestart(self) -> None:
        """Start every worker now, in the background (the server's start-up: a worker takes seconds to
        import the policy engine, which the first ruleset check would otherwise wait for)."""
        while len(self._idle) < self.size:
            executor = self._start()
            executor.submit(_ready)  # spawns the process; a call submitted meanwhile queues behind it
            self._idle.append(executor)

    def pids(self) -> list[int]:
        """The idle workers' process ids (diagnostics and tests)."""
        return [p.pid for executor in self._idle for p in getattr(executor, "_processes", {}).values()]

    def close(self) -> None:
        """Stop the idle workers (the app's shutdown): each finishes what it was doing, at most starting up."""
        idle, self._idle = self._idle, []
        for executor in idle:
            executor.shutdown(wait=True, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        return _new_worker(self.limits)

    def _keep(self, executor: ProcessPoolExecutor) -> None:
        if len(self._idle) < self.size:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)

    def _kill(self, executor: ProcessPoolExecutor) -> None:
        self.stats["replaced"] += 1
        _kill_worker(executor)


def _kill_worker(executor: ProcessPoolExecutor) -> None:
    """Stop a worker at once, whatever it is doing (its work is lost; the caller answers for it)."""
    processes = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        process.kill()
    executor.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------ the work (in a worker, or in a thread)


@dataclasses.dataclass
class Tools:
    """What the work needs: a policy engine, the parsed ruleset of a ``(digest, source)``, and the limits
    every source is validated under. In a worker process its own (see ``_start_worker``); without workers,
    the server's ``services.policy`` and ``services.rulesets``."""

    engine: PolicyEngine
    ruleset: Callable[[str, str], Ruleset]
    limits: RulesetLimits


def validate(tools: Tools, source: str, known_teams: frozenset[str] | None = None) -> ValidationReport:
    report = rulesets_service.validate(source, limits=tools.limits, known_teams=known_teams)
    return dataclasses.replace(report, ruleset=None)  # the answer needs its problems only


def _draft(tools: Tools, source: str, *, run_tests: bool, known_teams: frozenset[str] | None = None) -> Any:
    return rulesets_service.check_source(
        tools.engine, source, limits=tools.limits, run_tests=run_tests, known_teams=known_teams
    )


def run_tests(tools: Tools, source: str) -> list[RulesetTestResult]:
    ruleset, _ = _draft(tools, source, run_tests=False)
    return list(tools.engine.drafts.run_tests(ruleset))  # a draft: never evicts active versions


def check(
    tools: Tools, source: str, known_teams: frozenset[str] | None = None
) -> rulesets_service.CheckedSource:
    """Publish's checks: validation and the ruleset's own tests (raises their DomainError)."""
    ruleset, report = _draft(tools, source, run_tests=True, known_teams=known_teams)
    return rulesets_service.CheckedSource(name=ruleset.name, digest=ruleset.digest, warnings=report.warnings)


def simulate(
    tools: Tools, source: str | None, prepared: rulesets_service.PreparedSimulation
) -> list[rulesets_service.SimulationResult]:
    active = tools.ruleset(prepared.active_digest, prepared.active_source)
    draft = None if source is None else _draft(tools, source, run_tests=False)[0]
    return rulesets_service.evaluate_simulation(tools.engine, draft, active, prepared)


def backtest(tools: Tools, source: str, prepared: rulesets_service.PreparedBacktest) -> dict[str, Any]:
    active = tools.ruleset(prepared.active_digest, prepared.active_source)
    draft = _draft(tools, source, run_tests=False)[0]
    return rulesets_service.evaluate_backtest(tools.engine, draft, active, prepared)


def parse_ruleset(tools: Tools, source: str) -> Ruleset | ValidationReport:
    """A stored version, validated and compiled, to be unpickled by the server (a 2,000-rule ruleset: ~0.35 s
    to parse here, ~5 ms to unpickle there); or, when it has errors, its report (an exception would not
    survive the trip: ``RulesetInvalid`` is rebuilt from its report by the caller)."""
    report = policy.validate_source(source, limits=tools.limits)
    return report if report.ruleset is None else report.ruleset


class RulesetParser:
    """``workflow.rulesets.cache.RulesetCache.parser`` for a server: parses stored versions in a worker process
    of its own, called from the database threads (``parse`` blocks its thread, not the GIL). Thread-safe."""

    def __init__(self, limits: RulesetLimits, timeout_seconds: float) -> None:
        self.limits = limits
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def parse(self, source: str) -> Ruleset:
        with self._lock:
            if self._executor is None:
                self._executor = _new_worker(self.limits)
            executor = self._executor
        try:
            answer = executor.submit(_call, parse_ruleset, source).result(timeout=self.timeout_seconds)
        except (BrokenProcessPool, TimeoutError):
            # Died, or stuck past its time: a stuck worker would make every later parse wait behind it, so
            # it is killed, and the next call starts a new worker.
            with self._lock:
                if self._executor is executor:
                    self._executor = None
            _kill_worker(executor)
            raise
        assert answer[0] == "ok"
        parsed: Ruleset | ValidationReport = answer[1]
        if isinstance(parsed, ValidationReport):
            raise policy.RulesetInvalid(parsed)
        return parsed

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------ inside a worker process

_tools: Tools | None = None  # this worker process's own engine and rulesets; set once by _start_worker


def _new_worker(limits: RulesetLimits) -> ProcessPoolExecutor:
    """One worker process (started on its first call) validating under ``limits``, watching this process."""
    # spawn, not fork: the server has threads (database, event loop helpers) a fork would copy mid-state.
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(limits, os.getpid()),
    )


def _start_worker(limits: RulesetLimits, server_pid: int) -> None:
    global _tools
    _exit_with_parent(server_pid)
    parsed = RulesetCache(size=16, limits=limits)  # active rulesets by digest: a few merchants' at a time
    _tools = Tools(engine=PolicyEngine(max_compiled=16), ruleset=parsed.get, limits=limits)


def _exit_with_parent(server_pid: int) -> None:
    """A worker whose server is gone (killed, so it could not stop its workers) exits within a second
    instead of living on as an orphan. The server's pid comes from the server: a worker whose server died
    while it was starting would otherwise take its new parent (init) for the server and never exit."""

    def watch() -> None:
        while os.getppid() == server_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _ready() -> None:
    """Nothing: submitted to start a worker process."""


def _call(fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    assert _tools is not None, "runs in a worker process started by WorkerPool"
    try:
        return ("ok", fn(_tools, *args))
    except DomainError as exc:
        details = exc.details
        if isinstance(details, ValidationReport):  # its parsed ruleset stays here: only problems are answered
            details = dataclasses.replace(details, ruleset=None)
        return ("error", exc.code.value, exc.message, exc.field, details)
