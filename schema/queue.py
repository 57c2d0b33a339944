"""Queue metrics: per-stage counts, oldest open ticket, SLA breaches, time-in-stage statistics."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.common import described
from schema.enums import Stage
from schema.tickets import Info, Ticket


@strawberry.type(description="The queue's figures for one stage.")
class QueueStage:
    stage: Stage = strawberry.field(description="The stage.")
    count: int = strawberry.field(description="Tickets in the stage.")
    oldest_open_at: datetime | None = strawberry.field(
        description="When the longest-waiting ticket entered the stage."
    )
    oldest_age_seconds: float | None = strawberry.field(
        description="How long the longest-waiting ticket has been in the stage."
    )
    sla_breached: int = strawberry.field(description="Tickets in the stage whose SLA is breached or overdue.")
    oldest_ticket_id: strawberry.ID | None = strawberry.field(description="The longest-waiting ticket's id.")

    @described("The longest-waiting ticket.")
    async def oldest_ticket(self, info: Info) -> Ticket | None:
        if self.oldest_ticket_id is None:
            return None
        row = await info.context.loaders.ticket.load(self.oldest_ticket_id)
        return Ticket.from_model(row) if row else None


@strawberry.type(description="Time spent between two stages, over the recorded transitions.")
class StageDuration:
    from_stage: Stage = strawberry.field(description="The stage left.")
    to_stage: Stage = strawberry.field(description="The stage entered.")
    count: int = strawberry.field(description="Transitions counted.")
    mean_seconds: float = strawberry.field(description="Mean time in the from-stage, in seconds.")
    p50_seconds: float = strawberry.field(description="Median time in the from-stage, in seconds.")
    p90_seconds: float = strawberry.field(
        description="90th percentile of the time in the from-stage, in seconds."
    )


@strawberry.type(description="A snapshot of the merchant's queue; `version` increases with every change.")
class Queue:
    version: int = strawberry.field(
        description="Rises with every change to the queue; compare versions to order snapshots."
    )
    generated_at: datetime = strawberry.field(description="When these figures were computed.")
    open_count: int = strawberry.field(description="Tickets not resolved or closed.")
    stages: list[QueueStage] = strawberry.field(description="Figures per stage.")
    time_in_stage: list[StageDuration] = strawberry.field(
        description="How long tickets spent between stages."
    )
