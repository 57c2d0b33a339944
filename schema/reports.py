"""The report type: a period's figures by day or week, optionally split by a ticket dimension."""

from __future__ import annotations

from datetime import date
from enum import Enum

import strawberry

from schema.enums import Actor, Effect, Stage
from workflow.reports import read as domain


@strawberry.enum(description="The size of a report's buckets; weeks are ISO weeks, from Monday (UTC).")
class ReportGranularity(Enum):
    DAY = "day"
    WEEK = "week"


@strawberry.enum(description="The ticket dimension a report is split by (the ticket's current value).")
class ReportSplit(Enum):
    NONE = "none"
    TEAM = "team"
    CATEGORY = "category"
    PRIORITY = "priority"
    CHANNEL = "channel"


@strawberry.type
class ReportGroup:
    value: str = strawberry.field(description="The split's value ('' when unset or not split).")
    label: str


@strawberry.type
class ReportVolume:
    bucket: date
    group: str
    created: int
    closed: int = strawberry.field(description="Moves from an open stage to resolved or closed.")
    reopened: int
    backlog: int = strawberry.field(description="Open tickets at the end of the bucket.")


@strawberry.type
class ReportSla:
    bucket: date
    group: str
    first_response_met: int
    first_response_missed: int
    first_response_attainment: float | None = strawberry.field(
        description="Met ÷ (met + missed) among the first responses of the bucket that had a due time."
    )
    resolution_met: int
    resolution_missed: int
    resolution_attainment: float | None
    breaches: int = strawberry.field(description="SLA breaches the scheduler marked in the bucket.")
    escalations: int


@strawberry.type
class ReportDuration:
    bucket: date | None = strawberry.field(description="Null: the whole period.")
    group: str
    metric: str = strawberry.field(description="stage, first_response, resolution or approval_wait.")
    from_stage: Stage | None
    to_stage: Stage | None
    decision: str | None = strawberry.field(description="approval_wait: approved or rejected.")
    count: int
    mean_seconds: float
    p50_seconds: float = strawberry.field(description="From a histogram: within 4.5% (on seconds + 1).")
    p90_seconds: float

    @classmethod
    def from_domain(cls, row: domain.DurationRow) -> ReportDuration:
        from_stage, _, to_stage = row.key.partition(">") if row.metric == "stage" else (None, "", None)
        return cls(
            bucket=row.bucket,
            group=row.group,
            metric=row.metric,
            from_stage=Stage(from_stage) if from_stage else None,
            to_stage=Stage(to_stage) if to_stage else None,
            decision=row.key if row.metric == "approval_wait" else None,
            count=row.count,
            mean_seconds=row.mean_seconds,
            p50_seconds=row.p50_seconds,
            p90_seconds=row.p90_seconds,
        )


@strawberry.type
class ReportAction:
    group: str
    actor: Actor
    type: str
    effect: Effect = strawberry.field(description="What the rules decided.")
    status: str = strawberry.field(
        description="Where it ended: executed, approved, rejected, denied, pending_approval."
    )
    count: int


@strawberry.type
class ReportCorrection:
    group: str
    from_category: str | None = strawberry.field(description="What the classifier said.")
    to_category: str
    count: int


@strawberry.type
class Report:
    start: date
    end: date
    granularity: ReportGranularity
    split: ReportSplit
    buckets: list[date]
    groups: list[ReportGroup]
    volume: list[ReportVolume]
    sla: list[ReportSla]
    durations: list[ReportDuration] = strawberry.field(
        description="Over the whole period: each stage pair, first response, resolution, approval wait."
    )
    trends: list[ReportDuration] = strawberry.field(description="First response and resolution per bucket.")
    actions: list[ReportAction]
    corrections: list[ReportCorrection]

    @classmethod
    def from_domain(cls, report: domain.Report) -> Report:
        actions, corrections = [], []
        for row in report.counts:
            if row.metric == "action":
                actor, type_, effect, status = [*row.key.split("|"), "", "", ""][:4]
                actions.append(
                    ReportAction(
                        group=row.group,
                        actor=Actor(actor),
                        type=type_,
                        effect=Effect(effect),
                        status=status,
                        count=row.count,
                    )
                )
            elif row.metric == "correction":
                old, _, new = row.key.partition(">")
                corrections.append(
                    ReportCorrection(
                        group=row.group, from_category=old or None, to_category=new, count=row.count
                    )
                )
        return cls(
            start=report.start,
            end=report.end,
            granularity=ReportGranularity(report.granularity.value),
            split=ReportSplit(report.split.value),
            buckets=report.buckets,
            groups=[ReportGroup(value=g, label=report.group_labels.get(g, g)) for g in report.groups],
            volume=[ReportVolume(**vars(v)) for v in report.volume],
            sla=[
                ReportSla(
                    bucket=s.bucket,
                    group=s.group,
                    first_response_met=s.first_response_met,
                    first_response_missed=s.first_response_missed,
                    first_response_attainment=s.attainment(s.first_response_met, s.first_response_missed),
                    resolution_met=s.resolution_met,
                    resolution_missed=s.resolution_missed,
                    resolution_attainment=s.attainment(s.resolution_met, s.resolution_missed),
                    breaches=s.breaches,
                    escalations=s.escalations,
                )
                for s in report.sla
            ],
            durations=[ReportDuration.from_domain(d) for d in report.durations],
            trends=[ReportDuration.from_domain(d) for d in report.trends],
            actions=actions,
            corrections=corrections,
        )
