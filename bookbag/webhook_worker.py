"""``bookbag webhooks dispatch``: the webhook dispatcher in a process of its own.

With ``BOOKBAG_WEBHOOK_DISPATCHER=off`` the API processes only write the outbox (in the transaction of each
change) and this process sends: the API's CPU goes to the API, the dispatcher's to another core. It needs
no policy engine, classifier or HTTP server: a database, the clock and the dispatcher
(:func:`build_webhook_dispatcher`, the one ``serve`` runs inline too); it imports none of the workflow's
heavy parts (the classifier's LightGBM), so it starts in about a second.

How it learns of new rows: on PostgreSQL by LISTEN on ``bookbag_webhooks`` (``workflow.webhooks.wake``;
every outbox-writing transaction notifies), else every ``webhook_poll_seconds``; on SQLite nothing crosses
processes, so it polls, every 0.1 s unless ``BOOKBAG_WEBHOOK_POLL_SECONDS`` says otherwise (one indexed
query per poll). Several such processes may run on PostgreSQL (claims take ``FOR UPDATE SKIP LOCKED``
and leases: each delivery has at most one attempt in flight); on SQLite claims are write transactions
(``BEGIN IMMEDIATE``), serialized across processes, so several claimers are equally safe, only no faster.
SIGTERM/SIGINT stop it: attempts in flight are cut off (their leases expire and they are attempted again),
the results already in are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bookbag.settings import Settings
from storage.db import Database
from workflow.live.bus import EventBus
from workflow.webhooks.delivery import Sender
from workflow.webhooks.dispatcher import DispatchLimits, DispatchServices, WebhookDispatcher
from workflow.webhooks.wake import listen

log = logging.getLogger("bookbag.webhooks")

SQLITE_POLL_SECONDS = 0.1


def build_webhook_dispatcher(
    settings: Settings, database: Database, services: DispatchServices, *, poll_seconds: float | None = None
) -> WebhookDispatcher:
    sender = Sender(timeout=settings.webhook_timeout_seconds, allow_private=settings.webhook_allow_private)
    limits = DispatchLimits(
        per_endpoint=settings.webhook_max_in_flight_per_endpoint,
        per_merchant=settings.webhook_max_in_flight_per_merchant,
        total=settings.webhook_max_in_flight,
        lease_seconds=4 * settings.webhook_timeout_seconds,
        disable_after=timedelta(hours=settings.webhook_disable_after_hours),
        retry_scale=settings.webhook_retry_scale,
    )
    poll = settings.webhook_poll_seconds if poll_seconds is None else poll_seconds
    return WebhookDispatcher(database, services, sender, limits=limits, poll_seconds=poll)


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class WorkerServices:
    """What the dispatcher needs of the workflow services (``DispatchServices``)."""

    clock: Callable[[], datetime] = system_clock
    bus: EventBus = field(default_factory=EventBus)


def poll_seconds(settings: Settings, database: Database) -> float:
    if database.is_postgres or "webhook_poll_seconds" in settings.model_fields_set:
        return settings.webhook_poll_seconds
    return SQLITE_POLL_SECONDS


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Dispatch until ``stop`` is set (or SIGTERM/SIGINT when it is not given)."""
    database = Database.from_url(settings.resolved_database_url())
    dispatcher = build_webhook_dispatcher(
        settings, database, WorkerServices(), poll_seconds=poll_seconds(settings, database)
    )
    dispatcher.attach()
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(dispatcher.run(), name="bookbag-webhooks")]
    if database.is_postgres:
        from workflow.live.pg_listener import libpq_conninfo

        conninfo = libpq_conninfo(settings.resolved_database_url())
        tasks.append(asyncio.create_task(listen(conninfo, dispatcher.wake), name="bookbag-webhooks-listen"))
    if not database.is_postgres:
        log.warning(
            "SQLite: this process and the API take turns at the one write lock across processes (SQLite's "
            "busy handler, not a queue); under heavy write load the API's requests wait longer. Measured "
            "only under load so far; the inline dispatcher is the tested shape on SQLite."
        )
    log.info(
        "webhook dispatcher running (%s, %s)",
        "PostgreSQL, LISTEN bookbag_webhooks" if database.is_postgres else "SQLite",
        f"polling every {dispatcher.poll_seconds:g} s",
    )
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        database.dispose()
