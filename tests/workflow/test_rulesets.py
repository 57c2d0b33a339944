"""Publishing, rollback and simulation of a merchant's rulesets: a broken ruleset never replaces a working one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from storage.db import Database
from tests.conftest import MerchantKeys
from tests.workflow.conftest import Clock
from tests.workflow.helpers import STRICT_RULESET, ingest, principal, publish
from workflow.errors import DomainError, ErrorCode
from workflow.rulesets import versions as rulesets
from workflow.services import WorkflowServices


def test_publish_activate_and_rollback(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    with database.read_only() as session:
        assert rulesets.active_ruleset(session, services, m.merchant_id).version is None  # bundled default
    first = publish(database, services, m)
    second = publish(
        database,
        services,
        m,
        STRICT_RULESET.replace("lte: 50", "lte: 60")
        .replace("gt: 50", "gt: 60")
        .replace("amount: 20", "amount: 55"),
    )
    assert (first, second) == (1, 2)
    with database.unit_of_work() as session:
        rulesets.activate_version(session, services, principal(m, "admin"), version=first)
    with database.read_only() as session:
        active = rulesets.active_ruleset(session, services, m.merchant_id)
        assert active.version == first and "lte: 50" in active.ruleset.source


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("ruleset: [unclosed", ErrorCode.INVALID_RULESET),
        (STRICT_RULESET.replace("effect: allow", "effect: maybe", 1), ErrorCode.INVALID_RULESET),
        (
            STRICT_RULESET.replace("expect: {effect: allow", "expect: {effect: deny"),
            ErrorCode.RULESET_TESTS_FAILED,
        ),
    ],
)
def test_broken_ruleset_never_replaces_the_working_one(
    database: Database,
    services: WorkflowServices,
    make_merchant: Callable[..., MerchantKeys],
    source: str,
    code: ErrorCode,
) -> None:
    m = make_merchant()
    good = publish(database, services, m)
    with pytest.raises(DomainError) as err, database.unit_of_work() as session:
        rulesets.publish_ruleset(session, services, principal(m, "admin"), source=source, message="bad")
    assert err.value.code is code
    with database.read_only() as session:
        assert rulesets.active_ruleset(session, services, m.merchant_id).version == good
        assert [v.version for v in rulesets.list_versions(session, principal(m, "admin"))] == [good]


def test_only_admins_publish(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    with pytest.raises(DomainError) as err, database.unit_of_work() as session:
        rulesets.publish_ruleset(session, services, principal(m, "agent"), source=STRICT_RULESET)
    assert err.value.code is ErrorCode.FORBIDDEN


def test_simulation_compares_draft_with_active_and_changes_nothing(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    publish(database, services, m)
    ticket = ingest(database, services, m)
    draft = STRICT_RULESET.replace("lte: 50", "lte: 100").replace("gt: 50", "gt: 100")
    cases = [
        rulesets.SimulationCase(ticket_id=ticket.id, action={"type": "refund", "actor": "ai", "amount": 80}),
        rulesets.SimulationCase(
            facts={"ticket": {"stage": "triaged"}}, action={"type": "refund", "actor": "ai", "amount": 10}
        ),
    ]
    with database.read_only() as session:
        results = rulesets.simulate(session, services, principal(m, "admin"), source=draft, cases=cases)
    assert [r.draft["effect"] for r in results] == ["allow", "allow"]
    assert [r.active["effect"] for r in results] == ["require_approval", "allow"]
    assert [r.changed for r in results] == [True, False]
    assert results[0].draft["trace"], "a simulation always carries the trace"
    with database.read_only() as session:
        assert rulesets.active_ruleset(session, services, m.merchant_id).version == 1


ESCALATING = STRICT_RULESET.replace(
    "handoff:",
    """escalations:
  - id: urgent-stale
    when: {fact: ticket.priority, eq: urgent}
    stages: [new, triaged]
    after: 30m
    then: {transition: escalated}
handoff:""",
)


def test_virtual_clock_shows_when_an_escalation_would_fire(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys], clock: Clock
) -> None:
    m = make_merchant()
    publish(database, services, m)
    t0 = clock()
    case = rulesets.SimulationCase(
        facts={"ticket": {"priority": "urgent", "stage": "triaged"}},
        now=t0 + timedelta(minutes=10),
        timeline=[(t0, "triaged")],
    )
    calm = rulesets.SimulationCase(
        facts={"ticket": {"priority": "low", "stage": "triaged"}}, now=t0, timeline=[(t0, "triaged")]
    )
    with database.read_only() as session:
        urgent, low = rulesets.simulate(
            session, services, principal(m, "admin"), source=ESCALATING, cases=[case, calm]
        )
    assert urgent.escalations == []  # not due yet at the case's `now`
    assert [(p["rule_id"], p["fires_at"]) for p in urgent.planned_escalations] == [
        ("urgent-stale", (t0 + timedelta(minutes=30)).isoformat())
    ]
    assert low.planned_escalations == []


def test_ticket_cases_plan_from_the_tickets_own_history(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys], clock: Clock
) -> None:
    m = make_merchant()
    publish(database, services, m)
    ticket = ingest(database, services, m, body="Someone used my card, I was charged twice, this is fraud!")
    draft = ESCALATING.replace(
        "when: {fact: ticket.priority, eq: urgent}", "when: {fact: ticket.stage, eq: triaged}"
    )
    with database.read_only() as session:
        (result,) = rulesets.simulate(
            session,
            services,
            principal(m, "admin"),
            source=draft,
            cases=[rulesets.SimulationCase(ticket_id=ticket.id)],
        )
    fires = [p for p in result.planned_escalations if p["rule_id"] == "urgent-stale"]
    assert fires and fires[0]["fires_at"] == (ticket.stage_entered_at + timedelta(minutes=30)).isoformat()


def test_a_stored_version_that_no_longer_validates_is_a_coded_error(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    """A version published before matches became RE2 (here: a lookahead) is refused with its problem."""
    from sqlmodel import select

    from storage.tables import Merchant, RulesetVersion

    m = make_merchant()
    first = publish(database, services, m)
    old = STRICT_RULESET.replace(
        "handoff:\n", "handoff:\n  - {id: soon, when: {fact: ticket.body, matches: 'refund(?= now)'}}\n", 1
    )
    with database.unit_of_work() as session:  # as an older release stored it, without today's validation
        session.add(
            RulesetVersion(merchant_id=m.merchant_id, version=2, name="old", source=old, digest="old-1")
        )
        merchant = session.exec(select(Merchant).where(Merchant.id == m.merchant_id)).one()
        merchant.active_ruleset_version = 2
        session.add(merchant)
    with database.read_only() as session, pytest.raises(DomainError) as raised:
        rulesets.active_ruleset(session, services, m.merchant_id)
    assert raised.value.code == ErrorCode.INVALID_RULESET and "E_BAD_REGEX" in str(raised.value)
    with database.unit_of_work() as session:
        rulesets.activate_version(session, services, principal(m, "admin"), version=first)
    with database.unit_of_work() as session, pytest.raises(DomainError) as again:
        rulesets.activate_version(session, services, principal(m, "admin"), version=2)
    assert again.value.code == ErrorCode.INVALID_RULESET
    with database.read_only() as session:
        assert rulesets.active_ruleset(session, services, m.merchant_id).version == first
