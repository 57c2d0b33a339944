"""Bounded ruleset input: every limit is a coded problem at its line, found fast and with little memory,
never a RecursionError or an exception; what stays within the limits (aliases, nesting) still works."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest

import policy
from policy import PolicyEngine, ReferenceEvaluator, RulesetLimits, load

# The classic "billion laughs": nine levels of nine aliases (under 400 bytes), 9^9 strings once expanded.
BILLION_LAUGHS = (
    'ruleset: lol\nstages: [new]\nl0: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"l{i}: &{c} [{','.join(['*' + p] * 9)}]\n"
        for i, (p, c) in enumerate(zip("abcdefgh", "bcdefghi", strict=True), 1)
    )
)
FACTS = {"ticket": {"stage": "new", "body": "hello"}, "action": {"type": "reply", "actor": "ai"}}


@pytest.fixture(params=["libyaml", "python"], autouse=True)
def yaml_events(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with libyaml's event parser and with PyYAML's own (used when libyaml is absent)."""
    if request.param == "python":
        monkeypatch.setattr(load, "_CParser", None)


def _measured(source: str, limits: RulesetLimits | None = None) -> tuple[policy.ValidationReport, float, int]:
    """(report, seconds, peak bytes allocated) of one validation."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        report = policy.validate_source(source, "draft.yaml", limits)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return report, elapsed, peak


def _codes(report: policy.ValidationReport) -> list[tuple[str, int]]:
    return [(p.code, p.line) for p in report.problems]


def test_billion_laughs_is_refused_while_composing() -> None:
    assert len(BILLION_LAUGHS.encode()) < 400
    report, elapsed, peak = _measured(BILLION_LAUGHS)
    # Level l5 is the first whose expansion (about 600,000 nodes) passes the 150,000-node budget.
    assert _codes(report) == [("E_YAML_TOO_MANY_NODES", 8)]
    assert elapsed < 0.25, elapsed  # composing 337 bytes; milliseconds on an idle machine
    assert peak < 2_000_000, peak  # nothing was expanded


def test_aliases_within_the_budget_are_allowed_and_evaluate() -> None:
    source = """ruleset: shared
stages: [new]
permissions:
  - {id: reply, actions: [reply], effect: allow}
  - id: calm-ai
    actions: [reply]
    when: &angry {any: [{fact: ticket.tags, contains: angry}, {fact: ticket.body, matches: "(?i)furious"}]}
    effect: deny
handoff:
  - {id: angry, when: *angry}
"""
    report = policy.validate_source(source)
    assert report.ok, [str(p) for p in report.problems]
    assert report.ruleset is not None
    facts: dict[str, Any] = {**FACTS, "ticket": {"stage": "new", "body": "I am FURIOUS"}}
    for evaluator in (PolicyEngine(max_compiled=2), ReferenceEvaluator()):
        decision = evaluator.decide(report.ruleset, facts)
        assert decision.effect == "deny" and decision.deciding_rules == ("calm-ai",)
    # The same aliases over a tight budget: refused, at the alias that crosses it.
    tight = policy.validate_source(source, limits=RulesetLimits(max_yaml_nodes=40))
    assert _codes(tight) == [("E_YAML_TOO_MANY_NODES", 10)]


def test_recursive_alias_is_a_problem_not_a_recursion_error() -> None:
    report, elapsed, _ = _measured("ruleset: x\nstages: &s [new, *s]\n")
    assert [(p.code, p.line, p.col) for p in report.problems] == [("E_YAML_RECURSIVE_ALIAS", 2, 18)]
    assert elapsed < 0.25


@pytest.mark.parametrize(
    ("name", "source", "line"),
    [
        ("flow 3,000 deep", "ruleset: x\nstages: " + "[" * 3000 + "new" + "]" * 3000 + "\n", 2),
        (
            "2,000 nested not",
            "ruleset: x\nstages: [new]\nhandoff:\n  - id: h\n    when: "
            + "{not: " * 2000
            + "{fact: ticket.body, exists: true}"
            + "}" * 2000
            + "\n",
            5,
        ),
        (
            "block 60 deep",
            "ruleset: x\nstages: [new]\nextra:\n" + "".join("  " * i + f" k{i}:\n" for i in range(1, 60)),
            # Scalars count as a level: the mapping holding k49 is the 50th level, its key k49 the 51st.
            3 + 49,
        ),
    ],
)
def test_deep_nesting_is_a_problem_not_a_recursion_error(name: str, source: str, line: int) -> None:
    report, elapsed, _ = _measured(source)
    assert _codes(report) == [("E_YAML_TOO_DEEP", line)], name
    assert elapsed < 0.5, (name, elapsed)


def test_nesting_within_the_cap_validates_and_both_evaluators_agree() -> None:
    depth = 20
    when = "{not: " * depth + "{fact: ticket.body, matches: hello}" + "}" * depth
    source = f"ruleset: x\nstages: [new]\nhandoff:\n  - {{id: h, when: {when}}}\n"
    report = policy.validate_source(source)
    assert report.ruleset is not None, [str(p) for p in report.problems]
    # An even number of negations: the handoff fires exactly when the body matches.
    assert PolicyEngine(max_compiled=1).handoff(report.ruleset, FACTS) == ["h"]
    assert ReferenceEvaluator().handoff(report.ruleset, FACTS) == ["h"]


def test_a_long_flat_all_is_not_a_recursion_error() -> None:
    leaves = ", ".join(f"{{fact: order.total, gt: {i}}}" for i in range(1000))
    source = f"ruleset: x\nstages: [new]\npermissions:\n  - {{id: big, effect: allow, when: {{all: [{leaves}]}}}}\n"
    report = policy.validate_source(source)
    assert report.ruleset is not None, [str(p) for p in report.problems]
    for total, effect in ((5000, "allow"), (500, "deny")):
        facts = {**FACTS, "order": {"total": total}}
        assert PolicyEngine(max_compiled=1).decide(report.ruleset, facts).effect == effect
        assert ReferenceEvaluator().decide(report.ruleset, facts).effect == effect


def test_source_size_cap_names_the_line_that_crosses_it() -> None:
    source = "ruleset: x\nstages: [new]\n" + "".join(f"# comment line {i:04}\n" for i in range(100))
    limits = RulesetLimits(max_source_bytes=500)
    report = policy.validate_source(source, limits=limits)
    ((code, line),) = _codes(report)
    # 25 bytes of header, then 20-byte comment lines: the 501st byte is on the 24th comment line.
    assert (code, line) == ("E_SOURCE_TOO_LARGE", 2 + 24)
    assert policy.validate_source(source[:480], limits=limits).ok


def test_rule_count_cap_is_checked_before_the_rules_and_across_sections() -> None:
    rules = "".join(f"  - {{id: p{i}, effect: allow}}\n" for i in range(6))
    handoffs = "".join(f"  - {{id: h{i}, when: {{fact: ticket.body, exists: true}}}}\n" for i in range(5))
    source = f"ruleset: x\nstages: [new]\npermissions:\n{rules}handoff:\n{handoffs}"
    report = policy.validate_source(source, limits=RulesetLimits(max_rules=10))
    # The 11th rule is the 5th handoff rule: line 3 + 6 permissions + "handoff:" + 5.
    assert [(p.code, p.line, p.path) for p in report.problems] == [("E_TOO_MANY_RULES", 15, "handoff[4]")]
    assert policy.validate_source(source, limits=RulesetLimits(max_rules=11)).ok


def test_unreadable_scalars_are_problems_not_exceptions() -> None:
    source = "ruleset: x\nstages: [new]\ndescription: " + "9" * 5000 + "\n!!int nope: 1\n"
    codes = _codes(policy.validate_source(source))
    assert ("E_VALUE", 3) in codes and ("E_VALUE", 4) in codes


def test_load_ruleset_applies_the_limits() -> None:
    with pytest.raises(policy.RulesetInvalid) as raised:
        policy.load_ruleset(BILLION_LAUGHS)
    assert raised.value.report.problems[0].code == "E_YAML_TOO_MANY_NODES"
    with pytest.raises(ValueError, match="max_depth"):
        RulesetLimits(max_depth=0)


def test_characters_yaml_refuses_are_a_syntax_problem() -> None:
    assert _codes(policy.validate_source("ruleset: x\x00\x01\n")) == [("E_SYNTAX", 1)]
