"""The escalation timeline (a virtual clock for simulation): when each rule would fire for a ticket's stage
history, evaluated by the real policy engine — and in agreement with the scheduler itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import policy
from policy import PolicyEngine
from workflow.errors import DomainError
from workflow.rulesets.timeline import StageEntry, escalation_timeline

from .conftest import LIVE_RULESET, T0, LiveWorld
from .test_scheduler import tick

BUSINESS_HOURS_RULESET = LIVE_RULESET.replace(
    """escalations:
""",
    """escalations:
  - id: chase-in-business-hours
    when: {fact: time.business_hours, eq: true}
    stages: [waiting_on_customer]
    after: 10m
    then: {tags: [chase]}
""",
)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine()


def plan(
    engine: PolicyEngine, source: str, entries: list[StageEntry], facts: dict[str, object], hours: float
) -> list[tuple[str, datetime]]:
    ruleset = policy.load_ruleset(source)
    firings = escalation_timeline(
        engine, ruleset, facts, entries, until=entries[0].at + timedelta(hours=hours)
    )
    return [(f.rule_id, f.fires_at) for f in firings]


def test_a_stale_ticket_escalates_after_its_time_in_stage(engine: PolicyEngine) -> None:
    entries = [StageEntry(T0, "triaged")]
    assert plan(engine, LIVE_RULESET, entries, {}, 2) == [("stale-triaged", T0 + timedelta(minutes=30))]


def test_leaving_the_stage_in_time_prevents_it_and_conditions_apply(engine: PolicyEngine) -> None:
    entries = [StageEntry(T0, "triaged"), StageEntry(T0 + timedelta(minutes=5), "assigned")]
    vip: dict[str, object] = {"customer": {"vip": True}}
    assert plan(engine, LIVE_RULESET, entries, vip, 2) == [("vip-stale-assigned", T0 + timedelta(minutes=15))]
    assert plan(engine, LIVE_RULESET, entries, {"customer": {"vip": False}}, 2) == []


def test_a_rule_that_needs_business_hours_waits_for_monday(engine: PolicyEngine) -> None:
    friday_evening = datetime(2026, 3, 6, 17, 55, tzinfo=UTC)  # a Friday
    entries = [StageEntry(friday_evening, "waiting_on_customer")]
    assert plan(engine, BUSINESS_HOURS_RULESET, entries, {}, 80) == [
        ("chase-in-business-hours", datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    ]


def test_bad_timelines_are_refused(engine: PolicyEngine) -> None:
    ruleset = policy.load_ruleset(LIVE_RULESET)
    with pytest.raises(DomainError):
        escalation_timeline(engine, ruleset, {}, [], until=T0)
    backwards = [StageEntry(T0, "triaged"), StageEntry(T0 - timedelta(minutes=1), "assigned")]
    with pytest.raises(DomainError):
        escalation_timeline(engine, ruleset, {}, backwards, until=T0 + timedelta(hours=1))


def test_the_timeline_agrees_with_the_scheduler(world: LiveWorld, engine: PolicyEngine) -> None:
    ticket_id = world.create_ticket(T0)
    predicted = plan(engine, LIVE_RULESET, [StageEntry(T0, "triaged")], {}, 1)
    fired_at = None
    for minute in range(0, 61):
        report = tick(world, minute)
        if any(e.ticket_id == ticket_id for e in report.escalations):
            fired_at = T0 + timedelta(minutes=minute)
            break
    assert predicted == [("stale-triaged", fired_at)]
