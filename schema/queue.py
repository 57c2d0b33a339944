"""Queue metrics: per-stage counts, oldest open ticket, SLA breaches, time-in-stage statistics."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.enums import Stage
from schema.tickets import Info, Ticket


@strawberry.type
class QueueStage:
    stage: Stage
    count: int
    oldest_open_at: datetime | None
    oldest_age_seconds: float | None
    sla_breached: int
    oldest_ticket_id: strawberry.ID | None

    @strawberry.field
    async def oldest_ticket(self, info: Info) -> Ticket | None:
        if self.oldest_ticket_id is None:
            return None
        row = await info.context.loaders.ticket.load(self.oldest_ticket_id)
        return Ticket.from_model(row) if row else None


@strawberry.type
class StageDuration:
    from_stage: Stage
    to_stage: Stage
    count: int
    mean_seconds: float
    p50_seconds: float
    p90_seconds: float


@strawberry.type(description="A snapshot of the merchant's queue; `version` increases with every change.")
class Queue:
    version: int
    generated_at: datetime
    open_count: int
    stages: list[QueueStage]
    time_in_stage: list[StageDuration]
