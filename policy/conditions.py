"""Condition semantics in plain Python: one leaf, a condition tree, a rule's scope.

Used by the reference evaluator (the oracle) and by traces (each leaf's value and result); decisions in
``PolicyEngine`` are matched by durable_rules, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policy.facts import MISSING, contains, kind, matches, resolve, scalar_equal
from policy.model import AllOf, AnyOf, Condition, EscalationRule, Leaf, NotOf, PermissionRule


def leaf_result(leaf: Leaf, facts: Mapping[str, Any]) -> tuple[bool, Any]:
    """(result, actual value or MISSING) of one leaf; a missing fact is false except for ``exists: false``."""
    actual = resolve(facts, leaf.fact_path)
    op, value = leaf.op, leaf.value
    if op == "exists":
        return (actual is not MISSING) == bool(value), actual
    if actual is MISSING:
        return False, actual
    if op == "eq":
        return scalar_equal(actual, value), actual
    if op == "ne":
        return not scalar_equal(actual, value), actual
    if op == "in":
        return any(scalar_equal(actual, v) for v in value), actual
    if op == "not_in":
        return not any(scalar_equal(actual, v) for v in value), actual
    if op in ("lt", "lte", "gt", "gte"):
        if kind(actual) != "n":
            return False, actual
        a, b = float(actual), float(value)
        return {"lt": a < b, "lte": a <= b, "gt": a > b, "gte": a >= b}[op], actual
    if op == "contains":
        return contains(actual, value), actual
    if op == "matches":
        if leaf.regex is None:
            raise ValueError(f"matches leaf at {leaf.path or leaf.fact} has no compiled pattern")
        return matches(actual, leaf.regex), actual
    raise ValueError(f"unknown operator {op!r}")


def holds(cond: Condition | None, facts: Mapping[str, Any]) -> bool:
    if cond is None:
        return True
    if isinstance(cond, Leaf):
        return leaf_result(cond, facts)[0]
    if isinstance(cond, NotOf):
        return not holds(cond.item, facts)
    if isinstance(cond, AllOf):
        return all(holds(c, facts) for c in cond.items)
    if isinstance(cond, AnyOf):
        return any(holds(c, facts) for c in cond.items)
    raise TypeError(f"not a condition: {cond!r}")


def _in(values: tuple[str, ...] | None, facts: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    if values is None:
        return True
    actual = resolve(facts, path)
    return any(scalar_equal(actual, v) for v in values)


def permission_matches(rule: PermissionRule, facts: Mapping[str, Any]) -> bool:
    return (
        _in(rule.actions, facts, ("action", "type"))
        and _in(rule.actors, facts, ("action", "actor"))
        and _in(rule.stages, facts, ("ticket", "stage"))
        and holds(rule.when, facts)
    )


def escalation_matches(rule: EscalationRule, facts: Mapping[str, Any]) -> bool:
    waited = resolve(facts, ("ticket", "seconds_in_stage"))
    return (
        _in(rule.stages, facts, ("ticket", "stage"))
        and kind(waited) == "n"
        and float(waited) >= rule.after.total_seconds()
        and holds(rule.when, facts)
    )


def condition_paths(cond: Condition | None) -> list[tuple[str, ...]]:
    if cond is None:
        return []
    if isinstance(cond, Leaf):
        return [cond.fact_path]
    if isinstance(cond, NotOf):
        return condition_paths(cond.item)
    return [p for item in cond.items for p in condition_paths(item)]
