"""Merchant rulesets as config: load -> validate -> compile -> evaluate (durable_rules) -> explain.

The public facade; other packages import only these names.
"""

from __future__ import annotations

from pathlib import Path

from policy.backtest import BacktestReport
from policy.durations import format_duration, parse_duration
from policy.engine import EngineError, PolicyEngine
from policy.limits import RulesetLimits
from policy.model import (
    ACTIONS,
    ACTORS,
    EFFECTS,
    PRIORITIES,
    Action,
    Actor,
    Assign,
    Decision,
    Effect,
    EscalationRule,
    EscalationThen,
    HandoffRule,
    PermissionRule,
    Priority,
    Problem,
    RoutingDecision,
    RoutingRule,
    Ruleset,
    RulesetInvalid,
    RulesetTest,
    RulesetTestResult,
    Severity,
    SlaTarget,
    TicketSet,
    ValidationReport,
)
from policy.reference import ReferenceEvaluator
from policy.validate import validate_source

RULESETS_DIR = Path(__file__).resolve().parent.parent / "rulesets"


def load_ruleset(source: str, filename: str = "<ruleset>", limits: RulesetLimits | None = None) -> Ruleset:
    """Validate and build a ruleset; raises RulesetInvalid (with ``.report``) when it has errors."""
    report = validate_source(source, filename, limits)
    if report.ruleset is None:
        raise RulesetInvalid(report)
    return report.ruleset


def default_ruleset_path() -> Path:
    return RULESETS_DIR / "default.yaml"


def load_default_ruleset(path: Path | None = None) -> Ruleset:
    """The bundled ``rulesets/default.yaml`` (from the checkout this package is installed from)."""
    target = path or default_ruleset_path()
    return load_ruleset(target.read_text(encoding="utf-8"), str(target.name))


__all__ = [
    "ACTIONS",
    "ACTORS",
    "EFFECTS",
    "PRIORITIES",
    "RULESETS_DIR",
    "Action",
    "Actor",
    "Assign",
    "BacktestReport",
    "Decision",
    "Effect",
    "EngineError",
    "EscalationRule",
    "EscalationThen",
    "HandoffRule",
    "PermissionRule",
    "PolicyEngine",
    "Priority",
    "Problem",
    "ReferenceEvaluator",
    "RoutingDecision",
    "RoutingRule",
    "Ruleset",
    "RulesetInvalid",
    "RulesetLimits",
    "RulesetTest",
    "RulesetTestResult",
    "Severity",
    "SlaTarget",
    "TicketSet",
    "ValidationReport",
    "default_ruleset_path",
    "format_duration",
    "load_default_ruleset",
    "load_ruleset",
    "parse_duration",
    "validate_source",
]
