"""Data-driven cases: each ``cases/*.yaml`` is one ruleset (inline or bundled), one set of facts and the answer.

A case file holds ``note`` (what it shows), the ruleset as ``ruleset: |`` source or ``bundled: <name>``
(a file in ``rulesets/``), and either ``facts`` with ``want`` (decision keys ``effect``, ``matched_rules``,
``deciding_rules``, ``handoff``, ``approvers``; ``route``/``team``/``set`` for routing; ``escalations`` for
the escalations due) or ``want_error_code`` with an optional ``want_error_at: {line, col, path}``.
``want_warning_code`` (optional ``want_warning_at``) asks for a warning on a ruleset that still loads; it
goes alone or with ``facts``/``want``. ``want_message`` is a text the wanted error's or warning's message
holds; ``known_teams`` is the merchant's team names handed to validation (W_UNKNOWN_TEAM); ``want_no_warnings``
says the ruleset validates without any warning.
Each decision case is checked on durable_rules (PolicyEngine) and on the reference evaluator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import policy
from policy import PolicyEngine, ReferenceEvaluator

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))
CASE_KEYS = {
    "note",
    "ruleset",
    "bundled",
    "facts",
    "want",
    "want_error_code",
    "want_error_at",
    "want_warning_code",
    "want_warning_at",
    "want_message",
    "want_no_warnings",
    "known_teams",
}
DECISION_KEYS = {"effect", "matched_rules", "deciding_rules", "handoff", "approvers"}
ROUTING_KEYS = {"route", "team", "set"}
WANT_KEYS = DECISION_KEYS | ROUTING_KEYS | {"escalations"}


def _read(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(case, dict), f"{path.name}: a case is a mapping"
    assert set(case) <= CASE_KEYS, f"{path.name}: unknown keys {sorted(set(case) - CASE_KEYS)}"
    assert isinstance(case.get("note"), str) and case["note"].strip(), f"{path.name}: say what the case shows"
    assert ("ruleset" in case) != ("bundled" in case), f"{path.name}: give 'ruleset' or 'bundled'"
    outcomes = [
        key for key in ("want", "want_error_code", "want_warning_code", "want_no_warnings") if key in case
    ]
    assert outcomes, f"{path.name}: give 'want', 'want_error_code', 'want_warning_code' or 'want_no_warnings'"
    assert "want_error_code" not in case or outcomes == ["want_error_code"], (
        f"{path.name}: a rejected ruleset has no decision or warnings to check"
    )
    assert not ("want_warning_code" in case and "want_no_warnings" in case), f"{path.name}: contradiction"
    if "want" in case:
        want = case["want"]
        assert isinstance(want, dict) and want, f"{path.name}: 'want' must check something"
        assert set(want) <= WANT_KEYS, f"{path.name}: unknown want keys {sorted(set(want) - WANT_KEYS)}"
        assert isinstance(case.get("facts"), dict), f"{path.name}: a decision case needs 'facts'"
    return case


def _source(case: dict[str, Any]) -> tuple[str, str]:
    if "bundled" in case:
        path = policy.RULESETS_DIR / f"{case['bundled']}.yaml"
        return path.read_text(encoding="utf-8"), path.name
    return str(case["ruleset"]), "case.yaml"


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(max_compiled=8)


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case(path: Path, engine: PolicyEngine) -> None:
    case = _read(path)
    source, filename = _source(case)
    teams = frozenset(case["known_teams"]) if "known_teams" in case else None
    report = policy.validate_source(source, filename, known_teams=teams)
    if "want_error_code" in case:
        _check(report.problems, case, case["want_error_code"], case.get("want_error_at"))
        assert report.ruleset is None, "a ruleset with errors must not be built"
        return
    assert report.ok, [str(p) for p in report.problems]
    assert report.ruleset is not None
    if "want_warning_code" in case:
        _check(report.warnings, case, case["want_warning_code"], case.get("want_warning_at"))
    if case.get("want_no_warnings"):
        assert report.warnings == (), [str(w) for w in report.warnings]
    if "want" not in case:
        return
    ruleset, facts, want = report.ruleset, case["facts"], case["want"]
    for name, evaluator in (("durable_rules", engine), ("reference", ReferenceEvaluator())):
        got: dict[str, Any] = {}
        if want.keys() & DECISION_KEYS:
            decision = evaluator.decide(ruleset, facts)
            got.update(
                effect=decision.effect,
                matched_rules=list(decision.matched_rules),
                deciding_rules=list(decision.deciding_rules),
                handoff=decision.handoff,
                approvers=list(decision.approvers),
            )
        if want.keys() & ROUTING_KEYS:
            routing = evaluator.route(ruleset, facts)
            got.update(route=routing.rule_id, team=routing.team, set=routing.set.to_dict())
        if "escalations" in want:
            got["escalations"] = [rule.id for rule in evaluator.escalations_due(ruleset, facts)]
        assert {key: got[key] for key in want} == want, f"{name}: {case['note']}"


def _check(
    problems: tuple[policy.Problem, ...], case: dict[str, Any], code: str, where: dict[str, Any] | None
) -> None:
    found = [p for p in problems if p.code == code]
    assert found, f"no {code} among {[str(p) for p in problems]}"
    if where is not None:
        positions = [{key: getattr(p, key) for key in where} for p in found]
        assert where in positions, f"{code} reported at {positions}, wanted {where}"
        found = [p for p in found if {key: getattr(p, key) for key in where} == where]
    if "want_message" in case:
        assert any(case["want_message"] in p.message for p in found), [p.message for p in found]
