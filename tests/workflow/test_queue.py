"""Queue metrics from real rows: counts per stage, the oldest open ticket, SLA breaches, time in stage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from storage.db import Database
from tests.conftest import MerchantKeys
from tests.workflow.conftest import Clock
from tests.workflow.helpers import ingest, principal, publish
from workflow.queue import queue_snapshot
from workflow.services import WorkflowServices
from workflow.tickets import service as tickets


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
        tickets.transition_ticket(
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
        tickets.add_message(session, services, principal(mine), ticket_id=ticket.id, body="On it")
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
            tickets.transition_ticket(
                session, services, principal(m), ticket_id=ticket.id, to="escalated", expected_version=None
            )
    with database.read_only() as session:
        stats = queue_snapshot(session, m.merchant_id, clock()).time_in_stage
    (escalations,) = [d for d in stats if (d.from_stage, d.to_stage) == ("triaged", "escalated")]
    assert escalations.count == 5
    assert escalations.mean_seconds == pytest.approx(1800)
    assert escalations.p50_seconds == pytest.approx(1800)
    assert escalations.p90_seconds == pytest.approx(3000)
    with database.read_only() as session:
        later = queue_snapshot(session, m.merchant_id, clock() + timedelta(days=30)).time_in_stage
    assert later == []  # outside the 7-day window
