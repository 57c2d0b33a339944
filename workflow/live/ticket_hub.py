"""Ticket events for ``ticketEvents`` subscribers, per merchant: one event-bus subscription per merchant in
this process however many subscribers it has, and each event handed to every subscriber in one loop.

Like the queue hub (``workflow.live.queue_hub``), a subscriber may give a synchronous ``push`` (the websocket layer
writes an already-encoded frame there, without waking a task per subscriber). Unlike queue snapshots, events
are not coalesced: what a push declines goes to the subscriber's own ordered queue, nothing is pushed while
that queue holds events or its task is busy with one (so events never overtake each other), and a
subscriber whose queue reaches ``max_pending`` is told it overflowed (``workflow.live.bus.Overflowed``).

A subscriber only ever receives the events of the merchant it subscribed for: the channel is the bus's
subscription for that merchant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from workflow.live.bus import EventBus, Overflowed, TicketEvent, offer_to_all

log = logging.getLogger(__name__)

# True when the event was delivered on the spot (or is of no interest to the subscriber); False hands it to
# the subscriber's own task.
EventPush = Callable[[TicketEvent], bool]


@dataclass(eq=False)
class _EventSubscriber:
    push: EventPush | None
    max_pending: int
    pending: deque[TicketEvent] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    busy: bool = False  # the subscriber's task holds an event it has not finished with
    overflowed: bool = False

    def offer(self, event: TicketEvent) -> None:
        if self.overflowed:
            return
        if self.push is not None and not self.pending and not self.busy:
            try:
                if self.push(event):
                    return
            except Exception:  # a failing push must not stop the fan-out to the others: the task retries
                log.exception("ticket event push failed")
        if len(self.pending) >= self.max_pending:
            self.overflowed = True
            self.pending.clear()
        else:
            self.pending.append(event)
        self.wakeup.set()


@dataclass(eq=False)
class _EventChannel:
    merchant_id: str
    subscribers: set[_EventSubscriber] = field(default_factory=set)
    pump: asyncio.Task[None] | None = None
    bus_subscription: AsyncExitStack = field(default_factory=AsyncExitStack)
    closed: bool = False


class TicketEventHub:
    """Owns the fast-path ``ticketEvents`` subscriptions of this process. Use from one event loop."""

    def __init__(self, bus: EventBus, *, max_pending: int = 1000) -> None:
        self._bus = bus
        self._max_pending = max_pending
        self._channels: dict[str, _EventChannel] = {}

    def subscriber_count(self, merchant_id: str | None = None) -> int:
        if merchant_id is None:
            return sum(len(ch.subscribers) for ch in self._channels.values())
        channel = self._channels.get(merchant_id)
        return 0 if channel is None else len(channel.subscribers)

    def channel_count(self) -> int:
        return len(self._channels)

    @asynccontextmanager
    async def subscribe(
        self, merchant_id: str, *, push: EventPush | None = None
    ) -> AsyncIterator[AsyncIterator[TicketEvent]]:
        """``async with hub.subscribe(m, push=...) as events: async for e in events: ...``: the merchant's
        events committed from now on, each once, in order; leaving the block unsubscribes."""
        channel = self._channels.get(merchant_id)
        if channel is None:
            channel = await self._open(merchant_id)
        sub = _EventSubscriber(push=push, max_pending=self._max_pending)
        channel.subscribers.add(sub)
        try:
            yield self._stream(sub, merchant_id)
        finally:
            channel.subscribers.discard(sub)
            if not channel.subscribers:
                await self._close(channel)

    async def close(self) -> None:
        for channel in list(self._channels.values()):
            await self._close(channel)

    async def _open(self, merchant_id: str) -> _EventChannel:
        channel = _EventChannel(merchant_id)
        # Registered on the bus before the subscriber is told it is subscribed: nothing committed after
        # this point is missed.
        events = await channel.bus_subscription.enter_async_context(self._bus.subscribe(merchant_id))
        channel.pump = asyncio.get_running_loop().create_task(
            self._pump(channel, events), name=f"bookbag-ticket-events-{merchant_id}"
        )
        self._channels[merchant_id] = channel
        return channel

    async def _close(self, channel: _EventChannel) -> None:
        if channel.closed:
            return
        channel.closed = True
        if self._channels.get(channel.merchant_id) is channel:
            del self._channels[channel.merchant_id]
        if channel.pump is not None:
            channel.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await channel.pump
        await channel.bus_subscription.aclose()

    async def _pump(self, channel: _EventChannel, events: AsyncIterator[TicketEvent]) -> None:
        try:
            async for event in events:
                await offer_to_all(list(channel.subscribers), event)
        except Overflowed:
            # This process fell a whole bus queue behind: every subscriber of the channel may have missed
            # events, so each is told; the next subscriber opens a fresh channel.
            log.warning("ticket events for %s overflowed; ending its subscriptions", channel.merchant_id)
            if self._channels.get(channel.merchant_id) is channel:
                del self._channels[channel.merchant_id]
            for sub in channel.subscribers:
                sub.overflowed = True
                sub.wakeup.set()

    async def _stream(self, sub: _EventSubscriber, merchant_id: str) -> AsyncIterator[TicketEvent]:
        while True:
            # The consumer asked for the next event: it is done with the previous one.
            sub.busy = False
            if not sub.pending and not sub.overflowed:
                sub.wakeup.clear()
                await sub.wakeup.wait()
            if sub.overflowed:
                raise Overflowed(
                    f"ticket events subscriber for {merchant_id} fell {self._max_pending} behind"
                )
            if sub.pending:
                sub.busy = True
                yield sub.pending.popleft()
