"""Backtest: replay recorded facts under a draft and the active ruleset and report what flips."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from policy.facts import kind, resolve
from policy.model import Decision, Ruleset, _json_safe

if TYPE_CHECKING:
    from policy.engine import PolicyEngine

SAMPLE_LIMIT = 10


@dataclass
class BacktestReport:
    draft_version: str
    active_version: str
    total: int = 0
    changed: int = 0
    by_action: dict[str, Counter[str]] = field(default_factory=dict)
    # Effect changes only ("allow->deny"): for each such key, the sum over ``by_action`` is the same count.
    transitions: Counter[str] = field(default_factory=Counter)
    rule_changes: Counter[str] = field(default_factory=Counter)  # same effect, other deciding rules
    refund_into_approval: float = 0.0
    refund_out_of_approval: float = 0.0
    refund_cases_changed_path: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "draft_version": self.draft_version,
            "active_version": self.active_version,
            "total": self.total,
            "changed": self.changed,
            "unchanged": self.total - self.changed,
            "effect_transitions": dict(sorted(self.transitions.items())),
            "same_effect_other_rules": dict(sorted(self.rule_changes.items())),
            "by_action": {a: dict(sorted(c.items())) for a, c in sorted(self.by_action.items())},
            "refund_amount_changing_approval_path": {
                "cases": self.refund_cases_changed_path,
                "into_approval": round(self.refund_into_approval, 2),
                "out_of_approval": round(self.refund_out_of_approval, 2),
                "total": round(self.refund_into_approval + self.refund_out_of_approval, 2),
            },
            "samples": self.samples,
        }


def case_facts(case: Mapping[str, Any]) -> Mapping[str, Any]:
    """A case is either the facts themselves or a record with a ``facts`` key."""
    inner = case.get("facts")
    return inner if isinstance(inner, Mapping) else case


def run_backtest(
    engine: PolicyEngine,
    draft: Ruleset,
    active: Ruleset,
    cases: Iterable[Mapping[str, Any]],
    *,
    draft_engine: PolicyEngine | None = None,
) -> BacktestReport:
    """``active`` is matched by ``engine``, ``draft`` by ``draft_engine`` (default: the same engine)."""
    report = BacktestReport(draft.version, active.version)
    facts_list = [case_facts(case) for case in cases]
    # One batched pass per ruleset: every case is still matched by durable_rules, twice.
    befores = engine.decide_many(active, facts_list)
    afters = (draft_engine or engine).decide_many(draft, facts_list)
    for index, (facts, before, after) in enumerate(zip(facts_list, befores, afters, strict=True)):
        report.total += 1
        action = str(resolve(facts, ("action", "type")) or "unknown")
        key = f"{before.effect}->{after.effect}"
        report.by_action.setdefault(action, Counter())[key] += 1
        if before.effect == after.effect:
            if before.deciding_rules == after.deciding_rules:
                continue
            report.rule_changes[before.effect] += 1  # the same effect, decided by other rules
        else:
            report.transitions[key] += 1
        report.changed += 1
        amount = resolve(facts, ("action", "amount"))
        if action == "refund" and kind(amount) == "n":
            was, now = before.effect == "require_approval", after.effect == "require_approval"
            if was != now:
                report.refund_cases_changed_path += 1
                if now:
                    report.refund_into_approval += float(amount)
                else:
                    report.refund_out_of_approval += float(amount)
        if len(report.samples) < SAMPLE_LIMIT:
            report.samples.append(_sample(index, facts, before, after))
    return report


def _sample(index: int, facts: Mapping[str, Any], before: Decision, after: Decision) -> dict[str, Any]:
    return {
        "case": index,
        "facts": _json_safe({**before.facts, **after.facts}),
        "active": {"effect": before.effect, "deciding_rules": list(before.deciding_rules)},
        "draft": {"effect": after.effect, "deciding_rules": list(after.deciding_rules)},
    }
