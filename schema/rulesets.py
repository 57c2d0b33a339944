"""Rulesets: versions, validation problems, test failures, simulation and backtest results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from schema.actions import Decision
from schema.enums import Severity, Stage
from schema.payloads import Payload
from storage import tables


@strawberry.type
class StageEdges:
    from_stage: Stage
    to: list[Stage]


@strawberry.type(description="A published ruleset version.")
class RulesetVersion:
    version: int
    name: str
    digest: str
    message: str
    source: str
    created_at: datetime
    active: bool

    @classmethod
    def from_model(cls, row: tables.RulesetVersion, active_version: int | None) -> RulesetVersion:
        return cls(
            version=row.version,
            name=row.name,
            digest=row.digest,
            message=row.message,
            source=row.source,
            created_at=row.created_at,
            active=row.version == active_version,
        )


@strawberry.type(description="The ruleset in force. `version` is null while the built-in default applies.")
class ActiveRuleset:
    version: int | None
    name: str
    digest: str
    source: str
    message: str
    created_at: datetime | None
    transitions: list[StageEdges]


@strawberry.type(description="A problem (or warning) found in a ruleset source, with its location.")
class RulesetProblem:
    message: str
    code: str | None = None
    path: str | None = None
    line: int | None = None
    col: int | None = None
    severity: Severity | None = None

    @classmethod
    def from_any(cls, problem: Any) -> RulesetProblem:
        """From a ``policy.Problem`` or its ``to_dict()`` form (as stored for an idempotent replay)."""

        def get(name: str) -> Any:
            return problem.get(name) if isinstance(problem, dict) else getattr(problem, name, None)

        def opt_str(name: str) -> str | None:
            value = get(name)
            return None if value is None else str(value)

        def opt_int(name: str) -> int | None:
            value = get(name)
            return value if isinstance(value, int) else None

        return cls(
            message=str(get("message") or problem),
            code=opt_str("code"),
            path=opt_str("path"),
            line=opt_int("line"),
            col=opt_int("col"),
            severity=Severity(severity) if (severity := opt_str("severity")) else None,
        )


@strawberry.type
class RulesetTestResult:
    name: str
    passed: bool
    message: str


@strawberry.type
class ValidateRulesetPayload(Payload):
    valid: bool = False
    problems: list[RulesetProblem] = strawberry.field(default_factory=list)
    warnings: list[RulesetProblem] = strawberry.field(default_factory=list)


@strawberry.type
class TestRulesetPayload(Payload):
    passed: bool = False
    results: list[RulesetTestResult] = strawberry.field(default_factory=list)
    problems: list[RulesetProblem] = strawberry.field(default_factory=list)


@strawberry.type
class RulesetVersionPayload(Payload):
    ruleset_version: RulesetVersion | None = None
    problems: list[RulesetProblem] = strawberry.field(default_factory=list)
    test_failures: list[RulesetTestResult] = strawberry.field(default_factory=list)
    warnings: list[RulesetProblem] = strawberry.field(
        default_factory=list,
        description="What publishing found worth a look but did not refuse, in file order: lint warnings "
        "and W_UNKNOWN_TEAM for each routing rule or escalation naming a team the merchant does not have.",
    )


@strawberry.type
class SimulationResult:
    label: str
    facts: JSON
    draft: Decision | None = strawberry.field(
        description="The draft's decision, when the case has an action."
    )
    active: Decision | None = strawberry.field(
        description="The active ruleset's decision for the same facts."
    )
    changed: bool
    routing: JSON | None
    escalations: JSON = strawberry.field(description="Escalation rules due at the case's `now`.")
    planned_escalations: JSON = strawberry.field(
        description="On the virtual clock: every escalation that would fire over the stage history, up to 7 days after `now`."
    )


@strawberry.type
class SimulatePayload(Payload):
    results: list[SimulationResult] = strawberry.field(default_factory=list)
    problems: list[RulesetProblem] = strawberry.field(default_factory=list)


@strawberry.type
class BacktestPayload(Payload):
    report: JSON | None = None
    problems: list[RulesetProblem] = strawberry.field(default_factory=list)


def problems_of(error_details: Any) -> list[RulesetProblem]:
    problems = getattr(error_details, "problems", None)
    return [RulesetProblem.from_any(p) for p in problems or []]


def test_results_of(results: Any) -> list[RulesetTestResult]:
    if not isinstance(results, list | tuple):
        return []
    return [
        RulesetTestResult(
            name=str(getattr(t, "name", "")),
            passed=bool(getattr(t, "passed", False)),
            message=str(getattr(t, "message", "")),
        )
        for t in results
    ]
