"""Compiling never stalls other merchants, and drafts never evict active versions.

* A 2,000-rule ruleset is compiled outside the engine lock and its engine rulesets are created one shard
  per lock hold: no single hold is more than a few milliseconds, and a decision on an already loaded
  ruleset in another thread completes while the compile is still running.
* Drafts (``PolicyEngine.drafts``) have their own small cache: any number of drafts leaves the active
  versions compiled; a draft reuses a version the active cache holds, and a published draft is taken over
  by the active cache instead of being compiled again.
* A version evicted while an evaluation uses it is freed only when that evaluation ends.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import policy
from policy import PolicyEngine, ReferenceEvaluator
from policy import engine as engine_module
from policy.compile import compile_ruleset

ACTIONS = ["reply", "refund", "cancel_order", "close", "tag", "note"]
FACTS: dict[str, Any] = {
    "ticket": {"stage": "triaged", "tags": ["vip"], "body": "where is my parcel"},
    "action": {"type": "refund", "actor": "ai", "amount": 40},
    "customer": {"k0": 5, "k1": 7, "segment": "gold"},
}


@pytest.fixture
def no_gc_pauses() -> Iterator[None]:
    """Timing tests measure the engine lock, not the cyclic GC: a collection pauses every thread, for
    longer the more the test session has imported (bookbag.server freezes start-up objects for that)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def large_source(rules: int = 2000, name: str = "large") -> str:
    """``rules`` permission rules of a few conditions each (numbers, strings, contains, matches)."""
    lines = [f"ruleset: {name}", "stages: [new, triaged, in_progress, closed]", "permissions:"]
    for i in range(rules):
        conditions = [
            f"{{fact: customer.k{i % 8}, gte: {i}}}",
            f"{{fact: customer.segment, ne: s{i % 40}}}",
            f"{{fact: ticket.tags, contains: t{i % 12}}}"
            if i % 2
            else f"{{fact: ticket.body, matches: 'parcel{i % 10}|late'}}",
        ]
        lines.append(
            f"  - {{id: r{i}, actions: [{ACTIONS[i % len(ACTIONS)]}], stages: [triaged], "
            f"when: {{all: [{', '.join(conditions)}]}}, effect: {'allow' if i % 3 else 'deny'}}}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def large() -> policy.Ruleset:
    return policy.load_ruleset(large_source())


def _variant(limit: int) -> policy.Ruleset:
    source = policy.default_ruleset_path().read_text()
    return policy.load_ruleset(
        source.replace("{fact: action.amount, lte: 50}", f"{{fact: action.amount, lte: {limit}}}")
    )


class _TimedLock:
    """The engine lock, recording how long each outermost hold lasted."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._since = 0.0
        self.holds: list[float] = []

    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth += 1
        if self._depth == 1:
            self._since = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.holds.append(time.perf_counter() - self._since)
        self._lock.release()


def test_compiling_2000_rules_holds_the_lock_only_per_shard(
    large: policy.Ruleset, monkeypatch: pytest.MonkeyPatch, no_gc_pauses: None
) -> None:
    timed = _TimedLock()
    monkeypatch.setattr(engine_module, "_ENGINE_LOCK", timed)
    engine = PolicyEngine(max_compiled=2)
    large.compiled.clear()  # compile in the engine, as after an eviction (not what validation compiled)
    started = time.perf_counter()
    decision = engine.drafts.decide(large, FACTS)
    elapsed = time.perf_counter() - started
    assert decision.to_dict() == ReferenceEvaluator().decide(large, FACTS).to_dict()
    shards = sum(len(g.shards) for g in compile_ruleset(large).groups.values())
    # One hold per shard, one for the evaluation: each hold is one shard's create_ruleset (1-5 ms on a quiet
    # machine); the compile around them runs outside the lock. (How long a hold takes is a benchmark's
    # business, not a test's: on a loaded machine any bound flakes.)
    assert shards > 1 and len(timed.holds) == shards + 1
    print(f"longest lock hold {max(timed.holds) * 1000:.1f} ms over {shards} shards")
    assert max(timed.holds) < elapsed / 5, (max(timed.holds), elapsed)
    timed.holds.clear()
    engine.close()
    assert len(timed.holds) == shards  # freed one shard per hold too


def test_a_loaded_rulesets_decisions_go_on_while_a_large_draft_compiles(
    large: policy.Ruleset, no_gc_pauses: None
) -> None:
    engine = PolicyEngine(max_compiled=4, max_drafts=1)
    active = policy.load_default_ruleset()
    engine.decide(active, FACTS)  # loaded before the compile starts
    other = policy.load_ruleset(large_source(name="large-too"))
    compile_started = threading.Event()
    compile_done = threading.Event()
    compile_time: list[float] = []
    latencies: list[float] = []

    def compile_draft() -> None:
        started = time.perf_counter()
        compile_started.set()
        for draft in (large, other, large):  # one draft cached: each is compiled in the engine, in full
            draft.compiled.clear()  # not what validation compiled: as after an eviction
            engine.drafts.decide(draft, FACTS)
        compile_time.append(time.perf_counter() - started)
        compile_done.set()

    def decide_active() -> None:
        compile_started.wait(5)
        while not compile_done.is_set():
            started = time.perf_counter()
            engine.decide(active, FACTS)
            latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=compile_draft), threading.Thread(target=decide_active)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    (elapsed,) = compile_time
    assert engine.drafts.stats["compiled"] == 3
    # Before: each whole compile ran inside the lock and this thread waited for all of it.
    assert len(latencies) >= 10, (len(latencies), elapsed)
    assert max(latencies) < elapsed / 8, (max(latencies), elapsed)
    assert engine.is_compiled(active) and not engine.is_compiled(large)


def test_drafts_never_evict_active_versions() -> None:
    engine = PolicyEngine(max_compiled=2, max_drafts=2)
    actives = [_variant(10), _variant(20)]
    for ruleset in actives:
        engine.decide(ruleset, FACTS)
    reference = ReferenceEvaluator()
    for limit in range(30, 60):  # 30 drafts through every entry point that takes a draft
        draft = _variant(limit)
        assert engine.drafts.decide(draft, FACTS).to_dict() == reference.decide(draft, FACTS).to_dict()
        engine.drafts.run_tests(draft)
        engine.backtest(draft, actives[0], [FACTS])
    assert all(engine.is_compiled(ruleset) for ruleset in actives)
    assert engine.stats["evicted"] == 0 and engine.compiled_count() == 2
    assert engine.drafts.compiled_count() == 2 and engine.drafts.stats["evicted"] == 28


def test_drafts_reuse_active_versions_and_a_published_draft_is_taken_over() -> None:
    engine = PolicyEngine(max_compiled=2, max_drafts=2)
    active, draft = _variant(10), _variant(20)
    engine.decide(active, FACTS)
    engine.drafts.decide(active, FACTS)  # simulate of the active source: nothing compiled again
    assert engine.drafts.stats["compiled"] == 0 and engine.drafts.compiled_count() == 0
    engine.drafts.decide(draft, FACTS)
    assert engine.drafts.compiled_count() == 1
    engine.decide(draft, FACTS)  # published: the active cache takes the compiled draft over
    assert engine.is_compiled(draft) and engine.drafts.compiled_count() == 0
    assert engine.stats["compiled"] == 1 and engine.drafts.stats["compiled"] == 1


def test_a_version_evicted_while_in_use_is_freed_when_its_evaluation_ends() -> None:
    engine = PolicyEngine(max_compiled=1, max_drafts=1)
    first, second = _variant(10), _variant(20)
    pinned = engine._pin(first)  # an evaluation of ``first`` in progress
    engine.decide(second, FACTS)  # evicts ``first``
    assert not engine.is_compiled(first) and pinned.evicted
    assert all(lg.handles for lg in pinned.groups.values() if lg.group.shards)  # still usable
    facts = {"ticket": {"stage": "triaged"}, "action": {"type": "tag", "actor": "agent"}}
    wanted = ReferenceEvaluator().matched_decide(first, facts)
    bucket = engine._plan(pinned, "decide", facts)  # the rules whose scope admits these facts
    message = bucket.extractor.read(facts)[0]
    with engine_module._ENGINE_LOCK:
        hits = engine._fire(bucket, message)
    assert wanted and {rule.id for _, rule in hits} == wanted
    engine._release(pinned)
    assert all(not lg.handles for lg in pinned.groups.values())  # freed by the last user
    assert engine.decide(first, FACTS).to_dict() == ReferenceEvaluator().decide(first, FACTS).to_dict()


def test_concurrent_first_decisions_compile_a_version_once() -> None:
    engine = PolicyEngine(max_compiled=2)
    ruleset = _variant(33)
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            engine.decide(ruleset, FACTS)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=decide) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and engine.stats["compiled"] == 1


def test_what_validation_compiled_is_loaded_without_compiling_again() -> None:
    ruleset = _variant(44)
    assert len(ruleset.compiled) == 1  # validation compiled every group to check the engine limits
    engine = PolicyEngine(max_compiled=1)
    facts = {"ticket": {"stage": "triaged"}, "action": {"type": "refund", "actor": "ai", "amount": 30}}
    assert engine.decide(ruleset, facts).to_dict() == ReferenceEvaluator().decide(ruleset, facts).to_dict()
    assert ruleset.compiled == []  # taken once, not kept twice
    other = PolicyEngine(max_compiled=1)  # compiles it itself
    assert other.decide(ruleset, facts).to_dict() == engine.decide(ruleset, facts).to_dict()
