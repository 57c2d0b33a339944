"""Runs a ruleset's own ``tests`` section (``bookbag rules test`` and before every publish)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from policy.model import Ruleset, RulesetTest, RulesetTestResult

if TYPE_CHECKING:
    from policy.engine import PolicyEngine


def run_ruleset_tests(engine: PolicyEngine, ruleset: Ruleset) -> list[RulesetTestResult]:
    return [_run_one(engine, ruleset, test) for test in ruleset.tests]


def _run_one(engine: PolicyEngine, ruleset: Ruleset, test: RulesetTest) -> RulesetTestResult:
    expect = test.expect
    failures: list[str] = []
    try:
        if expect.keys() & {"effect", "rules", "deciding", "approvers", "handoff", "handoff_rules"}:
            decision = engine.decide(ruleset, test.facts)
            _check(failures, "effect", expect, decision.effect)
            _check_set(failures, "rules", expect, decision.matched_rules)
            _check_set(failures, "deciding", expect, decision.deciding_rules)
            _check_set(failures, "approvers", expect, decision.approvers)
            _check(failures, "handoff", expect, decision.handoff)
            _check_set(failures, "handoff_rules", expect, decision.handoff_rules)
        if expect.keys() & {"route", "team"}:
            routing = engine.route(ruleset, test.facts)
            _check(failures, "route", expect, routing.rule_id)
            _check(failures, "team", expect, routing.team)
        if "escalations" in expect:
            due = [r.id for r in engine.escalations_due(ruleset, test.facts)]
            _check_set(failures, "escalations", expect, due)
    except Exception as exc:  # a broken test reports, it does not abort the others
        return RulesetTestResult(test.name, False, f"error: {exc}")
    if failures:
        return RulesetTestResult(test.name, False, "; ".join(failures))
    return RulesetTestResult(test.name, True, "ok")


def _check(failures: list[str], key: str, expect: Any, actual: Any) -> None:
    if key in expect and expect[key] != actual:
        failures.append(f"expected {key} {expect[key]!r}, got {actual!r}")


def _check_set(failures: list[str], key: str, expect: Any, actual: Any) -> None:
    if key not in expect:
        return
    wanted = expect[key]
    wanted_set = set(wanted) if isinstance(wanted, list) else {wanted}
    if wanted_set != set(actual):
        failures.append(f"expected {key} {sorted(wanted_set)}, got {sorted(actual)}")
