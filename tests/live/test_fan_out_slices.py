"""A fan-out to many subscribers yields to the event loop between slices, so other work (another merchant's
request) runs in the middle of a burst instead of after it; every subscriber still gets every item, in order; and
websocket operations are set up a few at a time per merchant."""

from __future__ import annotations

import asyncio
import contextlib

from bookbag.ws.connections import SetupSlots
from workflow.live.bus import FAN_OUT_SLICE, offer_to_all


class Recorder:
    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name
        self.items: list[int] = []

    def offer(self, item: int) -> None:
        self.items.append(item)
        self.log.append(self.name)


async def test_a_burst_is_offered_in_slices_with_the_loop_free_in_between() -> None:
    log: list[str] = []
    subscribers = [Recorder(log, "sub") for _ in range(FAN_OUT_SLICE * 5)]

    async def other_request() -> None:
        log.append("other")

    async def burst() -> None:
        for item in range(3):
            await offer_to_all(subscribers, item)

    other = asyncio.get_running_loop().create_task(other_request())
    await burst()
    await other
    # The other task ran after the first slice, not after all 3 x 320 offers.
    assert log.index("other") == FAN_OUT_SLICE
    assert all(sub.items == [0, 1, 2] for sub in subscribers)


async def test_operations_are_set_up_a_few_at_a_time_per_merchant() -> None:
    slots = SetupSlots(per_merchant=2, per_second=0)
    first = await slots.take("a")
    second = await slots.take("a")
    third = asyncio.get_running_loop().create_task(slots.take("a"))
    other = await asyncio.wait_for(slots.take("b"), 1)  # another merchant never waits for A's turns
    await asyncio.sleep(0)
    assert not third.done()
    first()
    first()  # releasing twice frees one slot only
    release_third = await asyncio.wait_for(third, 1)
    fourth = asyncio.get_running_loop().create_task(slots.take("a"))
    await asyncio.sleep(0)
    assert not fourth.done()
    fourth.cancel()  # a waiter that goes away (its client left) holds nothing
    with contextlib.suppress(asyncio.CancelledError):
        await fourth
    for release in (second, release_third, other):
        release()
    assert slots._slots == {}  # nothing kept for merchants with no operation being set up
