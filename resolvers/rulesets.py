"""Rulesets: the active one and its versions, validate, publish, activate (rollback), simulate, backtest.

Validating, testing, simulating, backtesting and publishing's checks are CPU-heavy: they run inside
``runner.heavy`` (a bounded number per merchant and per process) through ``runner.compute`` (a worker
process with a time limit, see ``runtime.workers``), never in the database threads; simulate and backtest
read what they need from the database first, in the merchant's ordinary read slot. Publish checks its source
before it opens the write transaction.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session
from strawberry.scalars import JSON

from resolvers import roles
from resolvers.runner import compute, heavy, mutate, query, read, read_as
from resolvers.snapshots import dump, load
from runtime import workers
from runtime.context import RequestContext
from schema.actions import Decision
from schema.common import UserError
from schema.enums import Stage
from schema.inputs import SimulationCaseInput
from schema.rulesets import (
    ActiveRuleset,
    BacktestPayload,
    RulesetProblem,
    RulesetVersion,
    RulesetVersionPayload,
    SimulatePayload,
    SimulationResult,
    StageEdges,
    TestRulesetPayload,
    ValidateRulesetPayload,
    problems_of,
    test_results_of,
)
from schema.tickets import Info
from storage import tables
from workflow.errors import DomainError, ErrorCode, invalid
from workflow.rulesets import versions as rulesets_service
from workflow.services import WorkflowServices
from workflow.tenancy.merchants import get_merchant
from workflow.tenancy.principal import Principal, Role


async def ruleset(info: Info) -> ActiveRuleset:
    ctx = info.context
    services = ctx.runtime.services

    def fetch(session: Session, principal: Principal) -> ActiveRuleset:
        active = rulesets_service.active_ruleset(session, services, principal.merchant_id)
        rs = active.ruleset
        if active.version is not None:
            row = rulesets_service.get_version(session, principal, active.version)
            source, digest, name = row.source, row.digest, row.name
        else:
            source, digest, name = str(getattr(rs, "source", "")), str(rs.digest), str(rs.name)
        return ActiveRuleset(
            version=active.version,
            name=name,
            digest=digest,
            source=source,
            message=active.message,
            created_at=active.created_at,
            transitions=[
                StageEdges(from_stage=Stage(k), to=[Stage(s) for s in v]) for k, v in rs.transitions.items()
            ],
        )

    return await query(ctx, roles.READERS, fetch)


async def ruleset_versions(info: Info) -> list[RulesetVersion]:
    def fetch(session: Session, principal: Principal) -> list[RulesetVersion]:
        active = get_merchant(session, principal.merchant_id).active_ruleset_version
        return [
            RulesetVersion.from_model(r, active) for r in rulesets_service.list_versions(session, principal)
        ]

    return await query(info.context, roles.READERS, fetch)


async def _team_names(ctx: RequestContext, allowed: frozenset[Role]) -> frozenset[str]:
    """The caller's merchant's team names, which validation checks routing and escalations against."""
    return await read_as(ctx, allowed, lambda s, p: rulesets_service.team_names(s, p.merchant_id))


async def validate_ruleset(info: Info, source: str) -> ValidateRulesetPayload:
    """Check a draft: YAML syntax, schema, references. Changes nothing."""
    ctx = info.context
    try:
        teams = await _team_names(ctx, roles.READERS)
        report = await heavy(ctx, roles.READERS, lambda _p: compute(ctx, workers.validate, source, teams))
    except DomainError as exc:
        return ValidateRulesetPayload(errors=[UserError.from_domain(exc)])
    problems = [RulesetProblem.from_any(p) for p in report.problems]
    warnings = [RulesetProblem.from_any(p) for p in getattr(report, "warnings", ())]
    errors = (
        []
        if report.ok
        else [
            UserError.from_domain(
                DomainError(
                    ErrorCode.INVALID_RULESET,
                    f"ruleset has {len(problems)} problem(s): {problems[0].message}",
                    "source",
                )
            )
        ]
    )
    return ValidateRulesetPayload(valid=bool(report.ok), problems=problems, warnings=warnings, errors=errors)


async def test_ruleset(info: Info, source: str) -> TestRulesetPayload:
    """Validate a draft and run the tests it carries, without publishing anything."""
    ctx = info.context
    try:
        results = await heavy(ctx, roles.READERS, lambda _p: compute(ctx, workers.run_tests, source))
    except DomainError as exc:
        return TestRulesetPayload(errors=[UserError.from_domain(exc)], problems=problems_of(exc.details))
    return TestRulesetPayload(passed=all(r.passed for r in results), results=test_results_of(results))


def _version_payload(
    snapshot: dict[str, Any] | None, error: DomainError | None, replayed: bool
) -> RulesetVersionPayload:
    if error is not None or snapshot is None:
        if error is None:
            return RulesetVersionPayload()
        return RulesetVersionPayload(
            errors=[UserError.from_domain(error)],
            problems=problems_of(error.details),
            test_failures=test_results_of(error.details),
        )
    row = load(tables.RulesetVersion, snapshot["version"])
    return RulesetVersionPayload(
        ruleset_version=RulesetVersion.from_model(row, snapshot["active"]) if row else None,
        replayed=replayed,
        warnings=[RulesetProblem.from_any(w) for w in snapshot.get("warnings", ())],
    )


async def publish_ruleset(
    info: Info, source: str, message: str = "", idempotency_key: str | None = None
) -> RulesetVersionPayload:
    """Validate, run the ruleset's own tests, then store and activate it in one transaction.

    The checks (validation, the ruleset's tests, its compile) run first in a heavy slot, outside the write
    transaction, so a large ruleset never holds the database writer (on SQLite, every merchant's writes)
    while it is checked; the transaction stores the ruleset checked there."""
    ctx = info.context
    try:
        teams = await _team_names(ctx, roles.ADMINS)
        checked = await heavy(ctx, roles.ADMINS, lambda _p: compute(ctx, workers.check, source, teams))
    except DomainError as exc:
        return _version_payload(None, exc, False)

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        published = rulesets_service.publish_ruleset_with_warnings(
            session, services, principal, source=source, message=message, checked=checked
        )
        row = published.row
        return {
            "version": dump(row),
            "active": row.version,
            "warnings": [w.to_dict() for w in published.warnings],
        }

    return _version_payload(
        *await mutate(
            info.context,
            roles.ADMINS,
            operation="publishRuleset",
            payload={"source": source, "message": message},
            idempotency_key=idempotency_key,
            work=work,
        )
    )


async def activate_ruleset_version(
    info: Info, version: int, idempotency_key: str | None = None
) -> RulesetVersionPayload:
    """Make an earlier (or later) published version the active one: a rollback."""

    def work(session: Session, services: WorkflowServices, principal: Principal) -> dict[str, Any]:
        row = rulesets_service.activate_version(session, services, principal, version=version)
        return {"version": dump(row), "active": row.version}

    return _version_payload(
        *await mutate(
            info.context,
            roles.ADMINS,
            operation="activateRulesetVersion",
            payload={"version": version},
            idempotency_key=idempotency_key,
            work=work,
        )
    )


def _case(index: int, case: SimulationCaseInput) -> rulesets_service.SimulationCase:
    if case.facts is not None and not isinstance(case.facts, dict):
        raise invalid("facts must be a JSON object", f"cases[{index}].facts")
    action: dict[str, Any] | None = None
    if case.action is not None:
        params = case.action.params
        if params is not None and not isinstance(params, dict):
            raise invalid("params must be a JSON object", f"cases[{index}].action.params")
        action = {**(params or {}), "type": case.action.type.value, "amount": case.action.amount}
        if case.action.actor is not None:
            action["actor"] = case.action.actor.value
    return rulesets_service.SimulationCase(
        facts=json.loads(json.dumps(case.facts)) if case.facts is not None else None,
        ticket_id=str(case.ticket_id) if case.ticket_id else None,
        action=action,
        now=case.now,
        label=case.label,
        timeline=[(entry.at, entry.stage.value) for entry in case.timeline] if case.timeline else None,
    )


async def simulate(
    info: Info, cases: list[SimulationCaseInput], source: str | None = None
) -> SimulatePayload:
    """Evaluate a draft (or the active ruleset) against facts or existing tickets, with traces. Changes nothing."""
    ctx = info.context
    services = ctx.runtime.services
    try:
        parsed = [_case(i, c) for i, c in enumerate(cases)]

        async def run(principal: Principal) -> list[rulesets_service.SimulationResult]:
            prepared = await read(
                ctx, lambda s: rulesets_service.prepare_simulation(s, services, principal, cases=parsed)
            )
            return await compute(ctx, workers.simulate, source, prepared)

        results = await heavy(ctx, roles.READERS, run)
    except DomainError as exc:
        return SimulatePayload(errors=[UserError.from_domain(exc)], problems=problems_of(exc.details))
    return SimulatePayload(
        results=[
            SimulationResult(
                label=r.label,
                facts=JSON(r.facts),
                draft=Decision.from_dict(r.draft) if r.draft else None,
                active=Decision.from_dict(r.active) if r.active else None,
                changed=r.changed,
                routing=JSON(r.routing) if r.routing is not None else None,
                escalations=JSON(r.escalations),
                planned_escalations=JSON(r.planned_escalations),
            )
            for r in results
        ]
    )


async def backtest(info: Info, source: str, limit: int = 1000) -> BacktestPayload:
    """Replay the facts of the merchant's recent decisions under the draft and the active version."""
    ctx = info.context
    services = ctx.runtime.services

    async def run(principal: Principal) -> dict[str, Any]:
        prepared = await read(
            ctx, lambda s: rulesets_service.prepare_backtest(s, services, principal, limit=limit)
        )
        return await compute(ctx, workers.backtest, source, prepared)

    try:
        report = await heavy(ctx, roles.READERS, run)
    except DomainError as exc:
        return BacktestPayload(errors=[UserError.from_domain(exc)], problems=problems_of(exc.details))
    return BacktestPayload(report=JSON(report))
