"""The live queue hub: per merchant, coalesced queue snapshots computed once and fanned out to every subscriber.

A change to a merchant's queue only marks the merchant dirty (``notify``, callable from any thread). The
first change after a quiet spell is flushed at once; further changes within ``coalesce_seconds`` of the last
flush wait for the next one, so a burst of a thousand writes yields a handful of snapshots, and each flush
runs ``queue_snapshot`` once (in a worker thread) for all of that merchant's subscribers. A subscriber holds
only the latest snapshot it has not yet taken, so a slow client skips intermediate versions instead of
queueing them, and memory per subscriber stays constant.

A subscriber may also give a synchronous ``push``: the flush then hands it each new snapshot directly, in
one loop over the channel's subscribers, without waking a task per subscriber (the websocket layer writes
the already-encoded frame to the socket there). What a push declines (a slow connection) goes the task way,
and nothing is pushed while the task still holds an earlier snapshot, so a subscriber's versions stay in
order.

The hub remembers the version it last sent per merchant; :meth:`QueueHub.safety_check` compares it with the
database and resends where they differ, so a lost signal (a dropped LISTEN connection) never leaves a
dashboard stale for longer than one check interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from storage.db import Database
from storage.tables import QueueState
from workflow.live.bus import EventBus, TicketEvent, offer_to_all
from workflow.queue import QueueSnapshot, StageDuration, queue_snapshot, time_in_stage

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SnapshotFn = Callable[[Session, str], QueueSnapshot]
# A new subscriber shares the channel's last snapshot when it is at most this old (else one is computed).
SHARE_SNAPSHOT_SECONDS = 1.0
TIME_IN_STAGE_WINDOW = timedelta(days=7)
TIME_IN_STAGE_REFRESH = timedelta(seconds=30)


# A subscriber's synchronous delivery: True when the snapshot was delivered on the spot (e.g. its bytes written
# to the subscriber's socket); False hands it to the subscriber's own task instead.
Push = Callable[[QueueSnapshot], bool]


@dataclass(eq=False)
class _Subscriber:
    merchant_id: str
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    latest: QueueSnapshot | None = None
    last_version: int = -1
    push: Push | None = None
    # The subscriber's task holds a snapshot it has not finished with: a later one must not overtake it.
    busy: bool = False

    def offer(self, snapshot: QueueSnapshot) -> None:
        # Versions only move forward for a subscriber; the same version again is nothing new.
        if snapshot.version <= self.last_version:
            return
        self.last_version = snapshot.version
        if self.push is not None and self.latest is None and not self.busy:
            try:
                if self.push(snapshot):
                    return
            except Exception:  # a failing push must not stop the fan-out to the others: the slow path retries
                log.exception("queue snapshot push failed")
        self.latest = snapshot
        self.wakeup.set()


@dataclass(eq=False)
class _Channel:
    merchant_id: str
    subscribers: set[_Subscriber] = field(default_factory=set)
    dirty: bool = False
    flusher: asyncio.Task[None] | None = None
    last_flush: float = float("-inf")
    last_sent_version: int | None = None
    latest: QueueSnapshot | None = None
    latest_at: float = float("-inf")


@dataclass
class HubStats:
    snapshots_computed: int = 0
    notifications: int = 0
    safety_resends: int = 0


class QueueHub:
    """Owns every ``queueUpdates`` subscription of this process. Use from one event loop; ``notify`` may be
    called from any thread."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock,
        coalesce_seconds: float = 0.2,
        snapshot: SnapshotFn | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._coalesce = max(0.0, coalesce_seconds)
        self._snapshot = snapshot or self._queue_snapshot
        # Time-in-stage statistics cover days of transitions and move slowly: recomputed at most every
        # TIME_IN_STAGE_REFRESH per merchant instead of on every flush (a scan that grows with the window),
        # and off the delivery path: a flush that finds them stale sends the previous ones and has them
        # refreshed in the background, so the live counts never wait for a 7-day scan.
        self._time_in_stage: dict[str, tuple[datetime, list[StageDuration]]] = {}
        self._tis_refreshing: set[str] = set()
        self._tis_pool: ThreadPoolExecutor | None = None
        self._tis_lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self.stats = HubStats()

    # -- lifecycle ---------------------------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the hub to the loop its subscribers run on (done by ``subscribe`` automatically)."""
        with self._loop_lock:
            self._loop = loop

    async def close(self) -> None:
        tasks = [ch.flusher for ch in self._channels.values() if ch.flusher is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with self._tis_lock:
            pool, self._tis_pool = self._tis_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        with self._loop_lock:
            self._loop = None

    # -- signals -------------------------------------------------------------------------------------------

    def notify(self, merchant_id: str) -> None:
        """The merchant's queue changed (committed). Thread-safe and non-blocking."""
        with self._loop_lock:
            loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: the process is shutting down
            loop.call_soon_threadsafe(self._mark_dirty, merchant_id)

    def _mark_dirty(self, merchant_id: str, *, immediate: bool = False) -> None:
        self.stats.notifications += 1
        channel = self._channels.get(merchant_id)
        if channel is None:  # nobody watches this merchant here: nothing to compute
            return
        channel.dirty = True
        if immediate:
            channel.last_flush = float("-inf")
        if channel.flusher is None:
            channel.flusher = asyncio.get_running_loop().create_task(self._flush(channel))

    async def _flush(self, channel: _Channel) -> None:
        try:
            while channel.dirty and channel.subscribers:
                wait = channel.last_flush + self._coalesce - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                channel.dirty = False
                channel.last_flush = time.monotonic()
                try:
                    snapshot = await asyncio.to_thread(self._compute, channel.merchant_id)
                except Exception:
                    log.exception("queue snapshot for %s failed", channel.merchant_id)
                    continue  # the next signal or safety check retries
                channel.latest, channel.latest_at = snapshot, time.monotonic()
                channel.last_sent_version = snapshot.version
                await offer_to_all(list(channel.subscribers), snapshot)
        finally:
            channel.flusher = None

    def _queue_snapshot(self, session: Session, merchant_id: str) -> QueueSnapshot:
        now = self._clock()
        snap = queue_snapshot(session, merchant_id, now, window=timedelta(0))
        with self._tis_lock:
            cached = self._time_in_stage.get(merchant_id)
            stale = cached is not None and (now - cached[0] >= TIME_IN_STAGE_REFRESH or now < cached[0])
            refresh = stale and merchant_id not in self._tis_refreshing
            if refresh:
                self._tis_refreshing.add(merchant_id)
                if self._tis_pool is None:
                    self._tis_pool = ThreadPoolExecutor(1, thread_name_prefix="bookbag-time-in-stage")
                self._tis_pool.submit(self._refresh_time_in_stage, merchant_id, now)
        if cached is None:  # the first snapshot of a channel computes them in line
            cached = (now, time_in_stage(session, merchant_id, since=now - TIME_IN_STAGE_WINDOW))
            with self._tis_lock:
                self._time_in_stage[merchant_id] = cached
        return replace(snap, time_in_stage=cached[1])

    def _refresh_time_in_stage(self, merchant_id: str, now: datetime) -> None:
        try:
            with self._db.read_only() as session:
                stats = time_in_stage(session, merchant_id, since=now - TIME_IN_STAGE_WINDOW)
            with self._tis_lock:
                if merchant_id in self._time_in_stage:  # else: nobody watches the merchant any more
                    self._time_in_stage[merchant_id] = (now, stats)
        except Exception:
            log.exception("time-in-stage statistics for %s failed", merchant_id)
        finally:
            with self._tis_lock:
                self._tis_refreshing.discard(merchant_id)

    def _compute(self, merchant_id: str) -> QueueSnapshot:
        with self._db.read_only() as session:
            snapshot = self._snapshot(session, merchant_id)
        self.stats.snapshots_computed += 1
        return snapshot

    # -- safety check --------------------------------------------------------------------------------------

    def watched_merchants(self) -> list[str]:
        return [m for m, ch in self._channels.items() if ch.subscribers]

    async def safety_check(self) -> int:
        """Resend to merchants whose database queue version differs from the last one sent; returns how many."""
        merchants = self.watched_merchants()
        if not merchants:
            return 0
        versions = await asyncio.to_thread(self._versions, merchants)
        stale = 0
        for merchant_id in merchants:
            channel = self._channels.get(merchant_id)
            if channel is None or not channel.subscribers:
                continue
            if versions.get(merchant_id, 0) != channel.last_sent_version:
                stale += 1
                self._mark_dirty(merchant_id, immediate=True)
        self.stats.safety_resends += stale
        return stale

    def _versions(self, merchant_ids: list[str]) -> dict[str, int]:
        with self._db.read_only() as session:
            rows = session.exec(
                select(QueueState.merchant_id, QueueState.version).where(
                    col(QueueState.merchant_id).in_(merchant_ids)
                )
            ).all()
        return {merchant_id: int(version) for merchant_id, version in rows}

    async def run_safety_checks(self, interval: float) -> None:
        """Run :meth:`safety_check` every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.safety_check()
            except Exception:
                log.exception("queue safety check failed")

    # -- subscriptions -------------------------------------------------------------------------------------

    def subscriber_count(self, merchant_id: str | None = None) -> int:
        if merchant_id is None:
            return sum(len(ch.subscribers) for ch in self._channels.values())
        channel = self._channels.get(merchant_id)
        return 0 if channel is None else len(channel.subscribers)

    def channel_count(self) -> int:
        return len(self._channels)

    @asynccontextmanager
    async def subscribe(
        self, merchant_id: str, *, after_version: int = -1, push: Push | None = None
    ) -> AsyncIterator[AsyncIterator[QueueSnapshot]]:
        """``async with hub.subscribe(m) as snapshots: async for s in snapshots: ...`` — the first item is a
        current snapshot, then one per coalesced change. Leaving the block (or cancellation) unsubscribes.

        ``after_version``: only snapshots with a higher version are delivered (the subscriber has seen that
        one). ``push``: called synchronously by the fan-out for each new snapshot, in version order; what it
        declines (returns False) goes to the iterator instead, and while the iterator's consumer holds a
        snapshot nothing is pushed, so deliveries never overtake each other."""
        if self._loop is None:
            self.bind(asyncio.get_running_loop())
        channel = self._channels.get(merchant_id)
        if channel is None:
            channel = self._channels[merchant_id] = _Channel(merchant_id)
        sub = _Subscriber(merchant_id, last_version=after_version, push=push)
        channel.subscribers.add(sub)
        try:
            fresh = time.monotonic() - channel.latest_at <= SHARE_SNAPSHOT_SECONDS
            if channel.latest is not None and fresh and not channel.dirty:
                # Two thousand dashboards opening at once must not mean two thousand queries.
                sub.offer(channel.latest)
            else:
                self._mark_dirty(merchant_id)
            yield self._stream(sub)
        finally:
            channel.subscribers.discard(sub)
            if not channel.subscribers and self._channels.get(merchant_id) is channel:
                del self._channels[merchant_id]
                with self._tis_lock:
                    self._time_in_stage.pop(merchant_id, None)
                if channel.flusher is not None:
                    channel.flusher.cancel()

    @staticmethod
    async def _stream(sub: _Subscriber) -> AsyncIterator[QueueSnapshot]:
        while True:
            # The consumer asked for the next item: it is done with the previous one.
            sub.busy = False
            await sub.wakeup.wait()
            sub.wakeup.clear()
            snapshot, sub.latest = sub.latest, None
            if snapshot is not None:
                sub.busy = True
                yield snapshot


def feed_from_bus(hub: QueueHub, bus: EventBus) -> None:
    """In-process signals: every committed event that changed the queue marks its merchant dirty."""

    def listener(event: TicketEvent) -> None:
        if event.queue_changed:
            hub.notify(event.merchant_id)

    bus.add_listener(listener)
