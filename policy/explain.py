"""From matched rule ids to decisions: effect resolution, handoff, a one-sentence explanation, and traces.

Shared by PolicyEngine (ids matched by durable_rules) and the reference evaluator (ids matched in Python),
so the two can only disagree about *which rules matched*, which is what the differential tests check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policy.conditions import condition_paths, leaf_result
from policy.facts import MISSING, resolve, subset
from policy.model import (
    AllOf,
    AnyOf,
    Condition,
    Decision,
    EscalationRule,
    HandoffRule,
    Leaf,
    NotOf,
    PermissionRule,
    RoutingDecision,
    RoutingRule,
    Ruleset,
    TicketSet,
)

_SCOPE_PATHS = (("action", "type"), ("action", "actor"), ("ticket", "stage"))


def decide_paths(ruleset: Ruleset) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = list(_SCOPE_PATHS)
    for rule in ruleset.permissions:
        paths += condition_paths(rule.when)
    for handoff in ruleset.handoff:
        paths += condition_paths(handoff.when)
    return paths


def route_paths(ruleset: Ruleset) -> list[tuple[str, ...]]:
    return [p for rule in ruleset.routing for p in condition_paths(rule.when)]


def decision_from_matches(
    ruleset: Ruleset,
    matched: set[str],
    facts: Mapping[str, Any],
    *,
    trace: bool = False,
    paths: list[tuple[str, ...]] | None = None,
) -> Decision:
    rules = [r for r in ruleset.permissions if r.id in matched]
    handoffs = [h for h in ruleset.handoff if h.id in matched]
    read = subset(facts, paths if paths is not None else decide_paths(ruleset))
    return decision_from_rules(ruleset, rules, handoffs, facts, read, matched if trace else None)


def decision_from_rules(
    ruleset: Ruleset,
    rules: list[PermissionRule],
    handoffs: list[HandoffRule],
    facts: Mapping[str, Any],
    read: Mapping[str, Any],
    trace_matched: set[str] | None = None,
) -> Decision:
    """The decision for matched ``rules`` and ``handoffs`` (each in ruleset order); ``read`` is the facts
    subset the ruleset read. A trace is built only when ``trace_matched`` (all matched ids) is given."""
    effect = ruleset.default_effect
    deciding: list[PermissionRule] = rules
    if len(rules) == 1:
        effect = rules[0].effect
    elif rules:  # the strongest effect among the matched rules decides: deny, then require_approval
        effects = {r.effect for r in rules}
        effect = (
            "deny" if "deny" in effects else "require_approval" if "require_approval" in effects else "allow"
        )
        deciding = [r for r in rules if r.effect == effect]
    approvers: list[str] = []
    if effect == "require_approval":
        approvers = [a for r in deciding for a in (r.approvers or ("agent",))]
    handoff = bool(handoffs) and resolve(facts, ("action", "actor")) == "ai"
    deciding_ids = [r.id for r in deciding]
    if handoff and effect == "allow":
        effect = "require_approval"
        deciding_ids = [h.id for h in handoffs]
        approvers = [a for h in handoffs for a in h.approvers]
    shown = handoffs if handoff else []
    return Decision.build(
        effect,
        tuple([r.id for r in rules]),
        tuple(deciding_ids),
        tuple(dict.fromkeys(approvers)),
        handoff,
        tuple([h.id for h in handoffs]) if handoff else (),
        ruleset.digest,
        read,
        trace_decide(ruleset, trace_matched, facts) if trace_matched is not None else None,
        lambda: _explain(effect, rules, deciding_ids, shown, approvers),
    )


def _explain(
    effect: str,
    rules: list[PermissionRule],
    deciding: list[str],
    handoffs: list[HandoffRule],
    approvers: list[str],
) -> str:
    who = f" (approvers: {', '.join(dict.fromkeys(approvers))})" if effect == "require_approval" else ""
    if handoffs and deciding == [h.id for h in handoffs]:
        reasons = "; ".join(f"{h.id}: {h.reason}" for h in handoffs)
        allowed = ", ".join(r.id for r in rules if r.effect == "allow")
        return (
            f"require_approval: the AI must hand this ticket to a human ({reasons}); "
            f"it would otherwise be allowed by {allowed}{who}"
        )
    if not deciding:
        return f"{effect}: no permission rule matched, so the default effect applies"
    others = [r.id for r in rules if r.id not in deciding]
    text = f"{effect} by {', '.join(deciding)}{who}"
    if others:
        text += f"; also matched: {', '.join(others)}"
    if handoffs:
        text += f"; handoff to a human flagged by {', '.join(h.id for h in handoffs)}"
    return text


def routing_from_matches(
    ruleset: Ruleset,
    matched: set[str],
    facts: Mapping[str, Any],
    *,
    trace: bool = False,
    paths: list[tuple[str, ...]] | None = None,
) -> RoutingDecision:
    rule: RoutingRule | None = next((r for r in ruleset.routing if r.id in matched), None)
    read = subset(facts, paths if paths is not None else route_paths(ruleset))
    return routing_from_rule(ruleset, rule, facts, read, matched if trace else None)


def routing_from_rule(
    ruleset: Ruleset,
    rule: RoutingRule | None,
    facts: Mapping[str, Any],
    read: dict[str, Any],
    trace_matched: set[str] | None = None,
) -> RoutingDecision:
    """The routing decision when ``rule`` is the first matching routing rule (None: nothing matched)."""
    tr = trace_rules("routing", ruleset.routing, trace_matched, facts) if trace_matched is not None else None
    if rule is None:
        return RoutingDecision(
            None, None, None, (), TicketSet(), "no routing rule matched", ruleset.digest, read, tr
        )
    assign = rule.assign
    text = f"routed by {rule.id}"
    if assign is not None:
        text += f" to team {assign.team} ({assign.strategy})"
    updates = rule.set.to_dict()
    if updates:
        text += f", setting {', '.join(f'{k}={v}' for k, v in updates.items())}"
    return RoutingDecision(
        rule_id=rule.id,
        team=assign.team if assign else None,
        strategy=assign.strategy if assign else None,
        skills=assign.skills if assign else (),
        set=rule.set,
        explanation=text,
        ruleset_digest=ruleset.digest,
        facts=read,
        trace=tr,
    )


def escalations_from_matches(ruleset: Ruleset, matched: set[str]) -> list[EscalationRule]:
    return [r for r in ruleset.escalations if r.id in matched]


# -- traces ----------------------------------------------------------------------------------------------


def trace_decide(ruleset: Ruleset, matched: set[str], facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    return trace_rules("permissions", ruleset.permissions, matched, facts) + trace_rules(
        "handoff", ruleset.handoff, matched, facts
    )


def trace_rules(
    section: str,
    rules: tuple[PermissionRule, ...] | tuple[HandoffRule, ...] | tuple[RoutingRule, ...],
    matched: set[str],
    facts: Mapping[str, Any],
) -> list[dict[str, Any]]:
    out = []
    for rule in rules:
        entry: dict[str, Any] = {"section": section, "rule": rule.id, "matched": rule.id in matched}
        if isinstance(rule, PermissionRule):
            entry["effect"] = rule.effect
            entry["scope"] = [
                _scope_entry(name, values, facts, path)
                for name, values, path in (
                    ("actions", rule.actions, ("action", "type")),
                    ("actors", rule.actors, ("action", "actor")),
                    ("stages", rule.stages, ("ticket", "stage")),
                )
                if values is not None
            ]
        entry["conditions"] = _trace_condition(rule.when, facts) if rule.when is not None else None
        out.append(entry)
    return out


def _scope_entry(
    name: str, values: tuple[str, ...], facts: Mapping[str, Any], path: tuple[str, ...]
) -> dict[str, Any]:
    actual = resolve(facts, path)
    entry: dict[str, Any] = {"scope": name, "fact": ".".join(path), "in": list(values)}
    if actual is MISSING:
        entry.update(missing=True, result=False)
    else:
        entry.update(value=actual, result=actual in values)
    return entry


def _trace_condition(cond: Condition, facts: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(cond, Leaf):
        result, actual = leaf_result(cond, facts)
        entry: dict[str, Any] = {"path": cond.path, "fact": cond.fact, "op": cond.op, "expected": cond.value}
        if actual is MISSING:
            entry["missing"] = True
        else:
            entry["value"] = actual
        entry["result"] = result
        return entry
    if isinstance(cond, NotOf):
        inner = _trace_condition(cond.item, facts)
        return {"path": cond.path, "not": inner, "result": not inner["result"]}
    items = [_trace_condition(c, facts) for c in cond.items]
    if isinstance(cond, AllOf):
        return {"path": cond.path, "all": items, "result": all(i["result"] for i in items)}
    assert isinstance(cond, AnyOf)
    return {"path": cond.path, "any": items, "result": any(i["result"] for i in items)}
