"""PolicyEngine: the one owner of every durable_rules interaction, safe to share between threads.

What it hides about durable_rules 2.0.28 (the C engine, called directly through ``durable_rules_engine``):
* not thread-safe, process-global handle table -> one process-wide lock around every engine call;
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
* a bounded LRU of compiled ruleset versions; evicted versions' engine rulesets are deleted.

Hot path per evaluation (see ``bench/policy_bench.py``): one pass of the group's extraction plan builds the
engine message and the decision's facts subset (``extract``), one assert/drain/retract per engine ruleset,
then the matched rules (already in section order) become a Decision without scanning the ruleset.
``decide_many`` holds the lock once per chunk for backtests.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from durable.engine import durable_rules_engine as _dre

from policy.backtest import BacktestReport, run_backtest
from policy.compile import PRIMER, CompiledRuleset, Group, SectionRule, compile_ruleset
from policy.explain import decision_from_rules, routing_from_rule
from policy.extract import Extractor
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
_ENGINE_LOCK = threading.RLock()
_SID = "0"
_PRIMER_FACT = json.dumps({"sid": _SID, "id": "primer", PRIMER: 1})
# Decisions in a batch are matched this many at a time per lock hold, so other threads are not starved.
BATCH_CHUNK = 256
_POSITION = itemgetter(0)
Hit = tuple[int, SectionRule]  # (position of the rule in its section, the rule)


class EngineError(RuntimeError):
    """durable_rules failed in a way the policy layer could not recover from."""


@dataclass
class _LoadedGroup:
    group: Group
    extractor: Extractor
    handles: list[tuple[int, dict[str, Hit]]]  # engine ruleset handle, durable rule name -> hit


@dataclass
class _Loaded:
    compiled: CompiledRuleset
    groups: dict[str, _LoadedGroup]


class PolicyEngine:
    """Decisions for rulesets, matched by durable_rules. ``max_compiled`` bounds cached versions."""

    def __init__(self, max_compiled: int = 64) -> None:
        if max_compiled < 1:
            raise ValueError("max_compiled must be at least 1")
        self.max_compiled = max_compiled
        self._cache: OrderedDict[str, _Loaded] = OrderedDict()
        self._counter = 0
        self.stats = {"compiled": 0, "evicted": 0, "evaluations": 0, "state_resets": 0}

    # -- public API ------------------------------------------------------------------------------------
    def decide(self, ruleset: Ruleset, facts: Mapping[str, Any], *, trace: bool = False) -> Decision:
        with _ENGINE_LOCK:
            hits, read = self._match(ruleset, "decide", facts)
        return _decision(ruleset, hits, read, facts, trace)

    def decide_many(self, ruleset: Ruleset, facts: Iterable[Mapping[str, Any]]) -> list[Decision]:
        """One decision per facts mapping, each matched by durable_rules; the engine lock is held once per
        chunk of ``BATCH_CHUNK`` evaluations instead of once per evaluation (backtests, bulk replays)."""
        items: Sequence[Mapping[str, Any]] = facts if isinstance(facts, Sequence) else list(facts)
        out: list[Decision] = []
        for start in range(0, len(items), BATCH_CHUNK):
            chunk = items[start : start + BATCH_CHUNK]
            with _ENGINE_LOCK:
                matched = [self._match(ruleset, "decide", one) for one in chunk]
            out.extend(
                _decision(ruleset, hits, read, one, False)
                for (hits, read), one in zip(matched, chunk, strict=True)
            )
        return out

    def route(self, ruleset: Ruleset, facts: Mapping[str, Any], *, trace: bool = False) -> RoutingDecision:
        with _ENGINE_LOCK:
            hits, read = self._match(ruleset, "route", facts)
        first = hits[0][1] if hits else None
        assert first is None or isinstance(first, RoutingRule)
        return routing_from_rule(ruleset, first, facts, read, _ids(hits) if trace else None)

    def escalations_due(self, ruleset: Ruleset, facts: Mapping[str, Any]) -> list[EscalationRule]:
        with _ENGINE_LOCK:
            hits, _ = self._match(ruleset, "escalate", facts)
        return [rule for _, rule in hits if isinstance(rule, EscalationRule)]

    def handoff(self, ruleset: Ruleset, facts: Mapping[str, Any]) -> list[str]:
        with _ENGINE_LOCK:
            hits, _ = self._match(ruleset, "decide", facts)
        return [rule.id for _, rule in hits if isinstance(rule, HandoffRule)]

    def run_tests(self, ruleset: Ruleset) -> list[RulesetTestResult]:
        from policy.testing import run_ruleset_tests

        return run_ruleset_tests(self, ruleset)

    def backtest(self, draft: Ruleset, active: Ruleset, cases: Iterable[Mapping[str, Any]]) -> BacktestReport:
        return run_backtest(self, draft, active, cases)

    def matched_rules(self, ruleset: Ruleset, group: str, facts: Mapping[str, Any]) -> set[str]:
        """Raw ids matched by durable_rules in one group (decide, route, escalate); for tests and tools."""
        with _ENGINE_LOCK:
            return _ids(self._match(ruleset, group, facts)[0])

    def compiled_count(self) -> int:
        with _ENGINE_LOCK:
            return len(self._cache)

    def close(self) -> None:
        """Free every engine ruleset this engine holds."""
        with _ENGINE_LOCK:
            while self._cache:
                _, loaded = self._cache.popitem(last=False)
                self._free(loaded)

    # -- internals (callers hold _ENGINE_LOCK) ----------------------------------------------------------
    def _match(
        self, ruleset: Ruleset, group_name: str, facts: Mapping[str, Any]
    ) -> tuple[list[Hit], dict[str, Any]]:
        """Rules durable_rules matched, in section order, and the facts subset the group read."""
        lg = self._load(ruleset).groups[group_name]
        self.stats["evaluations"] += 1
        message, read = lg.extractor.read(facts)
        hits: list[Hit] = []
        for handle, names in lg.handles:
            for name in self._evaluate(handle, message):
                hit = names.get(name)
                # A rule fires once per matching or-branch, so the same rule can come back twice.
                if hit is not None and hit not in hits:
                    hits.append(hit)
        if len(hits) > 1:
            hits.sort(key=_POSITION)
        return hits, read

    def _evaluate(self, handle: int, message: str) -> list[str]:
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

    def _load(self, ruleset: Ruleset) -> _Loaded:
        loaded = self._cache.get(ruleset.digest)
        if loaded is not None:
            self._cache.move_to_end(ruleset.digest)
            return loaded
        compiled = compile_ruleset(ruleset)
        groups: dict[str, _LoadedGroup] = {}
        try:
            for name, group in compiled.groups.items():
                rules = _section(ruleset, name)
                handles: list[tuple[int, dict[str, Hit]]] = []
                groups[name] = _LoadedGroup(group, Extractor(group, _SID), handles)
                for shard in group.shards:
                    self._counter += 1
                    handle = _dre.create_ruleset(f"bb{self._counter}", shard.definition)
                    hits = {durable: _hit(rules, rule_id) for durable, rule_id in shard.names.items()}
                    handles.append((handle, hits))
                    _prime(handle)
        except Exception as exc:
            self._free(_Loaded(compiled, groups))
            raise EngineError(f"durable_rules could not load ruleset {ruleset.name!r}: {exc}") from exc
        loaded = _Loaded(compiled, groups)
        self._cache[ruleset.digest] = loaded
        self.stats["compiled"] += 1
        while len(self._cache) > self.max_compiled:
            _, evicted = self._cache.popitem(last=False)
            self._free(evicted)
            self.stats["evicted"] += 1
        return loaded

    @staticmethod
    def _free(loaded: _Loaded) -> None:
        for lg in loaded.groups.values():
            for handle, _ in lg.handles:
                with contextlib.suppress(Exception):
                    _dre.delete_state(handle, _SID)
                _dre.delete_ruleset(handle)
            lg.handles.clear()


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
    if group == "route":
        return list(ruleset.routing)
    return list(ruleset.escalations)


def _hit(rules: list[SectionRule], rule_id: str) -> Hit:
    position = next(i for i, rule in enumerate(rules) if rule.id == rule_id)
    return position, rules[position]


def _ids(hits: list[Hit]) -> set[str]:
    return {rule.id for _, rule in hits}


def _decision(
    ruleset: Ruleset, hits: list[Hit], read: dict[str, Any], facts: Mapping[str, Any], trace: bool
) -> Decision:
    permissions = [rule for _, rule in hits if isinstance(rule, PermissionRule)]
    handoffs = [rule for _, rule in hits if isinstance(rule, HandoffRule)]
    return decision_from_rules(ruleset, permissions, handoffs, facts, read, _ids(hits) if trace else None)
