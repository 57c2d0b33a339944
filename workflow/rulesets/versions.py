"""A merchant's ruleset versions: the active one, publishing (validate + tests, then one atomic switch),
rollback, simulation of a draft against facts or existing tickets, and backtests over recorded decisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func
from sqlmodel import Session, col, select

import policy
from policy import Ruleset
from storage.tables import Merchant, RulesetVersion, StageTransition, Team, Ticket
from workflow import audit
from workflow.errors import DomainError, ErrorCode, invalid, not_found
from workflow.rulesets.timeline import StageEntry, escalation_timeline
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.facts import stored_ticket_facts, with_action

if TYPE_CHECKING:  # not imported at run time: the API's ruleset worker processes import this module, and the
    # services would load the classifier (LightGBM, ~140 MB) into each of them for nothing
    from workflow.services import WorkflowServices


@dataclass(frozen=True)
class CheckedSource:
    """What publishing keeps of a source already checked (validated, tests passed) before its transaction,
    with the warnings validation had for it (teams the merchant lacks, lint)."""

    name: str
    digest: str
    warnings: tuple[policy.Problem, ...] = ()


@dataclass(frozen=True)
class ActiveRuleset:
    version: int | None  # None: the bundled default, nothing published yet
    ruleset: Ruleset
    created_at: datetime | None = None
    message: str = ""


@cache
def _active_version() -> Any:
    """The active version's number, digest and metadata (built once: this runs for every ticket)."""
    return (
        select(
            Merchant.active_ruleset_version,
            RulesetVersion.digest,
            RulesetVersion.created_at,
            RulesetVersion.message,
        )
        .select_from(Merchant)
        .outerjoin(
            RulesetVersion,
            and_(
                col(RulesetVersion.merchant_id) == Merchant.id,
                col(RulesetVersion.version) == Merchant.active_ruleset_version,
            ),
        )
        .where(Merchant.id == bindparam("merchant_id"))
    )


def active_ruleset(session: Session, services: WorkflowServices, merchant_id: str) -> ActiveRuleset:
    """The merchant's active ruleset: one small query on the hot path (the parsed ruleset is cached by digest;
    the source is read only when this process has not parsed that version yet)."""
    found = session.exec(_active_version(), params={"merchant_id": merchant_id}).first()
    if found is None:
        raise not_found("merchant")
    version, digest, created_at, message = found
    if version is None:
        return ActiveRuleset(version=None, ruleset=services.rulesets.default())
    if digest is None:
        raise not_found(f"ruleset version {version}", "version")
    ruleset = services.rulesets.cached(digest)
    if ruleset is None:
        ruleset = _stored(services, digest, _version_row(session, merchant_id, version).source, version)
    return ActiveRuleset(version=version, ruleset=ruleset, created_at=created_at, message=message)


def _stored(services: WorkflowServices, digest: str, source: str, version: int) -> Ruleset:
    """A stored version, parsed. One published before today's limits or regex dialect (RE2: no lookaround
    or backreferences) may no longer validate: that is a coded error naming the first problem, not a 500."""
    try:
        return services.rulesets.get(digest, source)
    except policy.RulesetInvalid as exc:
        problems = exc.report.problems
        raise DomainError(
            ErrorCode.INVALID_RULESET,
            f"ruleset version {version} no longer validates ({problems[0] if problems else 'invalid'}); "
            "publish a corrected version or activate another one",
            "version",
            details=exc.report,
        ) from None


def _version_row(session: Session, merchant_id: str, version: int) -> RulesetVersion:
    row = session.exec(
        select(RulesetVersion).where(
            RulesetVersion.merchant_id == merchant_id, RulesetVersion.version == version
        )
    ).first()
    if row is None:
        raise not_found(f"ruleset version {version}", "version")
    return row


def team_names(session: Session, merchant_id: str) -> frozenset[str]:
    """The merchant's team names: what routing and escalations may name (W_UNKNOWN_TEAM otherwise)."""
    return frozenset(session.exec(select(Team.name).where(Team.merchant_id == merchant_id)).all())


def validate(
    source: str, *, limits: policy.RulesetLimits, known_teams: frozenset[str] | None = None
) -> policy.ValidationReport:
    """Every problem of ``source``, limits included (``policy.RulesetLimits``: size, YAML nodes and depth,
    rule count, regex budget), each a coded problem at its line; with ``known_teams`` also a warning for
    each team the rules name that is not among them."""
    return policy.validate_source(source, limits=limits, known_teams=known_teams)


def load_checked(services: WorkflowServices, source: str, *, run_tests: bool) -> Ruleset:
    """Parse and validate ``source``; with ``run_tests`` also run its tests. Raises a DomainError otherwise."""
    return check_source(services.policy, source, limits=services.rulesets.limits, run_tests=run_tests)[0]


def check_source(
    engine: policy.PolicyEngine,
    source: str,
    *,
    limits: policy.RulesetLimits,
    run_tests: bool,
    known_teams: frozenset[str] | None = None,
) -> tuple[Ruleset, policy.ValidationReport]:
    """:func:`load_checked` with only what it needs (the API's worker processes have no other services),
    answering the validation report (its warnings) too.

    The tests run in the engine's drafts cache: a ruleset that is not active yet never evicts an active
    version (a publish that succeeds is taken over by the active cache on its first decision)."""
    report = validate(source, limits=limits, known_teams=known_teams)
    if report.ruleset is None:
        raise DomainError(
            ErrorCode.INVALID_RULESET,
            f"ruleset has {len(report.problems)} problem(s): {report.problems[0]}",
            "source",
            details=report,
        )
    ruleset = report.ruleset
    if run_tests:
        failed = [t for t in engine.drafts.run_tests(ruleset) if not t.passed]
        if failed:
            raise DomainError(
                ErrorCode.RULESET_TESTS_FAILED,
                f"{len(failed)} ruleset test(s) failed: {failed[0].name}: {failed[0].message}",
                "source",
                details=failed,
            )
    return ruleset, report


def _lock_merchant(session: Session, merchant_id: str) -> Merchant:
    # FOR UPDATE serializes publishes per merchant on PostgreSQL; SQLite's BEGIN IMMEDIATE already does.
    merchant = session.exec(select(Merchant).where(Merchant.id == merchant_id).with_for_update()).first()
    if merchant is None:
        raise not_found("merchant")
    return merchant


@dataclass(frozen=True)
class Published:
    """A published version and the warnings its source has for this merchant (teams it lacks and lint)."""

    row: RulesetVersion
    warnings: tuple[policy.Problem, ...]


def publish_ruleset(
    session: Session, services: WorkflowServices, principal: Principal, *, source: str, message: str = ""
) -> RulesetVersion:
    """:func:`publish_ruleset_with_warnings`, answering the stored version only."""
    return publish_ruleset_with_warnings(session, services, principal, source=source, message=message).row


def publish_ruleset_with_warnings(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    source: str,
    message: str = "",
    checked: CheckedSource | None = None,
) -> Published:
    """Store ``source`` as the merchant's next version and activate it. ``checked``: the name, digest and
    warnings of this very source after ``check_source(..., run_tests=True)`` passed before the transaction
    (the API checks first, so the checks never hold the writer); without it the checks run here. Warnings
    do not stop a publish: a routing rule or escalation naming a team the merchant does not have publishes,
    with W_UNKNOWN_TEAM naming it."""
    principal.require(Role.ADMIN)
    if len(message) > 2000:
        raise invalid("message must be at most 2000 characters", "message")
    if checked is None:
        teams = team_names(session, principal.merchant_id)
        ruleset, report = check_source(
            services.policy, source, limits=services.rulesets.limits, run_tests=True, known_teams=teams
        )
        checked = CheckedSource(name=ruleset.name, digest=ruleset.digest, warnings=report.warnings)
    merchant = _lock_merchant(session, principal.merchant_id)
    latest = session.exec(
        select(func.max(RulesetVersion.version)).where(RulesetVersion.merchant_id == principal.merchant_id)
    ).one()
    previous = merchant.active_ruleset_version
    row = RulesetVersion(
        merchant_id=principal.merchant_id,
        version=int(latest or 0) + 1,
        name=checked.name,
        source=source,
        digest=checked.digest,
        message=message,
        created_by_key_id=principal.key_id,
    )
    session.add(row)
    merchant.active_ruleset_version = row.version
    session.add(merchant)
    session.flush()
    audit.record(
        session,
        principal,
        kind="ruleset.published",
        before={"version": previous},
        after={"version": row.version, "digest": row.digest, "message": message},
        ruleset_version=row.version,
    )
    return Published(row, checked.warnings)


def activate_version(
    session: Session, services: WorkflowServices, principal: Principal, *, version: int
) -> RulesetVersion:
    principal.require(Role.ADMIN)
    merchant = _lock_merchant(session, principal.merchant_id)
    row = _version_row(session, principal.merchant_id, version)
    _stored(services, row.digest, row.source, row.version)  # refuse to activate what no longer validates
    previous = merchant.active_ruleset_version
    merchant.active_ruleset_version = row.version
    session.add(merchant)
    audit.record(
        session,
        principal,
        kind="ruleset.activated",
        before={"version": previous},
        after={"version": row.version},
        ruleset_version=row.version,
    )
    return row


def list_versions(session: Session, principal: Principal) -> list[RulesetVersion]:
    return list(
        session.exec(
            select(RulesetVersion)
            .where(RulesetVersion.merchant_id == principal.merchant_id)
            .order_by(col(RulesetVersion.version).desc())
        )
    )


def get_version(session: Session, principal: Principal, version: int) -> RulesetVersion:
    return _version_row(session, principal.merchant_id, version)


@dataclass(frozen=True)
class SimulationCase:
    facts: dict[str, Any] | None = None
    ticket_id: str | None = None
    action: dict[str, Any] | None = None
    now: datetime | None = None
    label: str | None = None
    # (entered_at, stage) pairs, oldest first; for a ticket case the ticket's own history is used when omitted
    timeline: list[tuple[datetime, str]] | None = None


@dataclass
class SimulationResult:
    label: str
    facts: dict[str, Any]
    draft: dict[str, Any]
    active: dict[str, Any]
    changed: bool
    routing: dict[str, Any] | None = None
    escalations: list[dict[str, Any]] = field(default_factory=list)
    planned_escalations: list[dict[str, Any]] = field(default_factory=list)


MAX_SIMULATION_CASES = 200
PLANNING_HORIZON = timedelta(days=7)


@dataclass(frozen=True)
class PreparedCase:
    """One simulation case with everything read from the database: what the evaluation needs, no session."""

    label: str
    facts: dict[str, Any]
    history: list[tuple[datetime, str]]
    now: datetime


@dataclass(frozen=True)
class PreparedSimulation:
    """The database half of a simulation; :func:`evaluate_simulation` is the CPU half (it may run in
    another process: everything here is plain data)."""

    active_digest: str
    active_source: str
    cases: list[PreparedCase]
    default_actor: str | None  # the actor an action case acts as when it names none


def prepare_simulation(
    session: Session, services: WorkflowServices, principal: Principal, *, cases: list[SimulationCase]
) -> PreparedSimulation:
    from workflow.tickets.service import get_ticket  # tickets imports this module for the active ruleset

    if not cases:
        raise invalid("give at least one case", "cases")
    if len(cases) > MAX_SIMULATION_CASES:
        raise invalid(f"at most {MAX_SIMULATION_CASES} cases per simulation", "cases")
    active = active_ruleset(session, services, principal.merchant_id).ruleset
    prepared = []
    for index, case in enumerate(cases):
        now = case.now or services.clock()
        if case.ticket_id is not None:
            ticket = get_ticket(session, principal, case.ticket_id)
            facts = stored_ticket_facts(session, ticket, now)
            label = case.label or f"ticket {ticket.id}"
            history = case.timeline or stage_history(session, ticket)
        elif case.facts is not None:
            facts = dict(case.facts)
            label = case.label or f"case {index + 1}"
            history = case.timeline or []
        else:
            raise invalid("each case needs facts or a ticketId", f"cases[{index}]")
        if case.action is not None:
            facts = with_action(facts, case.action)
        prepared.append(PreparedCase(label=label, facts=facts, history=history, now=now))
    acts = any(isinstance(c.facts.get("action"), dict) and c.facts["action"].get("type") for c in prepared)
    default_actor = None
    if acts:
        default_actor = principal.actor.value if principal.role != Role.VIEWER else "agent"
    return PreparedSimulation(
        active_digest=active.digest, active_source=active.source, cases=prepared, default_actor=default_actor
    )


def simulate(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    cases: list[SimulationCase],
    source: str | None = None,
) -> list[SimulationResult]:
    """Evaluate ``cases`` under the draft (or the active ruleset) and the active one, changing nothing."""
    prepared = prepare_simulation(session, services, principal, cases=cases)
    active = active_ruleset(session, services, principal.merchant_id).ruleset
    draft = None if source is None else load_checked(services, source, run_tests=False)
    return evaluate_simulation(services.policy, draft, active, prepared)


def evaluate_simulation(
    engine: policy.PolicyEngine, draft: Ruleset | None, active: Ruleset, prepared: PreparedSimulation
) -> list[SimulationResult]:
    """The CPU half: ``draft`` (None: the active ruleset itself) is compiled into the engine's drafts cache,
    never in place of a merchant's active version."""
    draft_engine = engine if draft is None else engine.drafts
    draft = active if draft is None else draft
    results = []
    for case in prepared.cases:
        facts = case.facts
        action_facts = facts.get("action")
        draft_decision: dict[str, Any] = {}
        active_decision: dict[str, Any] = {}
        if isinstance(action_facts, dict) and action_facts.get("type"):
            action_facts.setdefault("actor", prepared.default_actor)
            draft_decision = draft_engine.decide(draft, facts, trace=True).to_dict()
            active_decision = engine.decide(active, facts, trace=True).to_dict()
        routing = draft_engine.route(draft, facts, trace=True).to_dict()
        escalations = [
            {"id": rule.id, "after_seconds": rule.after.total_seconds(), "then": rule.then.to_dict()}
            for rule in draft_engine.escalations_due(draft, facts)
        ]
        changed = bool(draft_decision) and (
            draft_decision.get("effect") != active_decision.get("effect")
            or draft_decision.get("deciding_rules") != active_decision.get("deciding_rules")
        )
        results.append(
            SimulationResult(
                label=case.label,
                facts=facts,
                draft=draft_decision,
                active=active_decision,
                changed=changed,
                routing=routing,
                escalations=escalations,
                planned_escalations=_planned(
                    draft_engine, draft, facts, case.history, until=case.now + PLANNING_HORIZON
                ),
            )
        )
    return results


def stage_history(session: Session, ticket: Ticket) -> list[tuple[datetime, str]]:
    """When the ticket entered each stage, oldest first (its creation is the first entry)."""
    rows = session.exec(
        select(StageTransition.at, StageTransition.to_stage)
        .where(StageTransition.merchant_id == ticket.merchant_id, StageTransition.ticket_id == ticket.id)
        .order_by(col(StageTransition.at), col(StageTransition.id))
    ).all()
    return [(at, stage) for at, stage in rows] or [(ticket.stage_entered_at, ticket.stage)]


def _planned(
    engine: policy.PolicyEngine,
    ruleset: Ruleset,
    facts: dict[str, Any],
    history: list[tuple[datetime, str]],
    *,
    until: datetime,
) -> list[dict[str, Any]]:
    """The virtual clock: every escalation the ruleset would fire over the stage history, up to ``until``."""
    if not history:
        return []
    entries = [StageEntry(at=at, stage=stage) for at, stage in history]
    return [p.to_dict() for p in escalation_timeline(engine, ruleset, facts, entries, until=until)]


@dataclass(frozen=True)
class PreparedBacktest:
    """The database half of a backtest (plain data); :func:`evaluate_backtest` is the CPU half."""

    active_digest: str
    active_source: str
    cases: list[dict[str, Any]]


def prepare_backtest(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    limit: int = 1000,
    since: datetime | None = None,
) -> PreparedBacktest:
    """The merchant's active version and the facts of its recorded decisions (the newest ``limit``, made at
    or after ``since``)."""
    if not 1 <= limit <= 10_000:
        raise invalid("limit must be between 1 and 10000", "limit")
    active = active_ruleset(session, services, principal.merchant_id).ruleset
    events = audit.recent_decisions(session, principal.merchant_id, limit=limit, since=since)
    return PreparedBacktest(
        active_digest=active.digest,
        active_source=active.source,
        cases=[e.facts for e in events if e.facts],
    )


def backtest(
    session: Session, services: WorkflowServices, principal: Principal, *, source: str, limit: int = 1000
) -> dict[str, Any]:
    """Replay the facts of the merchant's recent recorded decisions under the draft and the active version."""
    prepared = prepare_backtest(session, services, principal, limit=limit)
    active = active_ruleset(session, services, principal.merchant_id).ruleset
    draft = load_checked(services, source, run_tests=False)
    return evaluate_backtest(services.policy, draft, active, prepared)


def evaluate_backtest(
    engine: policy.PolicyEngine, draft: Ruleset, active: Ruleset, prepared: PreparedBacktest
) -> dict[str, Any]:
    """The CPU half: the engine matches ``draft`` in its drafts cache and ``active`` in the active one."""
    report: dict[str, Any] = engine.backtest(draft, active, prepared.cases).to_dict()
    report["cases_considered"] = len(prepared.cases)
    return report
