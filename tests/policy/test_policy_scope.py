"""The scope index: a decision reaches only the rules whose actor/action/stage scope admits it, and decides
exactly as the reference evaluator does, whatever the scope facts hold; the facts a decision read are a
snapshot; handoff rules still match for every actor through ``handoff``."""

from __future__ import annotations

import itertools
import json
import pickle
import random
from typing import Any

import pytest
import yaml

import policy
from policy import PolicyEngine, ReferenceEvaluator
from policy import compile as compile_module
from policy.conditions import permission_matches
from policy.model import PermissionRule

STAGES = ["new", "triaged", "in_progress", "closed"]
ACTORS = ["ai", "agent", "partner", "system"]
ACTIONS = ["reply", "refund", "cancel_order", "close"]


class Label(str):
    """A string subclass: equal to the plain string, as the reference compares scope values."""


ODD_SCOPE_VALUES: list[Any] = [
    None,
    7,
    True,
    2.5,
    "robot",
    "",
    "AI",
    ["ai"],
    {"x": 1},
    Label("ai"),
    Label("refund"),
]


def _generated(rules: int, seed: int, *, scoped: bool = False) -> policy.Ruleset:
    """``rules`` random permission rules; ``scoped``: every rule names its actors and actions."""
    rng = random.Random(seed)
    permissions = []
    for i in range(rules):
        rule: dict[str, Any] = {"id": f"r{i}", "effect": rng.choice(["allow", "require_approval", "deny"])}
        for key, pool in (("actors", ACTORS), ("actions", ACTIONS), ("stages", STAGES)):
            if rng.random() < 0.6 or (scoped and key != "stages"):
                rule[key] = rng.sample(pool, k=rng.randint(1, 2))
        if rng.random() < 0.7:
            rule["when"] = {"fact": "action.amount", rng.choice(["lt", "gte"]): rng.choice([10, 50, 100])}
        permissions.append(rule)
    doc = {
        "ruleset": f"scoped-{rules}-{seed}",
        "stages": STAGES,
        "defaults": {"effect": "deny"},
        "permissions": permissions,
        "handoff": [
            {"id": "legal", "when": {"fact": "ticket.body", "matches": "(?i)lawyer"}},
            {"id": "anyone"},
        ],
    }
    return policy.load_ruleset(yaml.safe_dump(doc, sort_keys=False))


def _facts(rng: random.Random, odd: bool) -> dict[str, Any]:
    def pick(pool: list[str]) -> Any:
        return rng.choice(ODD_SCOPE_VALUES) if odd and rng.random() < 0.3 else rng.choice(pool)

    facts: dict[str, Any] = {
        "ticket": {"stage": pick(STAGES), "body": rng.choice(["hi", "my LAWYER", 3])},
        "action": {"type": pick(ACTIONS), "actor": pick(ACTORS), "amount": rng.choice([5, 50, 500, "5"])},
    }
    if odd and rng.random() < 0.1:
        facts.pop(rng.choice(["ticket", "action"]))
    if odd and rng.random() < 0.05:
        facts["action"] = rng.choice([None, "refund", ["ai"]])
    return facts


@pytest.mark.parametrize("odd", [False, True])
def test_scoped_decisions_agree_with_the_reference(odd: bool) -> None:
    engine, reference = PolicyEngine(), ReferenceEvaluator()
    rng = random.Random(11)
    rulesets = [
        policy.load_default_ruleset(),
        _generated(60, 1),
        _generated(300, 2),
        _generated(300, 3, scoped=True),
    ]
    for ruleset in rulesets:
        for _ in range(400):
            facts = _facts(rng, odd)
            assert engine.decide(ruleset, facts).to_dict() == reference.decide(ruleset, facts).to_dict(), (
                facts
            )
            assert engine.matched_rules(ruleset, "decide", facts) == reference.matched_decide(ruleset, facts)
            assert engine.handoff(ruleset, facts) == reference.handoff(ruleset, facts)


def test_a_decision_reaches_only_the_rules_its_scope_admits() -> None:
    ruleset = _generated(300, 3, scoped=True)
    engine = PolicyEngine()
    loaded = engine._pin(ruleset)
    try:
        group = loaded.groups["decide"].group
        assert group.scope[:2] == ("actors", "actions")
        sizes = []
        for actor, action, stage in itertools.product([*ACTORS, "robot"], [*ACTIONS, "tag"], [*STAGES, "x"]):
            facts = {"action": {"actor": actor, "type": action}, "ticket": {"stage": stage}}
            bucket = engine._plan(loaded, "decide", facts)
            posted = {name for _, names in bucket.handles for name in names.values()}
            in_scope = {
                r.id
                for r in ruleset.permissions
                if permission_matches(PermissionRule(r.id, r.effect, r.actors, r.actions, r.stages), facts)
            }
            if actor == "ai":
                in_scope |= {h.id for h in ruleset.handoff}
            # Rules out of scope never reach the engine; with a coarser key, some in-scope-by-actor/action
            # rules stay whose stage condition is left to the engine.
            assert in_scope <= {rule.id for _, rule in posted}
            if group.scope == ("actors", "actions", "stages"):
                assert {rule.id for _, rule in posted} == in_scope
            sizes.append(len(posted))
        assert max(sizes) < len(ruleset.permissions) / 3  # cost follows the rules in scope
    finally:
        engine._release(loaded)


def test_rule_copies_stay_within_the_budget_and_a_coarser_key_still_decides_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ruleset = _generated(300, 4)
    compiled = compile_module.compile_ruleset(ruleset).groups["decide"]
    copies = sum(len(shard.names) for shard in compiled.shards)
    rules = len(ruleset.permissions) + len(ruleset.handoff)
    assert copies <= compile_module.scope_copy_budget(rules) <= rules + compile_module.MAX_EXTRA_COPIES

    reference = ReferenceEvaluator()
    rng = random.Random(5)
    facts = [_facts(rng, True) for _ in range(300)]
    for copies_allowed, allowance in ((1, 0), (0, 0)):
        monkeypatch.setattr(compile_module, "MAX_SCOPE_COPIES", copies_allowed)
        monkeypatch.setattr(compile_module, "SCOPE_COPY_ALLOWANCE", allowance)
        coarse = compile_module.compile_ruleset(ruleset).groups["decide"]
        assert len(coarse.scope) < 3
        ruleset.compiled.clear()
        engine = PolicyEngine()
        for one in facts:
            assert engine.decide(ruleset, one).to_dict() == reference.decide(ruleset, one).to_dict(), one
        engine.close()
    monkeypatch.setattr(compile_module, "MAX_SCOPE_COPIES", 0)
    monkeypatch.setattr(compile_module, "SCOPE_COPY_ALLOWANCE", 0)
    assert compile_module.compile_ruleset(ruleset).groups["decide"].scope == ()


def test_the_facts_a_decision_read_are_a_snapshot() -> None:
    ruleset = policy.load_default_ruleset()
    facts: dict[str, Any] = {
        "ticket": {"stage": "triaged", "tags": ["angry"], "body": "my lawyer", "message_count": 2},
        "customer": {"vip": True},
        "action": {"type": "refund", "actor": "ai", "amount": 20},
        "classifier": {"category_confidence": 0.9},
    }
    decision = PolicyEngine().decide(ruleset, facts)
    expected = ReferenceEvaluator().decide(ruleset, facts)
    facts["ticket"]["tags"].append("vip")  # the caller changes its facts after the decision
    facts["action"]["amount"] = 999
    assert decision.facts == expected.facts
    assert decision.facts["ticket"]["tags"] == ["angry"] and decision.facts["action"]["amount"] == 20
    assert decision.to_dict() == expected.to_dict()
    json.dumps(decision.to_dict())
    copy = pickle.loads(pickle.dumps(decision))
    assert type(copy.facts) is dict and copy.facts == expected.facts
    assert copy.explanation == expected.explanation and copy == decision


def test_handoff_rules_match_for_every_actor_but_change_only_the_ais_decision() -> None:
    ruleset = policy.load_default_ruleset()
    engine, reference = PolicyEngine(), ReferenceEvaluator()
    for actor in ACTORS:
        facts = {
            "ticket": {"stage": "triaged", "body": "I will call my lawyer"},
            "action": {"type": "reply", "actor": actor},
            "classifier": {"category_confidence": 0.95},
        }
        assert engine.handoff(ruleset, facts) == ["legal-threat"] == reference.handoff(ruleset, facts)
        decision = engine.decide(ruleset, facts)
        assert decision.handoff == (actor == "ai")
        assert decision.to_dict() == reference.decide(ruleset, facts).to_dict()


class Facts(dict[str, Any]):
    """A dict subclass: not a plain dict, so the generated plan hands it to ``read_any``."""


ODD_VALUES: list[Any] = [
    None,
    0,
    1,
    -1,
    2.5,
    2**60,
    10**16,
    1e300,
    float("nan"),
    float("inf"),
    True,
    False,
    "",
    "x",
    'q"é',
    Label("gold"),
    ["a", 3, None],
    [],
    {"k": [1]},
    ("a",),
]


def test_the_generated_plan_reads_exactly_as_the_generic_one() -> None:
    source = yaml.safe_dump(
        {
            "ruleset": "plans",
            "stages": STAGES,
            "permissions": [
                {
                    "id": "wide",
                    "effect": "allow",
                    "when": {
                        "any": [
                            {"fact": "custom.tier", "eq": "gold"},
                            {"fact": "order.custom.gift", "eq": True},
                            {"fact": "order.total", "gt": 5},
                            {"fact": "ticket.tags", "contains": "a"},
                            {"fact": "ticket.body", "matches": "(?i)q"},
                            {"fact": "customer.vip", "exists": True},
                        ]
                    },
                }
            ],
        }
    )
    ruleset = policy.load_ruleset(source)
    engine, reference = PolicyEngine(), ReferenceEvaluator()
    loaded = engine._pin(ruleset)
    rng = random.Random(8)
    try:
        for _ in range(2000):
            facts: dict[str, Any] = {}
            for namespace, name in (
                ("custom", "tier"),
                ("order", "custom"),
                ("order", "total"),
                ("ticket", "tags"),
                ("ticket", "body"),
                ("customer", "vip"),
                ("action", "actor"),
                ("ticket", "stage"),
            ):
                if rng.random() < 0.8:
                    value = {"gift": rng.choice(ODD_VALUES)} if name == "custom" else rng.choice(ODD_VALUES)
                    facts.setdefault(namespace, {})[name] = value
            if rng.random() < 0.1:
                facts[rng.choice(["order", "ticket"])] = rng.choice([None, "x", Facts(total=7)])
            for one in (facts, Facts(facts)):
                bucket = engine._plan(loaded, "decide", one)
                assert bucket.extractor.read(one) == bucket.extractor.read_any(one), one
                assert engine.decide(ruleset, one).to_dict() == reference.decide(ruleset, one).to_dict(), one
    finally:
        engine._release(loaded)
