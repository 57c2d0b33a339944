"""Differential tests: durable_rules (PolicyEngine) and the pure-Python reference must agree exactly.

Hypothesis generates rulesets (through YAML text, so loading and validation are exercised too) and facts
drawn from a small pool, including values of the wrong type and missing facts, where the C engine's own
loose comparisons would differ if they leaked through.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import policy
from policy import PolicyEngine, ReferenceEvaluator

STAGES = ["new", "triaged", "in_progress", "closed"]
ACTORS = ["ai", "agent", "partner", "system"]
ACTIONS = ["reply", "refund", "cancel_order", "close"]
SCALARS: list[Any] = [0, 1, -1, 2.5, 50, 100, 1e9, "a", "b", "", "refund", "x y", 'q"uote', "é", True, False]
NUMBERS = [0, 1, -1, 2.5, 50, 100, 1e9]
REGEXES = ["(?i)chargeback", "^a", "b$", "[0-9]+", "x y"]
PATHS = {
    "ticket.stage": st.sampled_from(STAGES),
    "ticket.priority": st.sampled_from(["urgent", "high", "normal", "low"]),
    "action.type": st.sampled_from(ACTIONS),
    "action.actor": st.sampled_from(ACTORS),
    "action.amount": st.sampled_from(NUMBERS),
    "ticket.tags": st.sampled_from(SCALARS),
    "ticket.body": st.sampled_from(SCALARS),
    "customer.vip": st.sampled_from(SCALARS),
    "customer.segment": st.sampled_from(SCALARS),
    "order.total": st.sampled_from(SCALARS),
    "classifier.category_confidence": st.sampled_from(NUMBERS),
}
FREE_PATHS = [
    "ticket.tags",
    "ticket.body",
    "customer.vip",
    "customer.segment",
    "order.total",
    "action.amount",
    "classifier.category_confidence",
    "ticket.seconds_in_stage",
]


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    path = draw(st.sampled_from([*sorted(PATHS), "ticket.seconds_in_stage"]))
    domain = path in ("ticket.stage", "ticket.priority", "action.type", "action.actor")
    op = draw(
        st.sampled_from(
            ["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "matches", "exists"]
        )
    )
    if domain and op in ("eq", "ne", "in", "not_in"):
        pool = PATHS[path]
        value: Any = draw(pool) if op in ("eq", "ne") else draw(st.lists(pool, min_size=1, max_size=3))
    elif op in ("lt", "lte", "gt", "gte"):
        value = draw(st.sampled_from(NUMBERS))
    elif op in ("in", "not_in"):
        value = draw(st.lists(st.sampled_from(SCALARS), min_size=1, max_size=3))
    elif op == "matches":
        value = draw(st.sampled_from(REGEXES))
    elif op == "exists":
        value = draw(st.booleans())
    else:
        value = draw(st.sampled_from(SCALARS))
    return {"fact": path, op: value}


def conditions(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    if depth == 0:
        return leaves()
    inner = conditions(depth - 1)
    return st.one_of(
        leaves(),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
        inner.map(lambda x: {"not": x}),
    )


def _maybe(draw: st.DrawFn, values: list[str]) -> list[str] | None:
    return draw(st.none() | st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True))


@st.composite
def rulesets(draw: st.DrawFn) -> str:
    permissions = []
    for i in range(draw(st.integers(1, 6))):
        rule: dict[str, Any] = {
            "id": f"p{i}",
            "effect": draw(st.sampled_from(["allow", "require_approval", "deny"])),
        }
        for key, pool in (("actors", ACTORS), ("actions", ACTIONS), ("stages", STAGES)):
            chosen = _maybe(draw, pool)
            if chosen is not None:
                rule[key] = chosen
        if draw(st.booleans()):
            rule["when"] = draw(conditions())
        permissions.append(rule)
    routing = []
    for i in range(draw(st.integers(0, 3))):
        route: dict[str, Any] = {"id": f"r{i}", "assign": {"team": f"t{i}"}}
        if draw(st.booleans()):
            route["when"] = draw(conditions(1))
        routing.append(route)
    handoff = [{"id": f"h{i}", "when": draw(conditions(1))} for i in range(draw(st.integers(0, 2)))]
    escalations = []
    for i in range(draw(st.integers(0, 2))):
        esc: dict[str, Any] = {
            "id": f"e{i}",
            "after": draw(st.sampled_from(["1s", "30m", "1h"])),
            "then": {"transition": "closed"},
        }
        chosen = _maybe(draw, STAGES)
        if chosen is not None:
            esc["stages"] = chosen
        if draw(st.booleans()):
            esc["when"] = draw(conditions(1))
        escalations.append(esc)
    doc = {
        "ruleset": "generated",
        "stages": STAGES,
        "defaults": {"effect": draw(st.sampled_from(["allow", "require_approval", "deny"]))},
        "permissions": permissions,
        "routing": routing,
        "handoff": handoff,
        "escalations": escalations,
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@st.composite
def fact_sets(draw: st.DrawFn) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for path, pool in PATHS.items():
        if draw(st.integers(0, 4)) == 0:
            continue  # missing
        if path in FREE_PATHS and draw(st.booleans()):
            value: Any = draw(st.sampled_from([*SCALARS, None, ["a", "b"], ["refund"], [], {"k": 1}]))
        else:
            value = draw(pool)
        namespace, name = path.split(".")
        facts.setdefault(namespace, {})[name] = value
    if draw(st.booleans()):
        facts.setdefault("ticket", {})["seconds_in_stage"] = draw(
            st.sampled_from([0, 1, 1799, 1800, 3600, 1e6])
        )
    return facts


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    # Small cache: generated rulesets keep evicting each other, which exercises freeing engine rulesets.
    return PolicyEngine(max_compiled=4)


def _load(source: str) -> policy.Ruleset:
    report = policy.validate_source(source)
    engine_limited = any(p.code == "E_ENGINE_LIMIT" for p in report.problems)
    assume(not engine_limited)
    assert report.ok, [str(p) for p in report.problems]
    assert report.ruleset is not None
    return report.ruleset


@settings(
    max_examples=int(os.environ.get("POLICY_DIFF_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(source=rulesets(), facts=st.lists(fact_sets(), min_size=1, max_size=4))
def test_engine_agrees_with_reference(engine: PolicyEngine, source: str, facts: list[dict[str, Any]]) -> None:
    ruleset = _load(source)
    reference = ReferenceEvaluator()
    for one in facts:
        assert engine.matched_rules(ruleset, "decide", one) == reference.matched_decide(ruleset, one), one
        got, want = engine.decide(ruleset, one), reference.decide(ruleset, one)
        assert got.to_dict() == want.to_dict(), one
        assert engine.route(ruleset, one).to_dict() == reference.route(ruleset, one).to_dict(), one
        assert [r.id for r in engine.escalations_due(ruleset, one)] == [
            r.id for r in reference.escalations_due(ruleset, one)
        ], one
        assert engine.handoff(ruleset, one) == reference.handoff(ruleset, one)
        # A decision's recorded facts replay to the same decision.
        assert engine.decide(ruleset, got.facts).to_dict() == got.to_dict()
