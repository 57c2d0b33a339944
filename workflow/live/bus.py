"""The in-process event bus: ticket events fanned out to async subscribers, published after commit.

``publish`` is thread-safe (units of work run in worker threads) and never blocks: each subscriber has a
bounded queue, and a subscriber that cannot keep up is told it overflowed and dropped rather than letting
memory grow. Cross-process delivery (PostgreSQL LISTEN/NOTIFY) is layered on top via listeners.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlmodel import Session

from storage.db import after_commit
from workflow.webhooks import outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TicketEvent:
    # created, message_added, transitioned, assigned, updated, action_decided, action_approved,
    # action_rejected, action_executing, action_completed, action_timed_out, escalated, sla_breached, ...
    kind: str
    merchant_id: str
    ticket_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    queue_changed: bool = True


# Subscribers offered an item between two yields to the event loop: a fan-out to thousands of websockets
# (each offer writes a frame) runs in slices of about a millisecond, so other requests are served in
# between instead of waiting for the whole burst (2,000 subscribers: ~40-100 ms of frames per event).
FAN_OUT_SLICE = 64
T_contra = TypeVar("T_contra", contravariant=True)


class Offerable(Protocol[T_contra]):
    def offer(self, item: T_contra, /) -> None: ...


async def offer_to_all(subscribers: Iterable[Offerable[T_contra]], item: T_contra) -> None:
    """``subscriber.offer(item)`` for each, in order, yielding to the event loop every ``FAN_OUT_SLICE``.
    Callers offer one item to everyone before the next, so each subscriber still sees items in order."""
    for index, subscriber in enumerate(subscribers, start=1):
        subscriber.offer(item)
        if index % FAN_OUT_SLICE == 0:
            await asyncio.sleep(0)


class Overflowed(Exception):
    """The subscriber fell too far behind and was dropped."""


@dataclass(eq=False)
class _Subscription:
    merchant_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[TicketEvent | None]
    overflowed: bool = False


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EventBus:
    def __init__(self, max_queue: int = 1000, clock: Callable[[], datetime] = _utcnow) -> None:
        self._max_queue = max_queue
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[_Subscription]] = {}
        self._listeners: list[Callable[[TicketEvent], None]] = []
        self._outbox_listeners: list[Callable[[], None]] = []
        # The workflow's clock (see ``bind_clock``): outbox rows are written and due at this clock's time.
        self.clock = clock
        self._clock_bound = False

    def bind_clock(self, clock: Callable[[], datetime]) -> None:
        """Take the clock of the first ``WorkflowServices`` built with this bus. Copies of those services
        with another clock (a scheduler tick's frozen time, ``dataclasses.replace``) share the bus and must
        not change it for everyone else."""
        if not self._clock_bound:
            self.clock = clock
            self._clock_bound = True

    def add_outbox_listener(self, listener: Callable[[], None]) -> None:
        """Called (cheap, non-blocking) after a commit that wrote webhook outbox rows: wakes a dispatcher."""
        with self._lock:
            self._outbox_listeners.append(listener)

    def outbox_written(self) -> None:
        with self._lock:
            listeners = list(self._outbox_listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("outbox listener failed")

    def add_listener(self, listener: Callable[[TicketEvent], None]) -> None:
        """A synchronous callback run for every published event (keep it cheap and non-blocking)."""
        with self._lock:
            self._listeners.append(listener)

    def subscriber_count(self, merchant_id: str | None = None) -> int:
        with self._lock:
            if merchant_id is None:
                return sum(len(s) for s in self._subscriptions.values())
            return len(self._subscriptions.get(merchant_id, ()))

    def publish(self, event: TicketEvent) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions.get(event.merchant_id, ()))
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")
        for sub in subscriptions:
            try:
                sub.loop.call_soon_threadsafe(self._deliver, sub, event)
            except RuntimeError:  # the subscriber's loop is closed: it is gone
                self._remove(sub)

    def _deliver(self, sub: _Subscription, event: TicketEvent) -> None:
        if sub.overflowed:
            return
        if sub.queue.qsize() >= self._max_queue:
            sub.overflowed = True
            sub.queue.put_nowait(None)
            return
        sub.queue.put_nowait(event)

    def _remove(self, sub: _Subscription) -> None:
        with self._lock:
            subs = self._subscriptions.get(sub.merchant_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscriptions[sub.merchant_id]

    @asynccontextmanager
    async def subscribe(self, merchant_id: str) -> AsyncIterator[AsyncIterator[TicketEvent]]:
        """``async with bus.subscribe(m) as events: async for e in events: ...``; removed on exit."""
        sub = _Subscription(merchant_id, asyncio.get_running_loop(), asyncio.Queue())
        with self._lock:
            self._subscriptions.setdefault(merchant_id, set()).add(sub)

        async def events() -> AsyncIterator[TicketEvent]:
            while True:
                item = await sub.queue.get()
                if item is None:
                    raise Overflowed(f"subscriber for {merchant_id} fell behind by {self._max_queue} events")
                yield item

        try:
            yield events()
        finally:
            self._remove(sub)


def publish_after_commit(session: Session, bus: EventBus, event: TicketEvent) -> None:
    """The one place events are emitted: published on the bus after commit, and written to the webhook
    outbox in this same transaction when the merchant has an endpoint subscribed to it."""
    outbox.stage(session, bus, event)
    after_commit(session, lambda: bus.publish(event))
