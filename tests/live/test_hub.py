"""The queue hub: coalescing, compute-once fan-out, after-commit only, cleanup, safety resend, and the
PostgreSQL LISTEN connection (including a dropped connection), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from storage.db import Database
from storage.tables import StageTransition
from tests.conftest import MerchantKeys
from workflow.live.bus import EventBus, TicketEvent
from workflow.live.pg_listener import QueueListener
from workflow.live.queue_hub import QueueHub, feed_from_bus
from workflow.queue import bump_queue_version

from .helpers import Boom, Collector, total, write_ticket


def utcnow() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def bus_hub(database: Database) -> AsyncIterator[tuple[EventBus, QueueHub]]:
    bus = EventBus()
    hub = QueueHub(database, clock=utcnow, coalesce_seconds=0.2)
    feed_from_bus(hub, bus)
    hub.bind(asyncio.get_running_loop())
    yield bus, hub
    await hub.close()


async def test_initial_snapshot_then_one_per_change(
    database: Database, bus_hub: tuple[EventBus, QueueHub], make_merchant: Callable[..., MerchantKeys]
) -> None:
    bus, hub = bus_hub
    merchant = make_merchant()
    async with Collector(hub, merchant.merchant_id) as sub:
        first = sub.items[0]
        assert (first.version, total(first)) == (0, 0)
        await asyncio.to_thread(write_ticket, database, bus, merchant.merchant_id, stage="triaged")
        items = await sub.wait_for(lambda items: len(items) >= 2)
        latest = items[-1]
        assert latest.version == 1
        triaged = next(s for s in latest.stages if s.stage == "triaged")
        assert triaged.count == 1 and triaged.oldest_ticket_id is not None


async def test_burst_of_1000_writes_yields_few_snapshots_computed_once(
    database: Database, bus_hub: tuple[EventBus, QueueHub], make_merchant: Callable[..., MerchantKeys]
) -> None:
    bus, hub = bus_hub
    merchant = make_merchant()

    def burst() -> None:
        for _ in range(1000):
            write_ticket(database, bus, merchant.merchant_id)

    async with (
        Collector(hub, merchant.merchant_id) as a,
        Collector(hub, merchant.merchant_id) as b,
        Collector(hub, merchant.merchant_id) as c,
    ):
        computed_before = hub.stats.snapshots_computed
        started = time.monotonic()
        await asyncio.to_thread(burst)
        elapsed = time.monotonic() - started
        for sub in (a, b, c):
            await sub.wait_for(lambda items: items[-1].version == 1000)
        after_initial = a.items[1:]
        # Coalesced: at most one snapshot per 0.2 s window while the burst lasts (the first at once, one
        # more after it), however many writes landed; versions strictly increasing.
        # (How much that coalesces depends on how fast the writes came: on a loaded machine they come slower.)
        assert 1 <= len(after_initial) <= elapsed / 0.2 + 2
        assert len(after_initial) < 1000
        versions = [s.version for s in a.items]
        assert versions == sorted(set(versions))
        assert total(a.items[-1]) == 1000
        # Computed once per flush for the merchant (not per subscriber), the same object fanned out to all three.
        # (A flush whose snapshot already held every signalled change sends nothing: computed >= sent.)
        computed = hub.stats.snapshots_computed - computed_before
        assert len(after_initial) <= computed < 2 * len(after_initial) + 2
        assert [id(s) for s in a.items[1:]] == [id(s) for s in b.items[1:]] == [id(s) for s in c.items[1:]]
    print(f"1000 writes in {elapsed:.1f}s -> {len(after_initial)} snapshots")


async def test_rolled_back_change_publishes_nothing(
    database: Database, bus_hub: tuple[EventBus, QueueHub], make_merchant: Callable[..., MerchantKeys]
) -> None:
    bus, hub = bus_hub
    merchant = make_merchant()
    async with Collector(hub, merchant.merchant_id) as sub:
        notifications = hub.stats.notifications
        with pytest.raises(Boom):
            await asyncio.to_thread(write_ticket, database, bus, merchant.merchant_id, fail=True)
        await asyncio.sleep(0.5)
        assert hub.stats.notifications == notifications
        assert len(sub.items) == 1
        await asyncio.to_thread(write_ticket, database, bus, merchant.merchant_id)
        items = await sub.wait_for(lambda items: len(items) >= 2)
        assert items[-1].version == 1 and total(items[-1]) == 1  # the rolled-back write left no trace


async def test_abrupt_unsubscribe_leaves_nothing_behind(
    database: Database, bus_hub: tuple[EventBus, QueueHub], make_merchant: Callable[..., MerchantKeys]
) -> None:
    bus, hub = bus_hub
    merchant = make_merchant()
    other = make_merchant()
    collectors = [Collector(hub, m.merchant_id) for m in [merchant] * 20 + [other] * 5]
    for collector in collectors:
        await collector.__aenter__()
    assert hub.subscriber_count(merchant.merchant_id) == 20
    assert hub.subscriber_count() == 25

    # Cancel half of them in the middle of a burst (a flush may be pending or running).
    def write_30() -> None:
        for _ in range(30):
            write_ticket(database, bus, merchant.merchant_id)

    writer = asyncio.ensure_future(asyncio.to_thread(write_30))
    await asyncio.sleep(0.05)
    for collector in collectors[:10]:
        await collector.__aexit__(None, None, None)
    await writer
    assert hub.subscriber_count(merchant.merchant_id) == 10
    for collector in collectors[10:]:
        await collector.__aexit__(None, None, None)
    assert hub.subscriber_count() == 0
    assert hub.channel_count() == 0


async def test_safety_check_resends_when_versions_differ(
    database: Database, bus_hub: tuple[EventBus, QueueHub], make_merchant: Callable[..., MerchantKeys]
) -> None:
    _, hub = bus_hub
    merchant = make_merchant()
    async with Collector(hub, merchant.merchant_id) as sub:
        assert await hub.safety_check() == 0

        def silent_change() -> None:  # committed, but the signal is lost (no event published)
            with database.unit_of_work() as session:
                bump_queue_version(session, merchant.merchant_id)

        await asyncio.to_thread(silent_change)
        await asyncio.sleep(0.3)
        assert len(sub.items) == 1
        assert await hub.safety_check() == 1
        items = await sub.wait_for(lambda items: len(items) >= 2)
        assert items[-1].version == 1
        assert await hub.safety_check() == 0


@pytest.fixture
def postgres_only(database: Database) -> Database:
    if not database.is_postgres:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL only")
    return database


async def test_notify_reaches_another_hub_and_survives_a_dropped_connection(
    postgres_only: Database, database_url: str, make_merchant: Callable[..., MerchantKeys]
) -> None:
    database = postgres_only
    merchant = make_merchant()
    # Process "B": a hub fed only by LISTEN. Writers publish on a bus nobody on B listens to.
    hub = QueueHub(database, clock=utcnow, coalesce_seconds=0.05)
    hub.bind(asyncio.get_running_loop())
    listener = QueueListener(hub, database_url, min_backoff=1.0)
    task = asyncio.create_task(listener.run())
    writers_bus = EventBus()
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        async with Collector(hub, merchant.merchant_id) as sub:
            await asyncio.to_thread(write_ticket, database, writers_bus, merchant.merchant_id)
            await sub.wait_for(lambda items: items[-1].version == 1)

            # Drop the listening connection; a change committed while it is down is never signalled.
            pid = listener.backend_pid

            def kill() -> None:
                with database.unit_of_work() as session:
                    session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

            await asyncio.to_thread(kill)
            while listener.connected.is_set():
                await asyncio.sleep(0.01)
            await asyncio.to_thread(write_ticket, database, writers_bus, merchant.merchant_id)
            # After reconnecting, the listener compares versions and the hub resends.
            await asyncio.wait_for(listener.connected.wait(), 10)
            items = await sub.wait_for(lambda items: items[-1].version == 2)
            assert total(items[-1]) == 2
            assert listener.connections == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await hub.close()


async def test_time_in_stage_statistics_refresh_every_30_seconds(
    database: Database, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant = make_merchant()
    now = [utcnow()]
    bus = EventBus()
    hub = QueueHub(database, clock=lambda: now[0], coalesce_seconds=0.01)
    feed_from_bus(hub, bus)
    hub.bind(asyncio.get_running_loop())

    def moved(seconds: float) -> None:  # a ticket that left triaged for assigned after ``seconds``
        ticket_id = write_ticket(database, bus, merchant.merchant_id, stage="assigned")
        with database.unit_of_work() as session:
            session.add(
                StageTransition(
                    merchant_id=merchant.merchant_id,
                    ticket_id=ticket_id,
                    from_stage="triaged",
                    to_stage="assigned",
                    seconds_in_from_stage=seconds,
                    actor="agent",
                    at=now[0],
                )
            )
            bump_queue_version(session, merchant.merchant_id)
        bus.publish(TicketEvent(kind="transitioned", merchant_id=merchant.merchant_id, ticket_id=ticket_id))

    try:
        async with Collector(hub, merchant.merchant_id) as sub:
            assert sub.items[0].time_in_stage == []
            await asyncio.to_thread(moved, 60.0)
            items = await sub.wait_for(lambda items: items[-1].version == 2)
            assert items[-1].time_in_stage == []  # counts are live; the 7-day statistics lag up to 30 s
            now[0] += timedelta(seconds=31)
            await asyncio.to_thread(moved, 120.0)
            # The flush that finds them stale sends the counts at once and has the statistics refreshed in
            # the background; a following change carries them.
            # A flush still due from the first move may run after the clock moved and refresh the statistics
            # before the second move commits; they then hold one move until the next refresh, 30 s later.
            version = 4
            for _ in range(50):
                items = await sub.wait_for(lambda items, v=version: items[-1].version == v)  # type: ignore[misc]
                if items[-1].time_in_stage and items[-1].time_in_stage[0].count == 2:
                    break
                if items[-1].time_in_stage:
                    now[0] += timedelta(seconds=31)
                await asyncio.to_thread(write_ticket, database, bus, merchant.merchant_id)
                version += 1
            (stats,) = items[-1].time_in_stage
            assert (stats.from_stage, stats.to_stage, stats.count) == ("triaged", "assigned", 2)
            assert stats.mean_seconds == 90.0
    finally:
        await hub.close()


async def test_a_slow_time_in_stage_refresh_does_not_delay_the_live_counts(
    database: Database, make_merchant: Callable[..., MerchantKeys], monkeypatch: pytest.MonkeyPatch
) -> None:
    merchant = make_merchant()
    now = [utcnow()]
    bus = EventBus()
    hub = QueueHub(database, clock=lambda: now[0], coalesce_seconds=0.01)
    feed_from_bus(hub, bus)
    hub.bind(asyncio.get_running_loop())
    refreshes: list[float] = []

    def slow_time_in_stage(*args: object, **kwargs: object) -> list[object]:
        refreshes.append(time.monotonic())
        time.sleep(3.0)  # a 7-day scan over millions of transitions
        return []

    try:
        async with Collector(hub, merchant.merchant_id) as sub:
            monkeypatch.setattr("workflow.live.queue_hub.time_in_stage", slow_time_in_stage)
            now[0] += timedelta(seconds=31)
            started = time.monotonic()
            await asyncio.to_thread(write_ticket, database, bus, merchant.merchant_id)
            await sub.wait_for(lambda items: items[-1].version == 1)
            await asyncio.to_thread(write_ticket, database, bus, merchant.merchant_id)
            await sub.wait_for(lambda items: items[-1].version == 2)
            assert time.monotonic() - started < 2.0
            assert len(refreshes) == 1  # one refresh in flight, not one per flush
    finally:
        await hub.close()
