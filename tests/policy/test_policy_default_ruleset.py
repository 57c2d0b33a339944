"""The bundled default ruleset validates, its own tests pass on durable_rules, and decisions look right."""

from __future__ import annotations

import policy
from policy import PolicyEngine


def test_default_ruleset_is_valid() -> None:
    report = policy.validate_source(policy.default_ruleset_path().read_text(), "default.yaml")
    assert report.ok, [str(p) for p in report.problems]
    assert report.ruleset is not None and report.ruleset.name == "default"


def test_default_ruleset_tests_pass() -> None:
    ruleset = policy.load_default_ruleset()
    engine = PolicyEngine()
    results = engine.run_tests(ruleset)
    assert results, "the default ruleset ships tests"
    assert [r for r in results if not r.passed] == []


def test_small_ai_refund_allowed_and_facts_are_what_was_read() -> None:
    ruleset = policy.load_default_ruleset()
    facts = {
        "ticket": {"stage": "triaged", "subject": "unused by the ruleset"},
        "action": {"type": "refund", "actor": "ai", "amount": 20},
        "classifier": {"category_confidence": 0.9, "model_version": "x"},
    }
    decision = PolicyEngine().decide(ruleset, facts)
    assert decision.effect == "allow"
    assert decision.matched_rules == ("ai-small-refund",)
    assert "subject" not in decision.facts["ticket"]
    assert "model_version" not in decision.facts["classifier"]
    replay = PolicyEngine().decide(ruleset, decision.facts)
    assert replay.to_dict() == decision.to_dict()
