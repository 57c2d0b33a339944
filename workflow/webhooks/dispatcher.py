"""The webhook dispatcher: claims due deliveries, sends them, records each attempt, retries with backoff.

**Claiming.** One short transaction picks due deliveries of enabled endpoints and leases them: it sets
``lease_token`` and moves ``next_attempt_at`` to the end of the lease (``lease_seconds``, four times the
send deadline), and counts the attempt. On PostgreSQL the rows are selected ``FOR UPDATE SKIP LOCKED``, so
two processes never claim the same delivery, and a claimed delivery is not due again before its lease
ends: each delivery has at most one attempt in flight. A process killed mid-attempt leaves the lease to
expire; the delivery is then due again (at least once, never lost). SQLite runs one server process.

**Fairness.** This process keeps at most ``per_endpoint`` attempts in flight to one endpoint,
``per_merchant`` for one merchant and ``total`` in all; each claim serves merchants least recently served
first. A merchant's slow or dead endpoint therefore holds at most ``per_merchant`` of the ``total`` slots,
and another merchant's due delivery waits for at most one claim round plus the time for a slot to free.

**Recording.** Results are written in batches (one transaction for all that finished meanwhile): an attempt
row (status code, latency, error, the start of the answer); the delivery ``delivered`` on 2xx, else due
again after the next delay of ``RETRY_DELAYS`` (each stretched by up to ``JITTER``), ``failed`` after the
last. The update is guarded by the lease token, so a result that arrives after its lease was lost changes
nothing. An endpoint's ``failing_since`` is its first failure since its last success; once that is
``disable_after`` old (a day), the endpoint is disabled with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.db import Database
from storage.tables import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from workflow.live.bus import EventBus
from workflow.webhooks.delivery import AttemptResult, Sender

log = logging.getLogger(__name__)

# After the n-th failed attempt the delivery waits RETRY_DELAYS[n-1] (× 1.0-1.2): 11 attempts over
# 25.7-30.9 hours, then ``failed``.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=10),
)
JITTER = 0.2
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


@dataclass(frozen=True)
class DispatchLimits:
    per_endpoint: int = 8
    per_merchant: int = 16
    total: int = 128
    # Claimed ahead: up to ``prefetch`` times each cap is claimed (queued here, then sent within the caps),
    # so when an attempt ends the next one is at hand instead of one claim round away.
    prefetch: int = 2
    lease_seconds: float = 40.0
    disable_after: timedelta = timedelta(days=1)
    # Every retry delay multiplied by this (1: the documented schedule; the durability benchmark compresses
    # it so that a run ends in minutes).
    retry_scale: float = 1.0


@dataclass(frozen=True)
class Job:
    """One claimed attempt."""

    delivery_id: str
    lease_token: str
    merchant_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    attempt: int
    url: str
    secrets: tuple[str, ...]
    payload: str
    claimed_at: datetime


def endpoint_secrets(endpoint: WebhookEndpoint, now: datetime) -> tuple[str, ...]:
    """The secrets to sign with: the current one, and the previous one until its grace period ends."""
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        return (endpoint.secret, endpoint.previous_secret)
    return (endpoint.secret,)


def retry_delay(attempt: int, rng: random.Random, scale: float = 1.0) -> timedelta | None:
    """How long after failed attempt number ``attempt`` (1-based) the next one is due; None: no more."""
    if attempt > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempt - 1] * (1 + JITTER * rng.random()) * scale


def due_endpoints(session: Session, now: datetime) -> list[tuple[str, str]]:
    """(endpoint, merchant) of enabled endpoints with a due delivery, the longest waiting first."""
    oldest = func.min(WebhookDelivery.next_attempt_at)
    rows = session.exec(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.merchant_id, oldest)
        .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
        .where(
            col(WebhookDelivery.status) == "pending",
            col(WebhookDelivery.next_attempt_at) <= now,
            col(WebhookEndpoint.enabled).is_(True),
        )
        .group_by(col(WebhookDelivery.endpoint_id), col(WebhookDelivery.merchant_id))
        .order_by(oldest)
    ).all()
    return [(endpoint_id, merchant_id) for endpoint_id, merchant_id, _ in rows]


def claim(session: Session, now: datetime, wanted: Sequence[tuple[str, int]], lease: timedelta) -> list[Job]:
    """Lease up to ``n`` due deliveries of each ``(endpoint, n)``; locked rows are skipped (PostgreSQL)."""
    ids: list[str] = []
    for endpoint_id, n in wanted:
        due = session.exec(
            select(WebhookDelivery.id)
            .where(
                col(WebhookDelivery.endpoint_id) == endpoint_id,
                col(WebhookDelivery.status) == "pending",
                col(WebhookDelivery.next_attempt_at) <= now,
            )
            .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.created_at))
            .limit(n)
            .with_for_update(skip_locked=True)
        ).all()
        ids.extend(due)
    if not ids:
        return []
    token = secrets.token_hex(8)
    session.execute(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id).in_(ids))
        .values(
            lease_token=token,
            next_attempt_at=now + lease,
            attempts=WebhookDelivery.attempts + 1,
            last_attempt_at=now,
        )
    )
    d, ev, e = WebhookDelivery, WebhookEvent, WebhookEndpoint
    claimed = session.execute(
        sa_select(  # plain columns, not ORM objects: this runs for every batch of attempts
            col(d.id),
            col(d.merchant_id),
            col(d.attempts),
            col(e.id),
            col(e.url),
            col(e.secret),
            col(e.previous_secret),
            col(e.previous_secret_expires_at),
            col(ev.id),
            col(ev.type),
            col(ev.payload),
        )
        .join(ev, col(ev.id) == col(d.event_id))
        .join(e, col(e.id) == col(d.endpoint_id))
        .where(col(d.id).in_(ids))
    ).all()
    jobs = []
    for row in claimed:
        (
            delivery_id,
            merchant_id,
            attempts,
            endpoint_id,
            url,
            secret,
            previous,
            expires,
            event_id,
            type_,
            payload,
        ) = row
        secrets_ = (secret, previous) if previous and expires is not None and expires > now else (secret,)
        jobs.append(
            Job(
                delivery_id=delivery_id,
                lease_token=token,
                merchant_id=merchant_id,
                endpoint_id=endpoint_id,
                event_id=event_id,
                event_type=type_,
                attempt=attempts,
                url=url,
                secrets=secrets_,
                payload=payload,
                claimed_at=now,
            )
        )
    return jobs


def record(
    session: Session,
    now: datetime,
    results: Sequence[tuple[Job, AttemptResult]],
    limits: DispatchLimits,
    rng: random.Random,
) -> None:
    """Write the attempts and their consequences for the deliveries and the endpoints."""
    if not results:
        return
    # Locks in one order in every process: the endpoints (sorted), then the deliveries (sorted; a delivery
    # belongs to one endpoint, so two recorders never meet on a delivery without meeting on its endpoint).
    _update_endpoints(session, now, results, limits)
    session.execute(
        insert(WebhookAttempt.__table__),  # type: ignore[attr-defined]
        [
            {
                "merchant_id": job.merchant_id,
                "endpoint_id": job.endpoint_id,
                "delivery_id": job.delivery_id,
                "event_id": job.event_id,
                "attempt": job.attempt,
                "started_at": job.claimed_at,
                "status_code": result.status_code,
                "latency_ms": round(result.latency_ms, 3),
                "ok": result.ok,
                "error": result.error,
                "response_excerpt": result.response_excerpt,
            }
            for job, result in results
        ],
    )
    updates: list[dict[str, Any]] = []
    for job, result in results:
        values: dict[str, Any] = {
            "d_id": job.delivery_id,
            "d_token": job.lease_token,
            "v_code": result.status_code,
            "v_error": result.error,
            "v_delivered": None,
        }
        if result.ok:
            values.update(v_status="delivered", v_delivered=now, v_next=now)
        else:
            delay = retry_delay(job.attempt, rng, limits.retry_scale)
            if delay is None:
                values.update(v_status="failed", v_next=now)
            else:
                values.update(v_status="pending", v_next=now + delay)
        updates.append(values)
    table = WebhookDelivery.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(and_(table.c.id == bindparam("d_id"), table.c.lease_token == bindparam("d_token")))
        .values(
            status=bindparam("v_status"),
            next_attempt_at=bindparam("v_next"),
            lease_token=None,
            last_status_code=bindparam("v_code"),
            last_error=bindparam("v_error"),
            delivered_at=bindparam("v_delivered"),
        )
    )
    session.connection().execute(statement, sorted(updates, key=lambda u: str(u["d_id"])))


def _update_endpoints(
    session: Session, now: datetime, results: Sequence[tuple[Job, AttemptResult]], limits: DispatchLimits
) -> None:
    """``failing_since`` set at an endpoint's first failure, cleared by a success; disabled after
    ``disable_after``. Read without a lock first: the common batch (successes to a healthy endpoint)
    changes no endpoint and takes no endpoint lock; the endpoints that change are then locked (sorted) and
    decided again on what the lock shows."""
    by_endpoint: dict[str, list[tuple[Job, AttemptResult]]] = {}
    for job, result in results:
        by_endpoint.setdefault(job.endpoint_id, []).append((job, result))
    e = WebhookEndpoint
    seen = session.execute(
        sa_select(col(e.id), col(e.failing_since)).where(col(e.id).in_(sorted(by_endpoint)))
    ).all()
    # Unchanged: a healthy endpoint (not failing) with a success in the batch. Every other one is set
    # failing, cleared, or checked against ``disable_after``.
    changing = sorted(
        endpoint_id
        for endpoint_id, failing_since in seen
        if failing_since is not None or not any(r.ok for _, r in by_endpoint[endpoint_id])
    )
    if not changing:
        return
    endpoints = session.exec(
        select(WebhookEndpoint)
        .where(col(WebhookEndpoint.id).in_(changing))
        .order_by(col(WebhookEndpoint.id))
        .with_for_update()
    ).all()
    for endpoint in endpoints:
        outcomes = sorted(by_endpoint[endpoint.id], key=lambda jr: jr[0].claimed_at)
        if any(result.ok for _, result in outcomes):
            if endpoint.failing_since is not None:
                endpoint.failing_since = None
                session.add(endpoint)
            continue
        first_failure = outcomes[0][0].claimed_at
        if endpoint.failing_since is None:
            endpoint.failing_since = first_failure
            session.add(endpoint)
        if endpoint.enabled and now - endpoint.failing_since >= limits.disable_after:
            last_error = outcomes[-1][1].error or "failed"
            endpoint.enabled = False
            endpoint.disabled_at = now
            endpoint.disabled_reason = (
                f"disabled automatically: every delivery has failed since "
                f"{endpoint.failing_since.isoformat()} (last error: {last_error})"
            )
            endpoint.updated_at = now
            session.add(endpoint)
            log.warning("webhook endpoint %s disabled: %s", endpoint.id, endpoint.disabled_reason)


class DispatchServices(Protocol):
    """What the dispatcher uses of ``WorkflowServices``: the clock, and the bus whose outbox commits wake it
    (``bookbag webhooks dispatch`` passes just these, without the policy engine and the classifier)."""

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def bus(self) -> EventBus: ...


@dataclass
class _InFlight:
    endpoints: Counter[str] = field(default_factory=Counter)
    merchants: Counter[str] = field(default_factory=Counter)
    total: int = 0


class WebhookDispatcher:
    """The loop ``bookbag serve`` runs: claim due deliveries (woken by this process's outbox commits, else
    every ``poll_seconds``), send each in its own task within the fairness caps, record results in batches."""

    def __init__(
        self,
        db: Database,
        services: DispatchServices,
        sender: Sender,
        *,
        limits: DispatchLimits | None = None,
        poll_seconds: float = 1.0,
        coalesce_seconds: float = 0.02,
        record_seconds: float = 0.05,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._services = services
        self.sender = sender
        self.limits = limits or DispatchLimits()
        self.poll_seconds = poll_seconds
        self._coalesce = coalesce_seconds
        self._record_delay = record_seconds
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._rng = rng or random.Random()
        self._in_flight = _InFlight()
        self._served: dict[str, int] = {}
        self._round = 0
        self._results: list[tuple[Job, AttemptResult]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._recorder: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._backlog = False

    # -- waking -------------------------------------------------------------------------------------------
    def attach(self) -> None:
        """Be woken by this process's commits that wrote outbox rows (call from the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._services.bus.add_outbox_listener(self.wake)

    def wake(self) -> None:
        """Thread-safe: claim soon (after a commit that wrote deliveries)."""
        loop, event = self._loop, self._wake
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(event.set)

    # -- one round ----------------------------------------------------------------------------------------
    def _allocate(self, due: Sequence[tuple[str, str]]) -> list[tuple[str, int]]:
        """How many of each endpoint's due deliveries to claim now, within the caps (times ``prefetch``:
        claimed counts queued and in-flight attempts), merchants least recently served first."""
        flying, k = self._in_flight, self.limits.prefetch
        limits = DispatchLimits(
            per_endpoint=self.limits.per_endpoint * k,
            per_merchant=self.limits.per_merchant * k,
            total=self.limits.total * k,
        )
        by_merchant: dict[str, list[str]] = {}
        for endpoint_id, merchant_id in due:
            by_merchant.setdefault(merchant_id, []).append(endpoint_id)
        order = sorted(by_merchant, key=lambda m: self._served.get(m, -1))
        free_total = limits.total - flying.total
        wanted: list[tuple[str, int]] = []
        self._backlog = False
        for merchant_id in order:
            free_merchant = limits.per_merchant - flying.merchants[merchant_id]
            for endpoint_id in by_merchant[merchant_id]:
                n = min(limits.per_endpoint - flying.endpoints[endpoint_id], free_merchant, free_total)
                if n <= 0:
                    self._backlog = True
                    continue
                wanted.append((endpoint_id, n))
                free_merchant -= n
                free_total -= n
            self._round += 1
            self._served[merchant_id] = self._round
        return wanted

    def _claim_due(self) -> list[Job]:
        now = self._services.clock()
        with self._db.read_only() as session:
            due = due_endpoints(session, now)
        wanted = self._allocate(due)
        if not wanted:
            return []
        with self._db.unit_of_work() as session:
            jobs = claim(session, now, wanted, timedelta(seconds=self.limits.lease_seconds))
        if sum(n for _, n in wanted) == len(jobs):
            self._backlog = True  # each endpoint may have more due than it was given
        return jobs

    def _take(self, job: Job) -> None:
        flying = self._in_flight
        flying.endpoints[job.endpoint_id] += 1
        flying.merchants[job.merchant_id] += 1
        flying.total += 1

    def _release(self, job: Job) -> None:
        flying = self._in_flight
        flying.endpoints[job.endpoint_id] -= 1
        flying.merchants[job.merchant_id] -= 1
        flying.total -= 1
        if flying.endpoints[job.endpoint_id] <= 0:
            del flying.endpoints[job.endpoint_id]  # its semaphore is dropped below: nobody holds it now
        if flying.merchants[job.merchant_id] <= 0:
            del flying.merchants[job.merchant_id]
            self._slots.pop("m:" + job.merchant_id, None)
        if job.endpoint_id not in flying.endpoints:
            self._slots.pop("e:" + job.endpoint_id, None)

    def _slot(self, key: str, size: int) -> asyncio.Semaphore:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = asyncio.Semaphore(size)
        return slot

    async def _attempt(self, job: Job) -> AttemptResult | None:
        """Send ``job`` once a slot of its endpoint, its merchant and the process is free (taken in that
        order, so a holder of a merchant slot is always sending). None: not sent, because its lease would
        end before the attempt's deadline (it is then claimed again after the lease, maybe elsewhere)."""
        limits = self.limits
        try:
            async with (
                self._slot("e:" + job.endpoint_id, limits.per_endpoint),
                self._slot("m:" + job.merchant_id, limits.per_merchant),
                self._slot("*", limits.total),
            ):
                if self._services.clock() > self._send_by(job):
                    return None
                return await self.sender.send(job.url, job.secrets, job.event_id, job.payload)
        finally:
            self._release(job)

    def _send_by(self, job: Job) -> datetime:
        """The latest start for ``job``'s attempt: its deadline still inside the lease (with a second to spare)."""
        return job.claimed_at + timedelta(seconds=self.limits.lease_seconds - self.sender.timeout - 1.0)

    def _record(self, results: Sequence[tuple[Job, AttemptResult]]) -> None:
        with self._db.unit_of_work() as session:
            record(session, self._services.clock(), results, self.limits, self._rng)

    async def run_once(self) -> list[tuple[Job, AttemptResult]]:
        """Claim what is due now, send it all, record the results: one round, for tests and tools."""
        jobs = await asyncio.to_thread(self._claim_due)
        for job in jobs:
            self._take(job)
        sent = await asyncio.gather(*(self._attempt(j) for j in jobs))
        results = [(job, result) for job, result in zip(jobs, sent, strict=True) if result is not None]
        await asyncio.to_thread(self._record, results)
        return results

    # -- the loop -----------------------------------------------------------------------------------------
    async def _send_and_queue(self, job: Job) -> None:
        result = await self._attempt(job)
        if result is not None:
            self._results.append((job, result))
        if self._results and (self._recorder is None or self._recorder.done()):
            self._recorder = asyncio.create_task(self._record_pending(), name="bookbag-webhook-recorder")
        if self._backlog and self._wake is not None:
            self._wake.set()

    async def _record_pending(self) -> None:
        while self._results:
            # The results of the next ``record_seconds`` join this one: one transaction for all of them.
            await asyncio.sleep(self._record_delay)
            batch, self._results = self._results, []
            try:
                await asyncio.to_thread(self._record, batch)
            except asyncio.CancelledError:
                self._results[:0] = batch
                raise
            except Exception:  # the leases expire and the deliveries are attempted again
                log.exception("recording %d webhook attempt(s) failed", len(batch))

    async def run(self) -> None:
        if self._wake is None:
            self.attach()
        assert self._wake is not None
        try:
            while True:
                self._wake.clear()
                try:
                    jobs = await asyncio.to_thread(self._claim_due)
                except Exception:
                    log.exception("claiming webhook deliveries failed")
                    jobs = []
                for job in jobs:
                    self._take(job)
                    task = asyncio.create_task(self._send_and_queue(job))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                # Woken by a commit or a freed slot: let the next few arrive too, then claim them together
                # (at most one claim per ``coalesce_seconds`` instead of one per event).
                await asyncio.sleep(self._coalesce)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._recorder is not None:
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)
        if self._results:  # what finished is recorded; what was cut off is attempted again after its lease
            batch, self._results = self._results, []
            try:
                await asyncio.to_thread(self._record, batch)
            except Exception:
                log.exception("recording webhook attempts at shutdown failed")
        await self.sender.close()
