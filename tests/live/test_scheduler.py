"""The scheduler tick on a virtual clock, on SQLite and PostgreSQL: escalations fire once per stay in a
stage, SLA breaches are marked once, everything is audited with its facts, events go out only after
commit, a failed tick loses nothing, and two schedulers racing fire each escalation exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, func, select

from storage.tables import AuditEvent, EscalationFiring, IdempotencyRecord, Ticket
from workflow import idempotency, scheduler
from workflow.queue import queue_version
from workflow.rulesets.versions import publish_ruleset_with_warnings
from workflow.scheduler import TickReport, run_due_work
from workflow.tenancy import agents
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.service import transition_ticket

from .conftest import LIVE_RULESET, T0, LiveWorld


def tick(world: LiveWorld, minutes: float) -> TickReport:
    return run_due_work(
        world.database, world.services, T0 + timedelta(minutes=minutes), merchant_ids=[world.merchant_id]
    )


def ticket(world: LiveWorld, ticket_id: str) -> Ticket:
    with world.database.read_only() as session:
        row = session.get(Ticket, ticket_id)
        assert row is not None
        session.expunge(row)  # keep its loaded state past the read-only session's rollback
        return row


def audit_rows(world: LiveWorld, kind: str, ticket_id: str | None = None) -> list[AuditEvent]:
    with world.database.read_only() as session:
        query = select(AuditEvent).where(AuditEvent.merchant_id == world.merchant_id, AuditEvent.kind == kind)
        if ticket_id is not None:
            query = query.where(AuditEvent.ticket_id == ticket_id)
        rows = list(session.exec(query.order_by(col(AuditEvent.id))))
        session.expunge_all()
        return rows


def firings(world: LiveWorld) -> int:
    with world.database.read_only() as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(EscalationFiring)
                .where(EscalationFiring.merchant_id == world.merchant_id)
            ).one()
        )


def kinds(world: LiveWorld, ticket_id: str) -> list[str]:
    return [e.kind for e in world.events if e.ticket_id == ticket_id]


def test_escalation_fires_once_when_its_time_in_stage_has_passed(world: LiveWorld) -> None:
    ticket_id = world.create_ticket(T0)
    assert ticket(world, ticket_id).stage == "triaged"
    assert tick(world, 29).escalations == []
    with world.database.read_only() as session:
        version_before = queue_version(session, world.merchant_id)

    report = tick(world, 31)
    assert [(e.ticket_id, e.rule_id, e.stage) for e in report.escalations] == [
        (ticket_id, "stale-triaged", "triaged")
    ]
    assert report.escalations[0].applied == {"transition": "escalated"}
    row = ticket(world, ticket_id)
    assert row.stage == "escalated"
    assert row.stage_entered_at == T0 + timedelta(minutes=31)
    # Audited as the system actor, with the facts the decision saw.
    (audited,) = audit_rows(world, "ticket.escalated", ticket_id)
    assert audited.actor == "system"
    assert audited.facts is not None and audited.facts["ticket"]["seconds_in_stage"] == 31 * 60
    assert audited.decision is not None and audited.decision["rule_id"] == "stale-triaged"
    assert [a.after["stage"] for a in audit_rows(world, "ticket.transitioned", ticket_id)][-1] == "escalated"
    # Published after commit, and the queue moved on.
    assert kinds(world, ticket_id)[-2:] == ["transitioned", "escalated"]
    with world.database.read_only() as session:
        assert queue_version(session, world.merchant_id) > version_before

    # Later ticks do not fire it again.
    assert tick(world, 45).escalations == []
    assert tick(world, 600).escalations == []
    assert firings(world) == 1


def test_a_new_stay_in_the_stage_can_fire_again(world: LiveWorld) -> None:
    ticket_id = world.create_ticket(T0)
    assert len(tick(world, 31).escalations) == 1
    agent = Principal(world.merchant_id, Role.AGENT, world.merchant.key_ids["agent"])
    with world.database.unit_of_work() as session:
        transition_ticket(
            session,
            world.at(T0 + timedelta(minutes=40)),
            agent,
            ticket_id=ticket_id,
            to="triaged",
            expected_version=None,
        )
    assert tick(world, 69).escalations == []
    report = tick(world, 71)
    assert [e.ticket_id for e in report.escalations] == [ticket_id]
    assert firings(world) == 2


def test_rule_conditions_decide_which_tickets_escalate(world: LiveWorld) -> None:
    vip = world.create_ticket(T0, vip=True)
    plain = world.create_ticket(T0, vip=False)
    agent = Principal(world.merchant_id, Role.AGENT, world.merchant.key_ids["agent"])
    for ticket_id in (vip, plain):
        with world.database.unit_of_work() as session:
            transition_ticket(
                session, world.at(T0), agent, ticket_id=ticket_id, to="assigned", expected_version=None
            )
    report = tick(world, 11)
    assert [(e.ticket_id, e.rule_id) for e in report.escalations] == [(vip, "vip-stale-assigned")]
    assert ticket(world, plain).stage == "assigned"


def test_sla_breach_is_marked_once_with_its_due_time(world: LiveWorld) -> None:
    ticket_id = world.create_ticket(T0)
    due = ticket(world, ticket_id).first_response_due_at
    assert due is not None
    minutes_to_due = (due - T0).total_seconds() / 60
    assert tick(world, minutes_to_due - 1).breaches == []
    report = tick(world, minutes_to_due + 1)
    assert [(b.ticket_id, b.sla, b.due_at) for b in report.breaches] == [(ticket_id, "first_response", due)]
    assert ticket(world, ticket_id).sla_breached_at == due
    (audited,) = audit_rows(world, "ticket.sla_breached", ticket_id)
    assert audited.actor == "system" and audited.facts is not None
    assert audited.decision is not None and audited.decision["sla"] == "first_response"
    assert kinds(world, ticket_id).count("sla_breached") == 1
    assert tick(world, minutes_to_due + 60 * 24 * 10).breaches == []


def test_a_failed_tick_publishes_nothing_and_the_next_one_finds_the_work(
    world: LiveWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket_id = world.create_ticket(T0)
    published = len(world.events)

    def fail(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("database went away mid-tick")

    monkeypatch.setattr(idempotency, "prune", fail)  # the last step of the tick's transaction
    with pytest.raises(RuntimeError):
        tick(world, 31)
    assert len(world.events) == published  # nothing for the rolled-back escalation
    assert ticket(world, ticket_id).stage == "triaged"
    assert firings(world) == 0
    monkeypatch.undo()

    # "After a restart": fresh services (a new bus), later time; the due escalation is found in the database.
    report = tick(world, 90)
    assert [e.ticket_id for e in report.escalations] == [ticket_id]
    assert ticket(world, ticket_id).stage == "escalated"


def test_old_idempotency_records_are_pruned(world: LiveWorld) -> None:
    now = T0 + timedelta(days=3)
    with world.database.unit_of_work() as session:
        for key, age in (("old", timedelta(hours=25)), ("recent", timedelta(hours=23))):
            session.add(
                IdempotencyRecord(
                    merchant_id=world.merchant_id,
                    key=key,
                    operation="createTicket",
                    request_hash="0" * 64,
                    response={},
                    created_at=now - age,
                )
            )
    report = run_due_work(world.database, world.services, now, merchant_ids=[world.merchant_id])
    assert report.idempotency_pruned >= 1
    with world.database.read_only() as session:
        keys = session.exec(
            select(IdempotencyRecord.key).where(IdempotencyRecord.merchant_id == world.merchant_id)
        ).all()
    assert list(keys) == ["recent"]


def test_two_schedulers_racing_fire_each_escalation_exactly_once(world: LiveWorld) -> None:
    ids = [world.create_ticket(T0 + timedelta(seconds=i)) for i in range(40)]
    now = T0 + timedelta(hours=1)
    barrier = threading.Barrier(2)
    reports: list[TickReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            reports.append(
                run_due_work(world.database, world.services, now, merchant_ids=[world.merchant_id])
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    print("racing ticks:", [(len(r.escalations), r.skipped_locked) for r in reports])
    fired = [e.ticket_id for r in reports for e in r.escalations]
    assert sorted(fired) == sorted(ids)  # every ticket once, none twice
    assert firings(world) == 40
    assert len(audit_rows(world, "ticket.escalated")) == 40
    assert sum(1 for e in world.events if e.kind == "escalated") == 40
    breached = [b.ticket_id for r in reports for b in r.breaches]
    assert len(breached) == len(set(breached))


def test_the_firing_row_is_claimed_only_once(world: LiveWorld) -> None:
    ticket_id = world.create_ticket(T0)
    with world.database.unit_of_work() as session:
        row = session.get(Ticket, ticket_id)
        assert row is not None
        assert scheduler._claim(session, row, "stale-triaged", T0) is True
        assert scheduler._claim(session, row, "stale-triaged", T0) is False
        assert scheduler._claim(session, row, "another-rule", T0) is True


def test_a_tick_with_nothing_due_does_not_wait_for_the_write_lock(world: LiveWorld) -> None:
    world.create_ticket(T0)
    done = threading.Event()
    reports: list[TickReport] = []

    def idle_tick() -> None:
        reports.append(tick(world, 5))  # nothing is due five minutes in
        done.set()

    with world.database.unit_of_work() as session:
        session.execute(
            text("UPDATE queue_state SET version = version WHERE merchant_id = :m"), {"m": world.merchant_id}
        )
        # This transaction now holds the write lock (SQLite: the database's; PostgreSQL: that row's).
        thread = threading.Thread(target=idle_tick)
        thread.start()
        assert done.wait(10), "an idle tick waited for a writer"
    thread.join(10)
    assert reports[0].escalations == [] and reports[0].breaches == []


# Every key an escalation's `then` may carry, and a team the merchant does not have.
EVERY_THEN = (
    LIVE_RULESET.split("escalations:")[0]
    + """
escalations:
  - id: to-ghost-team
    stages: [triaged]
    after: 20m
    then: {team: Ghosts, tags: [ghosted]}
  - id: everything
    stages: [triaged]
    after: 30m
    then: {transition: escalated, priority: urgent, team: Tier2, tags: [stale], needs_human: true}
"""
)


def test_escalation_then_carries_out_every_key(world: LiveWorld) -> None:
    admin = Principal(world.merchant_id, Role.ADMIN, world.merchant.key_ids["admin"])
    with world.database.unit_of_work() as session:
        tier2 = agents.create_team(session, admin, name="Tier2").id
        published = publish_ruleset_with_warnings(session, world.services, admin, source=EVERY_THEN)
    # Publishing warns about the missing team (and names it) but does not refuse.
    assert [(w.code, w.path) for w in published.warnings] == [("W_UNKNOWN_TEAM", "escalations[0].then.team")]
    assert "'Ghosts'" in published.warnings[0].message
    ticket_id = world.create_ticket(T0)

    (ghost,) = tick(world, 21).escalations
    assert ghost.rule_id == "to-ghost-team"
    assert ghost.applied == {"tags": ["ghosted"]}
    assert ghost.skipped == {"team": "team 'Ghosts' does not exist"}

    (fired,) = tick(world, 31).escalations
    assert fired.rule_id == "everything" and fired.skipped == {}
    assert fired.applied == {
        "priority": "urgent",
        "tags": ["stale"],
        "needs_human": True,
        "team": "Tier2",
        "transition": "escalated",
    }
    row = ticket(world, ticket_id)
    assert (row.stage, row.priority, row.team_id, row.needs_human) == ("escalated", "urgent", tier2, True)
    assert sorted(row.tags) == ["ghosted", "stale"]
    audited = audit_rows(world, "ticket.escalated", ticket_id)[-1]
    assert audited.decision is not None
    assert audited.decision["then"] == {
        "transition": "escalated",
        "priority": "urgent",
        "team": "Tier2",
        "tags": ["stale"],
        "needs_human": True,
    }
