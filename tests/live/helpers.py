"""Shared helpers for the live-queue tests: writing queue changes the way services do (one unit of work,
queue version bumped inside it, event published after commit) without needing the whole ingest pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from storage.db import Database
from storage.tables import Ticket
from workflow.live.bus import EventBus, TicketEvent, publish_after_commit
from workflow.live.queue_hub import QueueHub
from workflow.queue import QueueSnapshot, bump_queue_version


class Boom(Exception):
    """Raised inside a unit of work to roll it back."""


def write_ticket(
    db: Database, bus: EventBus, merchant_id: str, *, stage: str = "triaged", fail: bool = False
) -> str:
    """Create a ticket in ``stage`` as one committed change to the queue (or a rolled-back one)."""
    now = datetime.now(UTC)
    with db.unit_of_work() as session:
        ticket = Ticket(
            merchant_id=merchant_id,
            subject="where is my order",
            body="it has not arrived",
            stage=stage,
            created_at=now,
            updated_at=now,
            stage_entered_at=now,
        )
        session.add(ticket)
        bump_queue_version(session, merchant_id)
        publish_after_commit(
            session, bus, TicketEvent(kind="created", merchant_id=merchant_id, ticket_id=ticket.id)
        )
        if fail:
            raise Boom("roll back")
    return ticket.id


class Collector:
    """A subscriber running in its own task, keeping everything it receives (as a dashboard would)."""

    def __init__(self, hub: QueueHub, merchant_id: str) -> None:
        self.items: list[QueueSnapshot] = []
        self._hub = hub
        self._merchant_id = merchant_id
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        await self.wait_for(lambda items: len(items) >= 1)  # the initial snapshot
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with self._hub.subscribe(self._merchant_id) as snapshots:
            async for snapshot in snapshots:
                self.items.append(snapshot)
                self._arrived.set()

    async def wait_for(
        self, predicate: Callable[[list[QueueSnapshot]], bool], timeout: float = 10.0
    ) -> list[QueueSnapshot]:
        async def poll() -> None:
            while not predicate(self.items):
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(poll(), timeout)
        return self.items


def total(snapshot: QueueSnapshot) -> int:
    return sum(stage.count for stage in snapshot.stages)
