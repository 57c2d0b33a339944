"""Reports over a period: volume, backlog, stage and SLA times, escalations, AI autonomy and classifier
corrections, by day or week, optionally split by team, category, priority or channel.

Read from the roll-ups that ``workflow.reports.rollups`` keeps (``report_counts``), never from the history
itself: the reading cost grows with days × metrics × groups × histogram bins, not with tickets. Every
figure is attributed to the ticket's current team, category, priority and channel. Percentiles come from
the histograms (within ``report_rollups.RELATIVE_ERROR`` of the exact nearest-rank value on seconds + 1);
means and counts are exact.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlmodel import Session, col

from storage.tables import ReportCount, Team
from workflow.errors import invalid
from workflow.reports.rollups import bin_value

MAX_DAYS = 366
COUNT_METRICS = (
    "created",
    "closed",
    "reopened",
    "sla_first_response",
    "sla_resolution",
    "sla_breach",
    "escalation",
)
DURATION_METRICS = ("stage", "first_response", "resolution", "approval_wait")
TREND_METRICS = ("first_response", "resolution")
PERIOD_METRICS = ("action", "correction")
BACKLOG_METRICS = {"created": 1, "reopened": 1, "closed": -1}


class Granularity(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO weeks, from Monday


class Split(StrEnum):
    NONE = "none"
    TEAM = "team"
    CATEGORY = "category"
    PRIORITY = "priority"
    CHANNEL = "channel"


_DIM = {
    Split.NONE: "",
    Split.TEAM: "team",
    Split.CATEGORY: "category",
    Split.PRIORITY: "priority",
    Split.CHANNEL: "channel",
}


@dataclass(frozen=True)
class VolumeRow:
    bucket: date
    group: str
    created: int
    closed: int
    reopened: int
    backlog: int  # open tickets at the end of the bucket


@dataclass(frozen=True)
class SlaRow:
    bucket: date
    group: str
    first_response_met: int
    first_response_missed: int
    resolution_met: int
    resolution_missed: int
    breaches: int
    escalations: int

    @staticmethod
    def attainment(met: int, missed: int) -> float | None:
        return met / (met + missed) if met + missed else None


@dataclass(frozen=True)
class DurationRow:
    """``metric``: stage (``key`` = ``from>to``), first_response, resolution, approval_wait (``key`` = the
    decision). ``bucket`` is None for the whole period."""

    bucket: date | None
    group: str
    metric: str
    key: str
    count: int
    mean_seconds: float
    p50_seconds: float
    p90_seconds: float


@dataclass(frozen=True)
class KeyCountRow:
    """A whole-period count of ``metric`` by ``key`` (actions: ``actor|type|effect|status``; corrections:
    ``old>new`` category)."""

    group: str
    metric: str
    key: str
    count: int


@dataclass
class Report:
    start: date
    end: date  # inclusive
    granularity: Granularity
    split: Split
    buckets: list[date]
    groups: list[str]
    group_labels: dict[str, str]
    volume: list[VolumeRow] = field(default_factory=list)
    sla: list[SlaRow] = field(default_factory=list)
    durations: list[DurationRow] = field(default_factory=list)
    trends: list[DurationRow] = field(default_factory=list)
    counts: list[KeyCountRow] = field(default_factory=list)


def bucket_of(day: date, granularity: Granularity) -> date:
    return day - timedelta(days=day.weekday()) if granularity is Granularity.WEEK else day


def _bucket_expression(dialect: str, granularity: Granularity) -> Any:
    """The bucket of a roll-up row's day, computed by the database (fewer rows come back for weeks)."""
    day = col(ReportCount.day)
    if granularity is Granularity.DAY:
        return day
    if dialect == "postgresql":
        return cast(func.date_trunc("week", day), Date)  # ISO weeks: Monday
    return func.date(day, "weekday 0", "-6 days", type_=Date)  # the Sunday ending the week, minus six days


def percentile(bins: dict[int, int], q: float) -> float:
    """Nearest-rank percentile (rank ``floor(q·(n-1)+0.5)+1``, as the live chart's) over histogram bins."""
    n = sum(bins.values())
    rank = int(q * (n - 1) + 0.5) + 1
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return bin_value(index)
    raise ValueError("empty histogram")


def _durations(
    rows: list[tuple[date | None, str, str, str, int, int, float]],
) -> list[DurationRow]:
    """rows: (bucket, group, metric, key, bin, n, total) → one DurationRow per (bucket, group, metric, key)."""
    bins: dict[tuple[date | None, str, str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[tuple[date | None, str, str, str], float] = defaultdict(float)
    for bucket, group, metric, key, index, n, total in rows:
        bins[(bucket, group, metric, key)][index] += n
        totals[(bucket, group, metric, key)] += total
    result = []
    for ident, histogram in bins.items():
        histogram = {i: n for i, n in histogram.items() if n}
        count = sum(histogram.values())
        if count <= 0:
            continue
        result.append(
            DurationRow(
                bucket=ident[0],
                group=ident[1],
                metric=ident[2],
                key=ident[3],
                count=count,
                mean_seconds=totals[ident] / count,
                p50_seconds=percentile(histogram, 0.5),
                p90_seconds=percentile(histogram, 0.9),
            )
        )
    return sorted(result, key=lambda r: (r.bucket or date.min, r.group, r.metric, r.key))


def build_report(
    session: Session,
    merchant_id: str,
    *,
    start: date,
    end: date,
    granularity: Granularity = Granularity.DAY,
    split: Split = Split.NONE,
) -> Report:
    """The report of ``merchant_id`` for the days ``start``..``end`` (inclusive, UTC)."""
    if end < start:
        raise invalid("the period ends before it starts", "to")
    if (end - start).days + 1 > MAX_DAYS:
        raise invalid(f"a report covers at most {MAX_DAYS} days", "to")
    group_expr: Any = col(ReportCount.value)
    mine = (col(ReportCount.merchant_id) == merchant_id) & (col(ReportCount.dim) == _DIM[split])
    in_period = (col(ReportCount.day) >= start) & (col(ReportCount.day) <= end)
    grouping = [group_expr]

    bucket = _bucket_expression(session.get_bind().dialect.name, granularity)

    def query(*columns: Any, where: Any, by: list[Any]) -> list[Any]:
        statement = select(*columns).where(mine, where).group_by(*by)
        return list(session.execute(statement).all())

    sums = (func.sum(ReportCount.n), func.sum(ReportCount.total))
    daily = query(
        bucket,
        group_expr,
        ReportCount.metric,
        ReportCount.key,
        *sums,
        where=in_period & col(ReportCount.metric).in_(COUNT_METRICS),
        by=[bucket, *grouping, ReportCount.metric, ReportCount.key],
    )
    before = query(
        group_expr,
        ReportCount.metric,
        func.sum(ReportCount.n),
        where=(col(ReportCount.day) < start) & col(ReportCount.metric).in_(tuple(BACKLOG_METRICS)),
        by=[*grouping, ReportCount.metric],
    )
    period_durations = query(
        group_expr,
        ReportCount.metric,
        ReportCount.key,
        ReportCount.bin,
        *sums,
        where=in_period & col(ReportCount.metric).in_(DURATION_METRICS),
        by=[*grouping, ReportCount.metric, ReportCount.key, ReportCount.bin],
    )
    daily_durations = query(
        bucket,
        group_expr,
        ReportCount.metric,
        ReportCount.bin,
        *sums,
        where=in_period & col(ReportCount.metric).in_(TREND_METRICS),
        by=[bucket, *grouping, ReportCount.metric, ReportCount.bin],
    )
    period_counts = query(
        group_expr,
        ReportCount.metric,
        ReportCount.key,
        func.sum(ReportCount.n),
        where=in_period & col(ReportCount.metric).in_(PERIOD_METRICS),
        by=[*grouping, ReportCount.metric, ReportCount.key],
    )

    buckets = sorted(
        {bucket_of(start + timedelta(days=i), granularity) for i in range((end - start).days + 1)}
    )
    counts: dict[tuple[date, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    groups: set[str] = set()
    for day, group, metric, key, n, _total in daily:
        groups.add(group)
        name = f"{metric}:{key}" if metric.startswith("sla_") and metric != "sla_breach" else metric
        counts[(bucket_of(day, granularity), group)][name] += int(n)
    opening: dict[str, int] = defaultdict(int)
    for group, metric, n in before:
        groups.add(group)
        opening[group] += BACKLOG_METRICS[metric] * int(n)
    groups.update(g for g, *_ in period_durations)
    groups.update(g for g, *_ in period_counts)
    if split is Split.NONE:
        groups = {""}
    ordered_groups = sorted(groups)

    report = Report(
        start=start,
        end=end,
        granularity=granularity,
        split=split,
        buckets=buckets,
        groups=ordered_groups,
        group_labels=_labels(session, merchant_id, split, ordered_groups),
    )
    for group in ordered_groups:
        backlog = opening[group]
        for bucket in buckets:
            c = counts.get((bucket, group), {})
            backlog += c.get("created", 0) + c.get("reopened", 0) - c.get("closed", 0)
            report.volume.append(
                VolumeRow(
                    bucket, group, c.get("created", 0), c.get("closed", 0), c.get("reopened", 0), backlog
                )
            )
            report.sla.append(
                SlaRow(
                    bucket=bucket,
                    group=group,
                    first_response_met=c.get("sla_first_response:met", 0),
                    first_response_missed=c.get("sla_first_response:missed", 0),
                    resolution_met=c.get("sla_resolution:met", 0),
                    resolution_missed=c.get("sla_resolution:missed", 0),
                    breaches=c.get("sla_breach", 0),
                    escalations=c.get("escalation", 0),
                )
            )
    report.durations = _durations(
        [(None, g, m, k, int(b), int(n), float(t)) for g, m, k, b, n, t in period_durations]
    )
    report.trends = _durations(
        [
            (bucket_of(d, granularity), g, m, "", int(b), int(n), float(t))
            for d, g, m, b, n, t in daily_durations
        ]
    )
    report.counts = sorted(
        (KeyCountRow(group=g, metric=m, key=k, count=int(n)) for g, m, k, n in period_counts if int(n)),
        key=lambda r: (r.group, r.metric, -r.count, r.key),
    )
    return report


def _labels(session: Session, merchant_id: str, split: Split, groups: list[str]) -> dict[str, str]:
    if split is Split.NONE:
        return {"": "all tickets"}
    labels = {g: (g.replace("_", " ") if g else "(none)") for g in groups}
    if split is Split.TEAM:
        ids = [g for g in groups if g]
        if ids:
            rows = session.execute(
                select(col(Team.id), col(Team.name)).where(
                    col(Team.merchant_id) == merchant_id, col(Team.id).in_(ids)
                )
            )
            labels.update({team_id: name for team_id, name in rows})
    return labels
