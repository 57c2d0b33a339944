"""Pure-Python reference evaluator: the test oracle for the durable_rules path, and the trace's leaf values.

It reads the ruleset model directly (no compilation), so a bug in ``compile`` or ``engine`` shows up as a
disagreement in the differential tests. It is never used to take a decision in ``PolicyEngine``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policy.conditions import escalation_matches, holds, permission_matches
from policy.explain import decision_from_matches, escalations_from_matches, routing_from_matches
from policy.model import Decision, EscalationRule, RoutingDecision, Ruleset


class ReferenceEvaluator:
    """Same answers as PolicyEngine, computed directly in Python (slow; for tests and benchmarks)."""

    def matched_decide(self, ruleset: Ruleset, facts: Mapping[str, Any]) -> set[str]:
        matched = {r.id for r in ruleset.permissions if permission_matches(r, facts)}
        matched |= {r.id for r in ruleset.handoff if holds(r.when, facts)}
        return matched

    def decide(self, ruleset: Ruleset, facts: Mapping[str, Any], *, trace: bool = False) -> Decision:
        return decision_from_matches(ruleset, self.matched_decide(ruleset, facts), facts, trace=trace)

    def route(self, ruleset: Ruleset, facts: Mapping[str, Any], *, trace: bool = False) -> RoutingDecision:
        matched = {r.id for r in ruleset.routing if holds(r.when, facts)}
        return routing_from_matches(ruleset, matched, facts, trace=trace)

    def escalations_due(self, ruleset: Ruleset, facts: Mapping[str, Any]) -> list[EscalationRule]:
        matched = {r.id for r in ruleset.escalations if escalation_matches(r, facts)}
        return escalations_from_matches(ruleset, matched)

    def handoff(self, ruleset: Ruleset, facts: Mapping[str, Any]) -> list[str]:
        return [r.id for r in ruleset.handoff if holds(r.when, facts)]
