"""The dispatcher's loop on both back-ends: one merchant's hanging endpoint does not hold back another's
deliveries, two dispatchers never have one delivery in flight twice, and an attempt cut off by a crash is
made again once its lease ends."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from sqlmodel import select

from storage.db import Database
from storage.tables import WebhookDelivery
from tests.api.conftest import Api, create_ticket
from tests.conftest import MerchantKeys
from tests.webhooks.conftest import Clock, Received, Receiver
from tests.webhooks.test_webhooks_api import register
from workflow.services import WorkflowServices
from workflow.webhooks.delivery import Sender
from workflow.webhooks.dispatcher import DispatchLimits, WebhookDispatcher, claim


async def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def test_a_merchants_hanging_endpoint_holds_only_its_own_slots(
    api: Api,
    database: Database,
    clocked_services: WorkflowServices,
    merchant: MerchantKeys,
    other_merchant: MerchantKeys,
    make_receiver: Callable[..., Receiver],
) -> None:
    release = threading.Event()

    def hang(_r: Received) -> tuple[int, dict[str, str], bytes]:
        release.wait(20)
        return 200, {}, b""

    stuck, healthy = make_receiver(hang), make_receiver()
    await register(api, merchant, stuck.url, ["ticket.created"])
    await register(api, other_merchant, healthy.url, ["ticket.created"])
    for _ in range(12):
        await create_ticket(api, merchant.keys["partner"])
    limits = DispatchLimits(per_endpoint=2, per_merchant=3, total=4)
    dispatcher = WebhookDispatcher(
        database, clocked_services, Sender(timeout=30, allow_private=True), limits=limits, poll_seconds=0.1
    )
    loop = asyncio.create_task(dispatcher.run())
    try:
        await wait_until(lambda: stuck.concurrent == 2)
        await create_ticket(api, other_merchant.keys["partner"])
        # Delivered while the first merchant's attempts are all still hanging.
        await wait_until(lambda: len(healthy.received) == 1)
        assert stuck.concurrent == 2 and len(stuck.received) == 2
        release.set()
        await wait_until(lambda: len(stuck.received) == 12)
        assert stuck.max_concurrent == 2
    finally:
        release.set()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_two_dispatchers_never_have_one_delivery_in_flight_twice(
    api: Api,
    database: Database,
    database_url: str,
    clocked_services: WorkflowServices,
    merchant: MerchantKeys,
    make_receiver: Callable[..., Receiver],
) -> None:
    rng = random.Random(7)

    def jittery(_r: Received) -> tuple[int, dict[str, str], bytes]:
        time.sleep(rng.random() * 0.03)
        return (500 if rng.random() < 0.2 else 200), {}, b""

    receiver = make_receiver(jittery)
    await register(api, merchant, receiver.url, ["ticket.created"])
    for _ in range(40):
        await create_ticket(api, merchant.keys["partner"])
    # Each dispatcher with its own engine and connections, as two server processes would have.
    databases = [Database.from_url(database_url) for _ in range(2)]
    dispatchers = [
        WebhookDispatcher(db, clocked_services, Sender(timeout=5, allow_private=True), poll_seconds=0.05)
        for db in databases
    ]
    loops = [asyncio.create_task(d.run()) for d in dispatchers]
    clock: Clock = clocked_services.clock  # type: ignore[assignment]
    try:

        def settled() -> bool:
            with databases[0].read_only() as session:
                statuses = session.exec(
                    select(WebhookDelivery.status).where(WebhookDelivery.merchant_id == merchant.merchant_id)
                ).all()
            return len(statuses) == 40 and set(statuses) == {"delivered"}

        deadline = time.monotonic() + 60
        while not settled():
            assert time.monotonic() < deadline
            # Retries (5-6 s after a 500) fall due; the workflow clock runs 6x faster than real time, well
            # inside the leases (40 s: 6.7 s of real time, attempts take at most 30 ms).
            clock.advance(seconds=0.6)
            await asyncio.sleep(0.1)
    finally:
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for db in databases:
            db.dispose()
    assert receiver.overlaps == []
    # Every request the receiver saw is an attempt the database counted (claimed under a lease): none was
    # made twice. (An attempt may count without a request: a refused connection is a failed attempt.)
    received_per_id = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(received_per_id) == 40
    with database.read_only() as session:
        attempts = dict(
            session.exec(
                select(WebhookDelivery.event_id, WebhookDelivery.attempts).where(
                    WebhookDelivery.merchant_id == merchant.merchant_id
                )
            ).all()
        )
    assert all(received_per_id[event_id] <= n for event_id, n in attempts.items()), (
        attempts,
        received_per_id,
    )


async def test_an_attempt_cut_off_by_a_crash_is_made_again_after_its_lease(
    api: Api,
    database: Database,
    merchant: MerchantKeys,
    receiver: Receiver,
    dispatcher: WebhookDispatcher,
    clock: Clock,
) -> None:
    await register(api, merchant, receiver.url, ["ticket.created"])
    await create_ticket(api, merchant.keys["partner"])
    with database.unit_of_work() as session:
        delivery = session.exec(
            select(WebhookDelivery).where(WebhookDelivery.merchant_id == merchant.merchant_id)
        ).one()
        [job] = claim(session, clock.now, [(delivery.endpoint_id, 5)], timedelta(seconds=40))
    # The process that claimed it dies here: no attempt is recorded, the lease stays.
    assert await dispatcher.run_once() == []
    clock.advance(seconds=39)
    assert await dispatcher.run_once() == []
    clock.advance(seconds=2)
    [(again, result)] = await dispatcher.run_once()
    assert result.ok and again.delivery_id == job.delivery_id and again.attempt == 2
    assert [r.headers["webhook-id"] for r in receiver.received] == [job.event_id]
