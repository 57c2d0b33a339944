"""PolicyEngine: the one owner of every durable_rules interaction, safe to share between threads.

What it hides about durable_rules 2.0.28 (the C engine, called directly through ``durable_rules_engine``):
* not thread-safe, process-global handle table -> one process-wide lock around every engine call, and
  around nothing else: the message (``contains``/``matches`` precomputed with RE2) is built before the lock
  is taken, a new version is compiled outside it and its engine rulesets are created one shard per lock
  hold (about 1-4 ms each for a 2,000-rule ruleset), evicted versions are deleted one shard per hold;
* the Python ``Host`` starts timer threads and cannot unload a ruleset -> no Host at all: rulesets are
  created with ``create_ruleset`` and freed with ``delete_ruleset`` (which frees the network's pools);
* 1024 live states per ruleset, and a state's per-rule frames cost ~8 KB each to create -> exactly one
  state (sid "0") per engine ruleset; each evaluation asserts one fact, drains the actions it fired and
  retracts it again, so the state is empty between evaluations (a failed evaluation deletes the state);
* ``delete_state`` frees a state's action context, which the C engine leaves uninitialised until the
  state has run an action (valgrind: "conditional jump depends on uninitialised value" in
  deleteStateNode, then "free(): invalid size") -> every state is primed with one action cycle on a
  dedicated primer rule right after it is created, so deleting it later is safe;
* ``MessageNotHandled`` (no rule matched) is a normal, empty answer here;
* 255 properties per object -> only the typed properties the ruleset reads are posted (see ``compile``);
* a bounded LRU of compiled ruleset versions; evicted versions' engine rulesets are deleted (once the
  evaluations using them end: versions are pinned while in use). Drafts have their own small LRU
  (``PolicyEngine.drafts``), so they never evict merchants' active versions.

Hot path per evaluation (``bench/policy_bench.py`` prints its profile): the facts' scope key picks the
bucket of the rules in scope (``compile``'s scope index; code generated per group), one pass of that
bucket's generated extraction plan builds the engine message (only the facts those rules read) and the
snapshot of the facts the decision records (``extract``), one assert/drain/retract per shard holding the
bucket (one, unless the bucket is larger than a shard), then the matched rules (already in section order)
become a Decision without scanning the ruleset; its explanation is written when read. ``decide_many``
holds the lock once per chunk for backtests.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from durable.engine import durable_rules_engine as _dre

from policy.backtest import BacktestReport, run_backtest
from policy.compile import PRIMER, SCOPE_PATHS, CompiledRuleset, Group, SectionRule, compile_ruleset
from policy.explain import decision_from_rules, routing_from_rule
from policy.extract import Extractor
from policy.facts import FactsRead, resolve
from policy.model import (
    Decision,
    EscalationRule,
    HandoffRule,
    PermissionRule,
    RoutingDecision,
    RoutingRule,
    Ruleset,
    RulesetTestResult,
)

# The C library keeps process-global state (handle table), so every PolicyEngine shares one lock.
# Held only for engine calls: one evaluation, one shard's creation, one shard's deletion, a cache update.
_ENGINE_LOCK = threading.RLock()
_SID = "0"
_PRIMER_FACT = json.dumps({"sid": _SID, "id": "primer", PRIMER: 1})
# Decisions in a batch are matched this many at a time per lock hold, so other threads are not starved.
BATCH_CHUNK = 256
Hit = tuple[int, SectionRule]  # (position of the rule in its section, the rule)
_NAMES = itertools.count(1)  # engine ruleset names, unique across every PolicyEngine of the process


class EngineError(RuntimeError):
    """durable_rules failed in a way the policy layer could not recover from."""


@dataclass
class _LoadedBucket:
    """One scope bucket in the engine: what a decision in it posts, and its engine rulesets."""

    extractor: Extractor
    handles: list[tuple[int, dict[str, Hit]]]  # engine ruleset handle, durable rule name -> hit


@dataclass
class _LoadedGroup:
    group: Group
    handles: list[tuple[int, dict[str, Hit]]]  # the group's shards in the engine, created in order
    buckets: list[_LoadedBucket]
    scope: tuple[tuple[tuple[str, ...], frozenset[str]], ...]  # (scope fact path, values rules name)
    find: Callable[[Mapping[str, Any]], _LoadedBucket] | None = None  # ``bucket``, generated for the group

    def bucket(self, facts: Mapping[str, Any]) -> _LoadedBucket:
        """The bucket of the rules whose scope admits ``facts``: its key holds each scope fact's value when
        some rule names it (a string equal to a named one, as the reference compares), else None."""
        if not self.scope:
            return self.buckets[0]
        return self.buckets[self.group.index[self.key(facts)]]

    def key(self, facts: Mapping[str, Any]) -> tuple[str | None, ...]:
        key = []
        for path, named in self.scope:
            value = resolve(facts, path)
            if type(value) is not str and not isinstance(value, str):
                value = None
            key.append(value if value in named else None)
        return tuple(key)


def _bucket_finder(lg: _LoadedGroup) -> Callable[[Mapping[str, Any]], _LoadedBucket]:
    """``_LoadedGroup.bucket`` unrolled for one group's scope (two-segment paths of plain dicts; anything
    else takes the method). Names and values are constants of the function's namespace."""
    if not lg.scope or any(len(path) != 2 for path, _ in lg.scope):
        return lg.bucket
    space: dict[str, Any] = {"slow": lg.bucket, "BUCKETS": lg.buckets, "INDEX": lg.group.index}
    lines = ["def bucket(facts):", "    if type(facts) is not dict:", "        return slow(facts)"]
    spaces: dict[str, str] = {}
    for i, (path, named) in enumerate(lg.scope):
        if path[0] not in spaces:
            var = spaces[path[0]] = f"s{len(spaces)}"
            space[f"N_{var}"] = path[0]
            lines += [
                f"    {var} = facts.get(N_{var})",
                f"    if {var} is not None and type({var}) is not dict:",
                "        return slow(facts)",
            ]
        var = spaces[path[0]]
        space[f"F{i}"], space[f"V{i}"] = path[1], named
        lines += [
            f"    k{i} = {var}.get(F{i}) if {var} is not None else None",
            f"    if type(k{i}) is not str and not isinstance(k{i}, str):",
            f"        k{i} = None",
            f"    elif k{i} not in V{i}:",
            f"        k{i} = None",
        ]
    lines.append("    return BUCKETS[INDEX[(" + "".join(f"k{i}, " for i in range(len(lg.scope))) + ")]]")
    exec("\n".join(lines), space)  # our own template: every name and value is passed as a constant
    finder: Callable[[Mapping[str, Any]], _LoadedBucket] = space["bucket"]
    return finder


@dataclass
class _Loaded:
    """A compiled version in the engine. ``pins`` counts evaluations using it right now; an evicted
    version is freed when its last evaluation ends (both changed only under the engine's ``_guard``)."""

    compiled: CompiledRuleset
    groups: dict[str, _LoadedGroup]
    pins: int = 0
    evicted: bool = False


@dataclass
class _Pending:
    """One thread compiles a version; others asking for it meanwhile wait here instead of compiling too."""

    done: threading.Event = field(default_factory=threading.Event)


class PolicyEngine:
    """Decisions for rulesets, matched by durable_rules. ``max_compiled`` bounds cached versions.

    ``drafts`` is a sibling engine for rulesets that are not (yet) a merchant's active version: drafts
    sent to simulate, testRuleset or backtest, and a version before its publish succeeds. It keeps its own
    ``max_drafts`` versions, so drafts never evict active versions; it reuses a version this engine
    already holds, and this engine adopts a draft that becomes active instead of compiling it again.
    """

    def __init__(self, max_compiled: int = 64, *, max_drafts: int = 8) -> None:
        if max_compiled < 1:
            raise ValueError("max_compiled must be at least 1")
        self.max_compiled = max_compiled
        self._cache: OrderedDict[str, _Loaded] = OrderedDict()
        # Guards the caches and pins (of this engine and its drafts), never an engine call: a decision
        # finds its version while another thread holds _ENGINE_LOCK.
        self._guard = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._active: PolicyEngine | None = None  # set on a drafts engine: the engine of active versions
        self.stats = {"compiled": 0, "evicted": 0, "evaluations": 0, "engine_calls": 0, "state_resets": 0}
        self.drafts: PolicyEngine = self
        if max_drafts > 0:
            self.drafts = PolicyEngine(max_drafts, max_drafts=0)
            self.drafts._active = self
            self.drafts._guard = self._guard

    # -- public API ------------------------------------------------------------------------------------
    def decide(self, ruleset: Ruleset, facts: Mapping[str, Any], *, trace: bool = False) -> Decision:
        hits, read = self._match(ruleset, "decide", facts)
        return _decision(ruleset, hits, read, facts, trace)

    def decide_many(self, ruleset: Ruleset, facts: Iterable[Mapping[str, Any]]) -> list[Decision]:
        """One decision per facts mapping, each matched by durable_rules; the engine lock is held once per
        chunk of ``BATCH_CHUNK`` evaluations instead of once per evaluation (backtests, bulk replays)."""
        items: Sequence[Mapping[str, Any]] = facts if isinstance(facts, Sequence) else list(facts)
        out: list[Decision] = []
        loaded = self._pin(ruleset)
        try:
            for start in range(0, len(items), BATCH_CHUNK):
                chunk = items[start : start + BATCH_CHUNK]
                plans = [self._plan(loaded, "decide", one) for one in chunk]
                extracted = [plan.extractor.read(one) for plan, one in zip(plans, chunk, strict=True)]
                with _ENGINE_LOCK:  # the messages were built outside it: pure Python
                    matched = [
                        self._fire(plan, message) for plan, (message, _) in zip(plans, extracted, strict=True)
                    ]
                out.extend(
                    _decision(ruleset, hits, read, one, False)
                    for hits, (_, read), one in zip(matched, extracted, chunk, strict=True)
                )
        finally:
            self._release(loaded)
        return out

    def route(self, ruleset: Ruleset, facts: Mapping[str, Any], *, trace: bool = False) -> RoutingDecision:
        hits, read = self._match(ruleset, "route", facts)
        first = hits[0][1] if hits else None
        assert first is None or isinstance(first, RoutingRule)
        return routing_from_rule(ruleset, first, facts, read.as_dict(), _ids(hits) if trace else None)

    def escalations_due(self, ruleset: Ruleset, facts: Mapping[str, Any]) -> list[EscalationRule]:
        hits, _ = self._match(ruleset, "escalate", facts)
        return [rule for _, rule in hits if isinstance(rule, EscalationRule)]

    def handoff(self, ruleset: Ruleset, facts: Mapping[str, Any]) -> list[str]:
        """The handoff rules that match, whatever the actor (a decision uses them for the AI only)."""
        hits, _ = self._match(ruleset, "handoff", facts)
        return [rule.id for _, rule in hits if isinstance(rule, HandoffRule)]

    def run_tests(self, ruleset: Ruleset) -> list[RulesetTestResult]:
        from policy.testing import run_ruleset_tests

        return run_ruleset_tests(self, ruleset)

    def backtest(self, draft: Ruleset, active: Ruleset, cases: Iterable[Mapping[str, Any]]) -> BacktestReport:
        """Replay ``cases`` under ``active`` (this engine) and ``draft`` (compiled among the drafts)."""
        return run_backtest(self, draft, active, cases, draft_engine=self.drafts)

    def matched_rules(self, ruleset: Ruleset, group: str, facts: Mapping[str, Any]) -> set[str]:
        """Raw ids matched by durable_rules in one group (decide, route, escalate); for tests and tools.
        For decide: the permission rules and every matching handoff rule, whatever the actor."""
        if group != "decide":
            return _ids(self._match(ruleset, group, facts)[0])
        permissions = {
            rule.id for _, rule in self._match(ruleset, group, facts)[0] if isinstance(rule, PermissionRule)
        }
        return permissions | set(self.handoff(ruleset, facts))

    def load(self, ruleset: Ruleset) -> None:
        """Compile ``ruleset`` into the engine now, if it is not already (no evaluation)."""
        self._release(self._pin(ruleset))

    def is_compiled(self, ruleset: Ruleset) -> bool:
        """Whether this engine (not its drafts) holds a compiled ``ruleset`` right now."""
        with self._guard:
            return ruleset.digest in self._cache

    def compiled_count(self) -> int:
        with self._guard:
            return len(self._cache)

    def close(self) -> None:
        """Free every engine ruleset this engine and its drafts hold (versions in use: when they finish)."""
        if self.drafts is not self:
            self.drafts.close()
        with self._guard:
            evicted = list(self._cache.values())
            self._cache.clear()
            idle = [loaded for loaded in evicted if _evict(loaded)]
        for loaded in idle:
            _free(loaded)

    # -- evaluation ------------------------------------------------------------------------------------
    def _match(
        self, ruleset: Ruleset, group_name: str, facts: Mapping[str, Any]
    ) -> tuple[list[Hit], FactsRead]:
        """Rules durable_rules matched, in section order, and the facts the group read.

        The message (with every ``contains``/``matches`` precomputed) is built before the lock is taken;
        the lock covers only the engine calls."""
        loaded = self._pin(ruleset)
        try:
            lg = self._plan(loaded, group_name, facts)
            message, read = lg.extractor.read(facts)
            with _ENGINE_LOCK:
                hits = self._fire(lg, message)
        finally:
            self._release(loaded)
        return hits, read

    @staticmethod
    def _plan(loaded: _Loaded, group_name: str, facts: Mapping[str, Any]) -> _LoadedBucket:
        """What evaluates ``facts`` in one group of a compiled version: the bucket its scope selects."""
        lg = loaded.groups[group_name]
        return lg.find(facts) if lg.find is not None else lg.bucket(facts)

    def _fire(self, lg: _LoadedBucket, message: str) -> list[Hit]:
        """(Caller holds _ENGINE_LOCK.) The rules of one bucket that match ``message``, in section order."""
        self.stats["evaluations"] += 1
        found: dict[int, Hit] = {}  # by position: a rule fires once per matching or-branch, maybe twice
        for handle, names in lg.handles:
            for name in self._evaluate(handle, message):
                hit = names.get(name)
                if hit is not None:
                    found[hit[0]] = hit
        if len(found) > 1:
            return [found[position] for position in sorted(found)]
        return list(found.values())

    def _evaluate(self, handle: int, message: str) -> list[str]:
        self.stats["engine_calls"] += 1
        try:
            return self._assert_drain_retract(handle, message)
        except Exception:
            # Leave no half-finished state behind, then try once more on a clean one.
            self._reset(handle)
            try:
                return self._assert_drain_retract(handle, message)
            except Exception as exc:
                self._reset(handle)
                raise EngineError(f"durable_rules evaluation failed: {exc}") from exc

    def _assert_drain_retract(self, handle: int, message: str) -> list[str]:
        code, state = _dre.assert_fact(handle, message)
        fired: list[str] = []
        if code == 0:
            result = _dre.start_action_for_state(handle, state)
            if result:
                fired.append(_rule_name(result[1]))
                while True:
                    following = _dre.complete_and_start_action(handle, state)
                    if not following:
                        break
                    fired.append(_rule_name(following))
        elif code == 2:
            raise EngineError("a fact from an earlier evaluation was still present")
        # code 1: no rule matched; the fact may still be stored, so always retract.
        _dre.retract_fact(handle, message)
        return fired

    def _reset(self, handle: int) -> None:
        self.stats["state_resets"] += 1
        with contextlib.suppress(Exception):
            _dre.delete_state(handle, _SID)

    # -- the compiled versions -------------------------------------------------------------------------
    def _pin(self, ruleset: Ruleset) -> _Loaded:
        """The compiled ``ruleset``, pinned for one evaluation (the caller ends it with ``_release``).

        A version not compiled yet is compiled by one thread, outside the lock, and its engine rulesets
        are created one per lock hold, so a large ruleset never blocks other merchants' decisions for
        longer than one shard's creation."""
        digest = ruleset.digest
        while True:
            idle: list[_Loaded] = []
            with self._guard:
                loaded = self._lookup(digest, idle)
                if loaded is not None:
                    loaded.pins += 1
            for evicted in idle:
                _free(evicted)
            if loaded is not None:
                return loaded
            with self._pending_lock:
                pending = self._pending.get(digest)
                building = pending is None
                if pending is None:
                    pending = self._pending[digest] = _Pending()
            if not building:
                pending.done.wait()
                continue  # compiled by the other thread (or it failed and this one tries itself)
            try:
                loaded = _build(ruleset)
                with self._guard:
                    loaded.pins += 1
                    self.stats["compiled"] += 1
                    idle = self._insert(digest, loaded)
                for evicted in idle:
                    _free(evicted)
                return loaded
            finally:
                with self._pending_lock:
                    del self._pending[digest]
                pending.done.set()

    def _release(self, loaded: _Loaded) -> None:
        """End one evaluation of ``loaded``; the last one of an evicted version frees it."""
        with self._guard:
            loaded.pins -= 1
            idle = loaded.evicted and loaded.pins == 0
        if idle:
            _free(loaded)

    def _lookup(self, digest: str, idle: list[_Loaded]) -> _Loaded | None:
        """(Caller holds ``_guard``.) This engine's version, one the active engine holds (for a drafts
        engine), or a draft that has become active (for the active engine, which takes it over; versions
        that evicts and nothing uses go to ``idle``, for the caller to free)."""
        loaded = self._cache.get(digest)
        if loaded is not None:
            self._cache.move_to_end(digest)
            return loaded
        if self._active is not None:
            return self._active._cache.get(digest)
        drafts = self.drafts
        if drafts is not self:
            adopted = drafts._cache.pop(digest, None)
            if adopted is not None:
                idle.extend(self._insert(digest, adopted))
                return adopted
        return None

    def _insert(self, digest: str, loaded: _Loaded) -> list[_Loaded]:
        """(Caller holds ``_guard``.) Cache ``loaded`` and evict the least recently used versions beyond
        ``max_compiled``; returns those nothing uses any more, for the caller to free after the lock."""
        self._cache[digest] = loaded
        idle = []
        while len(self._cache) > self.max_compiled:
            _, evicted = self._cache.popitem(last=False)
            self.stats["evicted"] += 1
            if _evict(evicted):
                idle.append(evicted)
        return idle


def _build(ruleset: Ruleset) -> _Loaded:
    """Compile ``ruleset`` (pure Python, outside the lock), then create its engine rulesets one shard per
    lock hold. On failure every shard created so far is deleted again."""
    compiled = _take_compiled(ruleset)
    groups: dict[str, _LoadedGroup] = {}
    plan: list[tuple[_LoadedGroup, str, dict[str, Hit]]] = []
    for name, group in compiled.groups.items():
        rules = _section(ruleset, name)
        positions = {rule.id: i for i, rule in enumerate(rules)}
        scope = tuple(zip((SCOPE_PATHS[dim] for dim in group.scope), group.scope_values, strict=True))
        lg = groups[name] = _LoadedGroup(group, [], [], scope)
        lg.buckets = [_LoadedBucket(Extractor(group, _SID, bucket), []) for bucket in group.buckets]
        lg.find = _bucket_finder(lg)
        for shard in group.shards:
            hits = {durable: (positions[rid], rules[positions[rid]]) for durable, rid in shard.names.items()}
            plan.append((lg, shard.definition, hits))
    loaded = _Loaded(compiled, groups)
    try:
        for lg, definition, hits in plan:
            with _ENGINE_LOCK:
                handle = _dre.create_ruleset(f"bb{next(_NAMES)}", definition)
                lg.handles.append((handle, hits))
                _prime(handle)
            _let_waiters_in()
    except Exception as exc:
        _free(loaded)
        raise EngineError(f"durable_rules could not load ruleset {ruleset.name!r}: {exc}") from exc
    for lg in groups.values():
        for lb, bucket in zip(lg.buckets, lg.group.buckets, strict=True):
            lb.handles = [lg.handles[i] for i in bucket.shards]
    return loaded


def _take_compiled(ruleset: Ruleset) -> CompiledRuleset:
    """What validation compiled (once; later loads, e.g. after an eviction, compile again)."""
    try:
        handed = ruleset.compiled.pop()
    except IndexError:
        return compile_ruleset(ruleset)
    return handed if isinstance(handed, CompiledRuleset) else compile_ruleset(ruleset)


def _evict(loaded: _Loaded) -> bool:
    """(Caller holds ``_guard``.) Mark ``loaded`` evicted; True when nothing uses it: free it now."""
    loaded.evicted = True
    return loaded.pins == 0


def _free(loaded: _Loaded) -> None:
    """Delete ``loaded``'s engine rulesets, one per lock hold; only for a version nothing can reach."""
    for lg in loaded.groups.values():
        for lb in lg.buckets:
            lb.handles = []
        while lg.handles:
            with _ENGINE_LOCK:
                handle, _ = lg.handles.pop()
                with contextlib.suppress(Exception):
                    _dre.delete_state(handle, _SID)
                _dre.delete_ruleset(handle)
            _let_waiters_in()


def _let_waiters_in() -> None:
    """Yield between two lock holds of one long job (a compile's shards, a free).

    The lock is not fair: a thread that releases it and takes it again a few bytecodes later, still
    holding the GIL, wins over the threads waiting for it, so one decision would wait for every shard of
    a large compile (measured: ~60 ms for 20 shards). Sleeping 0 s gives up the GIL and the CPU, so a
    waiting decision takes the lock in between."""
    time.sleep(0)


def _prime(handle: int) -> None:
    """Create the evaluation state and run one full action cycle on it (initialises its action context)."""
    code, state = _dre.assert_fact(handle, _PRIMER_FACT)
    if code == 0 and _dre.start_action_for_state(handle, state):
        while _dre.complete_and_start_action(handle, state):
            pass
    _dre.retract_fact(handle, _PRIMER_FACT)


def _rule_name(message: str) -> str:
    # Messages look like {"p12":{"m":{...}}}; rule names are ours and never contain quotes.
    return message[2 : message.index('"', 2)]


def _section(ruleset: Ruleset, group: str) -> list[SectionRule]:
    """A group's rules in the order ``compile`` numbers them (permissions then handoff for decide)."""
    if group == "decide":
        return [*ruleset.permissions, *ruleset.handoff]
    if group == "handoff":
        return list(ruleset.handoff)
    if group == "route":
        return list(ruleset.routing)
    return list(ruleset.escalations)


def _ids(hits: list[Hit]) -> set[str]:
    return {rule.id for _, rule in hits}


def _decision(
    ruleset: Ruleset, hits: list[Hit], read: FactsRead, facts: Mapping[str, Any], trace: bool
) -> Decision:
    permissions = [rule for _, rule in hits if isinstance(rule, PermissionRule)]
    handoffs = [rule for _, rule in hits if isinstance(rule, HandoffRule)]
    return decision_from_rules(ruleset, permissions, handoffs, facts, read, _ids(hits) if trace else None)
