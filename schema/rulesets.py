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


@strawberry.type(description="The stages a ticket may move to from one stage.")
class StageEdges:
    from_stage: Stage = strawberry.field(description="The stage.")
    to: list[Stage] = strawberry.field(description="The stages reachable from it in one move.")


@strawberry.type(description="A published ruleset version.")
class RulesetVersion:
    version: int = strawberry.field(description="The version number, counting from 1 per merchant.")
    name: str = strawberry.field(description="The ruleset's name.")
    digest: str = strawberry.field(description="SHA-256 of the source.")
    message: str = strawberry.field(description="The publish message.")
    source: str = strawberry.field(description="The YAML source.")
    created_at: datetime = strawberry.field(description="When it was published.")
    active: bool = strawberry.field(description="Whether this is the version in force.")

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
    version: int | None = strawberry.field(
        description="The published version (null: the bundled default ruleset)."
    )
    name: str = strawberry.field(description="The ruleset's name.")
    digest: str = strawberry.field(description="SHA-256 of the source.")
    source: str = strawberry.field(description="The YAML source.")
    message: str = strawberry.field(description="The publish message.")
    created_at: datetime | None = strawberry.field(description="When the version was published.")
    transitions: list[StageEdges] = strawberry.field(
        description="The stage graph: where a ticket may go from each stage."
    )


@strawberry.type(description="A problem (or warning) found in a ruleset source, with its location.")
class RulesetProblem:
    message: str = strawberry.field(description="What is wrong, in words.")
    code: str | None = strawberry.field(
        default=None, description="The problem's code (E_… errors, W_… warnings)."
    )
    path: str | None = strawberry.field(
        default=None, description="Where in the document (e.g. routing[2].when)."
    )
    line: int | None = strawberry.field(default=None, description="The source line, from 1.")
    col: int | None = strawberry.field(default=None, description="The source column, from 1.")
    severity: Severity | None = strawberry.field(default=None, description="ERROR or WARNING.")

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


@strawberry.type(description="The result of one of a ruleset's own tests.")
class RulesetTestResult:
    name: str = strawberry.field(description="The test's name.")
    passed: bool = strawberry.field(description="Whether it passed.")
    message: str = strawberry.field(description="What was expected and what happened.")


@strawberry.type(description="The result of validating a ruleset source.")
class ValidateRulesetPayload(Payload):
    valid: bool = strawberry.field(default=False, description="Whether it has no errors (warnings allowed).")
    problems: list[RulesetProblem] = strawberry.field(
        default_factory=list, description="Errors, in file order."
    )
    warnings: list[RulesetProblem] = strawberry.field(
        default_factory=list, description="Warnings, in file order."
    )


@strawberry.type(description="The ruleset's own tests, run.")
class TestRulesetPayload(Payload):
    passed: bool = strawberry.field(default=False, description="Whether every test passed.")
    results: list[RulesetTestResult] = strawberry.field(
        default_factory=list, description="One result per test."
    )
    problems: list[RulesetProblem] = strawberry.field(
        default_factory=list, description="Validation problems that stopped the tests."
    )


@strawberry.type(description="The published or activated version (or why not).")
class RulesetVersionPayload(Payload):
    ruleset_version: RulesetVersion | None = strawberry.field(
        default=None, description="The version (null when refused)."
    )
    problems: list[RulesetProblem] = strawberry.field(
        default_factory=list, description="Validation problems that stopped publishing."
    )
    test_failures: list[RulesetTestResult] = strawberry.field(
        default_factory=list, description="The ruleset's own tests that failed."
    )
    warnings: list[RulesetProblem] = strawberry.field(
        default_factory=list,
        description="What publishing found worth a look but did not refuse, in file order: lint warnings "
        "and W_UNKNOWN_TEAM for each routing rule or escalation naming a team the merchant does not have.",
    )


@strawberry.type(description="One case: the facts evaluated and both rulesets' answers.")
class SimulationResult:
    label: str = strawberry.field(description="The case's label.")
    facts: JSON = strawberry.field(description="The facts the rules saw.")
    draft: Decision | None = strawberry.field(
        description="The draft's decision, when the case has an action."
    )
    active: Decision | None = strawberry.field(
        description="The active ruleset's decision for the same facts."
    )
    changed: bool = strawberry.field(description="Whether the draft's answer differs from the active one's.")
    routing: JSON | None = strawberry.field(description="The draft's routing of the case.")
    escalations: JSON = strawberry.field(description="Escalation rules due at the case's `now`.")
    planned_escalations: JSON = strawberry.field(
        description="On the virtual clock: every escalation that would fire over the stage history, up to 7 days after `now`."
    )


@strawberry.type(description="Each case evaluated against the draft and the active ruleset.")
class SimulatePayload(Payload):
    results: list[SimulationResult] = strawberry.field(
        default_factory=list, description="One result per case, in order."
    )
    problems: list[RulesetProblem] = strawberry.field(
        default_factory=list, description="Validation problems of the draft."
    )


@strawberry.type(description="What a draft ruleset would have changed over recent tickets.")
class BacktestPayload(Payload):
    report: JSON | None = strawberry.field(
        default=None, description="The comparison: decisions and routings that differ, with examples."
    )
    problems: list[RulesetProblem] = strawberry.field(
        default_factory=list, description="Validation problems of the draft."
    )


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
