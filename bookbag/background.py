"""The server's background work, started in the app's lifespan: the live queue (in-process signals, the
PostgreSQL LISTEN connection, the periodic version safety check), key revocations from other processes
(the same LISTEN connection: a revoked key is dropped from the principal cache and its websockets close),
the cross-process ticket-event relay (PostgreSQL), the scheduler loop and the webhook dispatcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from workflow.live.pg_listener import QueueListener
from workflow.live.pg_notify import EventRelay
from workflow.live.queue_hub import QueueHub, feed_from_bus
from workflow.scheduler import SchedulerLoop
from workflow.tenancy.merchants import KEYS_CHANNEL
from workflow.tickets.lifecycle import retention_loop
from workflow.webhooks.delivery import Sender
from workflow.webhooks.dispatcher import DispatchLimits, WebhookDispatcher

if TYPE_CHECKING:
    from bookbag.app import AppState
    from bookbag.settings import Settings
    from storage.db import Database
    from workflow.services import WorkflowServices

log = logging.getLogger("bookbag.background")


def build_webhook_dispatcher(
    settings: Settings, database: Database, services: WorkflowServices
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
    return WebhookDispatcher(
        database, services, sender, limits=limits, poll_seconds=settings.webhook_poll_seconds
    )


def build_queue_hub(settings: Settings, database: Database, services: WorkflowServices) -> QueueHub:
    """The process's queue hub, fed at once by this process's committed events (works without a lifespan)."""
    hub = QueueHub(database, clock=services.clock, coalesce_seconds=settings.queue_coalesce_seconds)
    feed_from_bus(hub, services.bus)
    return hub


@asynccontextmanager
async def background_work(state: AppState) -> AsyncIterator[None]:
    """Startup hook: LISTEN (PostgreSQL), safety checks and the scheduler run until shutdown."""
    settings, db, services = state.settings, state.db, state.services
    hub = state.runtime.queue_hub
    tasks: list[asyncio.Task[None]] = []
    scheduler: SchedulerLoop | None = None
    if hub is not None:
        hub.bind(asyncio.get_running_loop())
        if db.is_postgres:
            listener = QueueListener(
                hub,
                settings.resolved_database_url(),
                also={KEYS_CHANNEL: state.runtime.principals.forget_key},
            )
            tasks.append(asyncio.create_task(listener.run(), name="bookbag-queue-listener"))
        if settings.queue_safety_check_seconds > 0:
            tasks.append(
                asyncio.create_task(
                    hub.run_safety_checks(settings.queue_safety_check_seconds), name="bookbag-queue-safety"
                )
            )
    if db.is_postgres:
        relay = EventRelay(services.bus, settings.resolved_database_url())
        relay.attach()
        tasks.append(asyncio.create_task(relay.run(), name="bookbag-event-relay"))
    if settings.scheduler_interval_seconds > 0:
        on_tick = state.metrics.scheduler_tick if state.metrics is not None else None
        scheduler = SchedulerLoop(db, services, interval=settings.scheduler_interval_seconds, on_tick=on_tick)
        tasks.append(asyncio.create_task(scheduler.run(), name="bookbag-scheduler"))
    if settings.retention_closed_days > 0:
        prune = retention_loop(
            db,
            services.clock,
            closed_days=settings.retention_closed_days,
            interval=settings.retention_interval_seconds,
        )
        tasks.append(asyncio.create_task(prune, name="bookbag-retention"))
    if state.gc_pacer is not None:
        tasks.append(asyncio.create_task(state.gc_pacer.run(), name="bookbag-gc-pacer"))
    if settings.webhook_dispatcher:
        dispatcher = build_webhook_dispatcher(settings, db, services)
        state.webhook_dispatcher = dispatcher
        dispatcher.attach()
        tasks.append(asyncio.create_task(dispatcher.run(), name="bookbag-webhooks"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if scheduler is not None:
            await scheduler.drain()  # a tick in flight finishes its unit of work
        if hub is not None:
            await hub.close()
        if state.ws_connections is not None:
            await state.ws_connections.close()
        if state.runtime.ticket_events_hub is not None:
            await state.runtime.ticket_events_hub.close()
