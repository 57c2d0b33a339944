"""Queue metrics from real rows: counts per stage, the oldest open ticket, SLA breaches, time in stage."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, delete, func, select

from storage.db import Database
from storage.tables import ReportCount, StageTransition, Ticket
from tests.conftest import MerchantKeys
from tests.workflow.conftest import Clock
from tests.workflow.helpers import ingest, principal, publish
from workflow.queue import PERCENTILE_RELATIVE_ERROR, queue_snapshot
from workflow.services import WorkflowServices
from workflow.stages import STAGES
from workflow.tickets import messages as ticket_messages
from workflow.tickets import transitions as ticket_transitions


def test_snapshot_counts_oldest_breaches_and_stage_times(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys], clock: Clock
) -> None:
    m = make_merchant()
    publish(database, services, m)
    first = ingest(database, services, m)
    clock.advance(minutes=10)
    second = ingest(database, services, m)
    clock.advance(minutes=20)
    with database.unit_of_work() as session:
        ticket_transitions.transition_ticket(
            session, services, principal(m), ticket_id=second.id, to="escalated", expected_version=None
        )
    with database.read_only() as session:
        before = queue_snapshot(session, m.merchant_id, clock())
    stages = {s.stage: s for s in before.stages}
    assert stages["triaged"].count == 1 and stages["triaged"].oldest_ticket_id == first.id
    assert stages["triaged"].age_seconds(clock()) == pytest.approx(1800)
    assert stages["escalated"].count == 1 and stages["new"].count == 0
    assert before.open_count == 2 and all(s.sla_breached == 0 for s in before.stages)
    triaged_to_escalated = [
        d for d in before.time_in_stage if (d.from_stage, d.to_stage) == ("triaged", "escalated")
    ]
    assert len(triaged_to_escalated) == 1 and triaged_to_escalated[0].p50_seconds == pytest.approx(1200)

    clock.advance(days=3)  # past every first-response target of the strict ruleset
    with database.read_only() as session:
        after = queue_snapshot(session, m.merchant_id, clock())
    assert sum(s.sla_breached for s in after.stages) == 2
    assert after.version > 0 and after.version == before.version


def test_every_change_bumps_the_version_and_other_merchants_are_not_counted(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys], clock: Clock
) -> None:
    mine, theirs = make_merchant(), make_merchant()
    ingest(database, services, theirs)
    with database.read_only() as session:
        empty = queue_snapshot(session, mine.merchant_id, clock())
    assert empty.open_count == 0 and empty.version == 0
    ticket = ingest(database, services, mine)
    with database.read_only() as session:
        one = queue_snapshot(session, mine.merchant_id, clock())
    with database.unit_of_work() as session:
        ticket_messages.add_message(session, services, principal(mine), ticket_id=ticket.id, body="On it")
    with database.read_only() as session:
        two = queue_snapshot(session, mine.merchant_id, clock())
    assert one.open_count == 1 and 0 < one.version < two.version


def test_time_in_stage_percentiles_are_nearest_rank(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys], clock: Clock
) -> None:
    m = make_merchant()
    publish(database, services, m)
    for minutes in (50, 10, 40, 20, 30):
        ticket = ingest(database, services, m)
        clock.advance(minutes=minutes)
        with database.unit_of_work() as session:
            ticket_transitions.transition_ticket(
                session, services, principal(m), ticket_id=ticket.id, to="escalated", expected_version=None
            )
    with database.read_only() as session:
        stats = queue_snapshot(session, m.merchant_id, clock()).time_in_stage
    (escalations,) = [d for d in stats if (d.from_stage, d.to_stage) == ("triaged", "escalated")]
    assert escalations.count == 5
    assert escalations.mean_seconds == pytest.approx(1800)  # exact: the roll-ups keep the sums
    # Nearest rank (10, 20, 30, 40, 50 minutes: the 3rd and the 5th); each alone in its histogram bin, so
    # the bin's mean is the value itself.
    assert escalations.p50_seconds == pytest.approx(1800)
    assert escalations.p90_seconds == pytest.approx(3000)
    with database.read_only() as session:
        later = queue_snapshot(session, m.merchant_id, clock() + timedelta(days=30)).time_in_stage
    assert later == []  # outside the 7-day window


def test_the_queue_reads_the_bins_the_rollups_write() -> None:
    from workflow import queue
    from workflow.reports import rollups

    assert queue.BINS_PER_DOUBLING == rollups.BINS_PER_DOUBLING


def _scan(session: Session, merchant_id: str, since: datetime) -> dict[tuple[str, str], list[float]]:
    """The per-query scan the snapshot used to run: every transition out of a stage since ``since``."""
    rows = session.exec(
        select(StageTransition.from_stage, StageTransition.to_stage, StageTransition.seconds_in_from_stage)
        .where(StageTransition.merchant_id == merchant_id, col(StageTransition.at) >= since)
        .where(col(StageTransition.from_stage).is_not(None))
    ).all()
    scanned: dict[tuple[str, str], list[float]] = {}
    for from_stage, to_stage, seconds in rows:
        assert from_stage is not None and seconds is not None
        scanned.setdefault((from_stage, to_stage), []).append(seconds)
    return scanned


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1) + 0.5)]


def test_rolled_up_time_in_stage_equals_a_scan_of_the_transitions_since_midnight_a_week_ago(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys], clock: Clock
) -> None:
    """The statistics come from the report roll-ups; on a history spread over twelve days they are what a
    scan of the transitions since midnight (UTC) of the day 7 × 24 h back finds: the same pairs, counts
    and means, and p50/p90 within the histogram's error. A transition earlier that day (inside the roll-ups'
    window, outside the old rolling one) counts; one the evening before does not."""
    m, other = make_merchant(), make_merchant()
    publish(database, services, m)
    publish(database, services, other)
    now = clock.now  # 2026-11-02 10:00 UTC: the window starts on 2026-10-26 at 00:00
    rng = random.Random(5)
    clock.now = now - timedelta(days=12)
    while clock.now < now - timedelta(hours=2):
        ticket = ingest(database, services, rng.choice([m, m, other]))
        merchant = m if ticket.merchant_id == m.merchant_id else other
        path = rng.choice([["escalated"], ["resolved"], ["resolved", "closed"], ["escalated", "assigned"]])
        for stage in path:
            clock.advance(seconds=rng.choice([5, 90, 1200, 4000, 30000]) + rng.randrange(300))
            with database.unit_of_work() as session:
                ticket_transitions.transition_ticket(
                    session,
                    services,
                    principal(merchant),
                    ticket_id=ticket.id,
                    to=stage,
                    expected_version=None,
                )
        clock.advance(hours=rng.choice([1, 3, 7]))
    # Two tickets leaving triaged just inside and just outside the first day of the window.
    for at, seconds in (
        (datetime(2026, 10, 26, 5, 0, tzinfo=UTC), 77.0),
        (datetime(2026, 10, 25, 23, 59, tzinfo=UTC), 99.0),
    ):
        clock.now = at - timedelta(seconds=seconds)
        ticket = ingest(database, services, m)
        clock.now = at
        with database.unit_of_work() as session:
            ticket_transitions.transition_ticket(
                session, services, principal(m), ticket_id=ticket.id, to="escalated", expected_version=None
            )
    clock.now = now
    with database.read_only() as session:
        stats = queue_snapshot(session, m.merchant_id, now).time_in_stage
        scanned = _scan(session, m.merchant_id, datetime(2026, 10, 26, tzinfo=UTC))
        rolling = _scan(session, m.merchant_id, now - timedelta(days=7))
    assert {(d.from_stage, d.to_stage) for d in stats} == set(scanned) and len(scanned) >= 4
    for d in stats:
        values = scanned[(d.from_stage, d.to_stage)]
        assert d.count == len(values)
        assert d.mean_seconds == pytest.approx(sum(values) / len(values), rel=1e-9)
        for q, got in ((0.5, d.p50_seconds), (0.9, d.p90_seconds)):
            assert got + 1 == pytest.approx(_nearest_rank(values, q) + 1, rel=PERCENTILE_RELATIVE_ERROR)
    (escalated,) = [d for d in stats if (d.from_stage, d.to_stage) == ("triaged", "escalated")]
    assert 77.0 in scanned[("triaged", "escalated")] and 99.0 not in scanned[("triaged", "escalated")]
    assert escalated.count == len(rolling[("triaged", "escalated")]) + 1  # the 05:00 one
    assert sum(map(len, scanned.values())) > sum(map(len, rolling.values()))


def _counted(session: Session, merchant_id: str) -> dict[str, int]:
    rows = session.exec(
        select(Ticket.stage, func.count()).where(Ticket.merchant_id == merchant_id).group_by(Ticket.stage)
    ).all()
    return {stage: int(n) for stage, n in rows}


def test_stage_counts_equal_a_count_of_the_rows_and_do_without_incomplete_rollups(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys], clock: Clock
) -> None:
    """``closed`` comes from the roll-ups' ticket count minus the other stages; where the roll-ups miss
    part of the history (tickets from before they existed), it is counted from the rows."""
    m, other = make_merchant(), make_merchant()
    publish(database, services, m)
    made = [ingest(database, services, m) for _ in range(9)]
    ingest(database, services, other)
    for ticket, path in zip(
        made, [["resolved"], ["resolved", "closed"], ["resolved", "closed"], ["escalated"]], strict=False
    ):
        for stage in path:
            clock.advance(minutes=5)
            with database.unit_of_work() as session:
                ticket_transitions.transition_ticket(
                    session, services, principal(m), ticket_id=ticket.id, to=stage, expected_version=None
                )
    with database.read_only() as session:
        expected = _counted(session, m.merchant_id)
        stages = {s.stage: s.count for s in queue_snapshot(session, m.merchant_id, clock()).stages}
    assert expected == {"triaged": 5, "resolved": 1, "closed": 2, "escalated": 1}
    assert stages == {stage: expected.get(stage, 0) for stage in STAGES}
    # The roll-ups lose the oldest ticket's day (as a database that never ran rebuild-reports would).
    with database.unit_of_work() as session:
        session.execute(
            delete(ReportCount).where(
                col(ReportCount.merchant_id) == m.merchant_id, col(ReportCount.metric) == "created"
            )
        )
        clock.advance(days=1)
    for _ in range(9):  # more than the other stages hold: "rolled-up tickets minus the rest" stays positive
        later = ingest(database, services, m)
        with database.unit_of_work() as session:
            for stage in ("resolved", "closed"):
                ticket_transitions.transition_ticket(
                    session, services, principal(m), ticket_id=later.id, to=stage, expected_version=None
                )
    with database.read_only() as session:
        stages = {s.stage: s.count for s in queue_snapshot(session, m.merchant_id, clock()).stages}
        assert stages["closed"] == 11 == _counted(session, m.merchant_id)["closed"]
