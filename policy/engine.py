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
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from durable.engine import durable_rules_engine as _dre

from policy.backtest import BacktestReport, run_backtest
from policy.compile import PRIMER, CompiledRuleset, Group, compile_ruleset
from policy.explain import decision_from_matches, escalations_from_matches, routing_from_matches
from policy.facts import MISSING, contains, kind, matches, resolve
from policy.model import Decision, EscalationRule, RoutingDecision, Ruleset, RulesetTestResult

# The C library keeps process-global state (handle table), so every PolicyEngine shares one lock.
_ENGINE_LOCK = threading.RLock()
_SID = "0"
_PRIMER_FACT = json.dumps({"sid": _SID, "id": "primer", PRIMER: 1})


class EngineError(RuntimeError):
    """durable_rules failed in a way the policy layer could not recover from."""


@dataclass
class _LoadedGroup:
    group: Group
    handles: list[tuple[int, dict[str, str]]]
    paths: list[tuple[str, ...]]


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
        matched, paths = self._match(ruleset, "decide", facts)
        return decision_from_matches(ruleset, matched, facts, trace=trace, paths=paths)

    def route(self, ruleset: Ruleset, facts: Mapping[str, Any], *, trace: bool = False) -> RoutingDecision:
        matched, paths = self._match(ruleset, "route", facts)
        return routing_from_matches(ruleset, matched, facts, trace=trace, paths=paths)

    def escalations_due(self, ruleset: Ruleset, facts: Mapping[str, Any]) -> list[EscalationRule]:
        matched, _ = self._match(ruleset, "escalate", facts)
        return escalations_from_matches(ruleset, matched)

    def handoff(self, ruleset: Ruleset, facts: Mapping[str, Any]) -> list[str]:
        matched, _ = self._match(ruleset, "decide", facts)
        return [h.id for h in ruleset.handoff if h.id in matched]

    def run_tests(self, ruleset: Ruleset) -> list[RulesetTestResult]:
        from policy.testing import run_ruleset_tests

        return run_ruleset_tests(self, ruleset)

    def backtest(self, draft: Ruleset, active: Ruleset, cases: Iterable[Mapping[str, Any]]) -> BacktestReport:
        return run_backtest(self, draft, active, cases)

    def matched_rules(self, ruleset: Ruleset, group: str, facts: Mapping[str, Any]) -> set[str]:
        """Raw ids matched by durable_rules in one group (decide, route, escalate); for tests and tools."""
        return self._match(ruleset, group, facts)[0]

    def compiled_count(self) -> int:
        with _ENGINE_LOCK:
            return len(self._cache)

    def close(self) -> None:
        """Free every engine ruleset this engine holds."""
        with _ENGINE_LOCK:
            while self._cache:
                _, loaded = self._cache.popitem(last=False)
                self._free(loaded)

    # -- internals -------------------------------------------------------------------------------------
    def _match(
        self, ruleset: Ruleset, group_name: str, facts: Mapping[str, Any]
    ) -> tuple[set[str], list[tuple[str, ...]]]:
        with _ENGINE_LOCK:
            loaded = self._load(ruleset)
            lg = loaded.groups[group_name]
            self.stats["evaluations"] += 1
            if not lg.handles:
                return set(), lg.paths
            message = json.dumps(_flatten(lg.group, facts), ensure_ascii=True, allow_nan=False)
            matched: set[str] = set()
            for handle, names in lg.handles:
                for name in self._evaluate(handle, message):
                    if name in names:
                        matched.add(names[name])
            return matched, lg.paths

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
                handles: list[tuple[int, dict[str, str]]] = []
                groups[name] = _LoadedGroup(group, handles, list(group.paths))
                for shard in group.shards:
                    self._counter += 1
                    handle = _dre.create_ruleset(f"bb{self._counter}", shard.definition)
                    handles.append((handle, shard.names))
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


def _flatten(group: Group, facts: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"sid": _SID, "id": "f", "k": 1}
    for prop in group.props:
        value = resolve(facts, prop.path)
        if value is MISSING:
            continue
        k = prop.kind
        if k == "x":
            out[prop.name] = 1
            continue
        vk = kind(value)
        if vk != k:
            continue
        if k == "n":
            number = float(value)
            out[prop.name] = int(number) if number.is_integer() and abs(number) < 2**53 else number
        elif k == "b":
            out[prop.name] = 1 if value else 0
        else:
            out[prop.name] = value
    for derived in group.derived:
        value = resolve(facts, derived.path)
        if derived.op == "contains":
            hit = value is not MISSING and contains(value, derived.value)
        else:
            hit = value is not MISSING and matches(value, derived.value)
        out[derived.name] = 1 if hit else 0
    return out
