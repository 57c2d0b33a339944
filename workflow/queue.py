"""Queue metrics: per-stage counts, the oldest open ticket, SLA breaches, time-in-stage statistics (read
from the report roll-ups, see :func:`time_in_stage`), and the per-merchant queue version that orders
snapshots (and signals other processes on PostgreSQL)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, text, update
from sqlmodel import Session, col, select

from storage.tables import Merchant, QueueState, ReportCount, Ticket, utcnow
from workflow.stages import OPEN_STAGES, STAGES

NOTIFY_CHANNEL = "bookbag_queue"


@dataclass(frozen=True)
class StageStats:
    stage: str
    count: int
    oldest_open_at: datetime | None
    oldest_ticket_id: str | None
    sla_breached: int

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.oldest_open_at is None else max(0.0, (now - self.oldest_open_at).total_seconds())


@dataclass(frozen=True)
class StageDuration:
    from_stage: str
    to_stage: str
    count: int
    mean_seconds: float
    p50_seconds: float
    p90_seconds: float


@dataclass(frozen=True)
class QueueSnapshot:
    merchant_id: str
    version: int
    generated_at: datetime
    stages: list[StageStats]
    time_in_stage: list[StageDuration]

    @property
    def open_count(self) -> int:
        return sum(s.count for s in self.stages if s.stage in OPEN_STAGES)


@cache
def _bump_version() -> Any:
    return (
        update(QueueState)
        .where(col(QueueState.merchant_id) == bindparam("for_merchant"))
        .values(version=QueueState.version + 1, updated_at=bindparam("now"))
    )


@cache
def _lock_queue() -> Any:
    return (
        select(QueueState.version)
        .where(col(QueueState.merchant_id) == bindparam("for_merchant"))
        .with_for_update()
    )


def lock_queue(session: Session, merchant_id: str) -> None:
    """Take the merchant's queue row for the rest of the transaction (PostgreSQL ``FOR UPDATE``; SQLite's
    ``BEGIN IMMEDIATE`` already holds the whole database): work that must see and change one merchant's
    queue consistently — ingest reading agents' load, then assigning — runs one transaction at a time."""
    if session.connection().dialect.name == "postgresql":
        session.execute(_lock_queue(), {"for_merchant": merchant_id})


def bump_queue_version(session: Session, merchant_id: str) -> None:
    """Called inside every transaction that changes the queue; bumps once per transaction and merchant.

    On PostgreSQL the NOTIFY is transactional: other processes hear of it only if and when this transaction
    commits (and PostgreSQL folds identical notifications within one transaction anyway).
    """
    bumped: set[str] = session.info.setdefault("bookbag_queue_bumped", set())
    if merchant_id in bumped:
        return
    bumped.add(merchant_id)
    connection = session.connection()
    connection.execute(_bump_version(), {"for_merchant": merchant_id, "now": utcnow()})
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_notify(:channel, :merchant)"),
            {"channel": NOTIFY_CHANNEL, "merchant": merchant_id},
        )


def queue_version(session: Session, merchant_id: str) -> int:
    version = session.exec(select(QueueState.version).where(QueueState.merchant_id == merchant_id)).first()
    return int(version or 0)


# The one stage whose count grows with the history (every ticket ends there): read from the roll-ups.
HISTORY_STAGE = "closed"


@cache
def _counted_stages() -> Any:
    return (
        select(Ticket.stage, func.count())
        .where(
            col(Ticket.merchant_id) == bindparam("for_merchant"),
            col(Ticket.stage).in_([s for s in STAGES if s != HISTORY_STAGE]),
        )
        .group_by(col(Ticket.stage))
    )


@cache
def _rolled_up_tickets() -> Any:
    return select(func.sum(ReportCount.n), func.min(ReportCount.day)).where(
        col(ReportCount.merchant_id) == bindparam("for_merchant"),
        col(ReportCount.dim) == "",
        col(ReportCount.metric) == "created",
    )


@cache
def _first_ticket() -> Any:
    return (
        select(Ticket.created_at)
        .where(col(Ticket.merchant_id) == bindparam("for_merchant"))
        .order_by(col(Ticket.created_at), col(Ticket.id))
        .limit(1)
    )


@cache
def _oldest_in_stage() -> Any:
    """The ticket longest in a stage: the earliest entry time first (a MIN over ``ix_tickets_merchant_stage``),
    then the smallest id at it. Asked as one ORDER BY … LIMIT 1, SQLite's planner walked the merchant's
    tickets by ``ix_tickets_merchant_stage_entered`` (closed ones first) to avoid a sort: 90 ms per stage at
    30k tickets (bench/scale_bench.py)."""
    same = (col(Ticket.merchant_id) == bindparam("for_merchant")) & (col(Ticket.stage) == bindparam("stage"))
    earliest = select(func.min(Ticket.stage_entered_at)).where(same).scalar_subquery()
    return (
        select(Ticket.stage_entered_at, Ticket.id)
        .where(same, col(Ticket.stage_entered_at) == earliest)
        .order_by(col(Ticket.id))
        .limit(1)
    )


def stage_counts(session: Session, merchant_id: str) -> dict[str, int]:
    """The merchant's tickets per stage, at a cost that does not grow with the closed history.

    Every stage but ``closed`` is counted from the rows (a range of ``ix_tickets_merchant_stage`` each);
    ``closed`` is the merchant's number of tickets — the report roll-ups' ``created`` count, kept in the
    unit of work that creates a ticket — minus the others. Where the roll-ups do not cover the merchant's
    history (a database upgraded past 0009 without ``bookbag db rebuild-reports``: their first day is then
    later than the first ticket's), ``closed`` is counted from the rows."""
    params = {"for_merchant": merchant_id}
    counts = {str(stage): int(n) for stage, n in session.execute(_counted_stages(), params)}
    total, first_day = session.execute(_rolled_up_tickets(), params).one()
    first = session.execute(_first_ticket(), params).scalar()
    closed = None if total is None else int(total) - sum(counts.values())
    covered = first is None or (first_day is not None and _as_date(first_day) <= first.astimezone(UTC).date())
    if closed is None or closed < 0 or not covered:
        closed = int(
            session.exec(
                select(func.count()).where(Ticket.merchant_id == merchant_id, Ticket.stage == HISTORY_STAGE)
            ).one()
        )
    if closed:
        counts[HISTORY_STAGE] = closed
    return counts


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def breached_clause(now: datetime) -> ColumnElement[bool]:
    return or_(
        col(Ticket.sla_breached_at).is_not(None),
        and_(col(Ticket.first_responded_at).is_(None), col(Ticket.first_response_due_at) < now),
        and_(col(Ticket.resolved_at).is_(None), col(Ticket.resolution_due_at) < now),
    )


def queue_snapshot(
    session: Session, merchant_id: str, now: datetime, *, window: timedelta | None = timedelta(days=7)
) -> QueueSnapshot:
    """The merchant's queue at ``now``; ``window``: how far back the time-in-stage statistics reach (see
    :func:`time_in_stage`), None to leave them out (the live hub keeps its own)."""
    version = queue_version(session, merchant_id)
    counts = stage_counts(session, merchant_id)
    breached = dict(
        session.exec(
            select(Ticket.stage, func.count())
            .where(
                Ticket.merchant_id == merchant_id, col(Ticket.stage).in_(OPEN_STAGES), breached_clause(now)
            )
            .group_by(Ticket.stage)
        ).all()
    )
    oldest: dict[str, tuple[datetime, str]] = {}
    for stage in OPEN_STAGES:
        if not counts.get(stage):
            continue
        row = session.execute(_oldest_in_stage(), {"for_merchant": merchant_id, "stage": stage}).first()
        if row is not None:
            oldest[stage] = (row[0], row[1])
    stages = [
        StageStats(
            stage=stage,
            count=int(counts.get(stage, 0)),
            oldest_open_at=oldest[stage][0] if stage in oldest else None,
            oldest_ticket_id=oldest[stage][1] if stage in oldest else None,
            sla_breached=int(breached.get(stage, 0)),
        )
        for stage in STAGES
    ]
    return QueueSnapshot(
        merchant_id=merchant_id,
        version=version,
        generated_at=now,
        stages=stages,
        time_in_stage=[] if window is None else time_in_stage(session, merchant_id, since=now - window),
    )


@cache
def _time_in_stage_rows() -> Any:
    return (
        select(ReportCount.key, ReportCount.bin, func.sum(ReportCount.n), func.sum(ReportCount.total))
        .where(
            col(ReportCount.merchant_id) == bindparam("for_merchant"),
            col(ReportCount.dim) == "",
            col(ReportCount.metric) == "stage",
            col(ReportCount.day) >= bindparam("first_day"),
        )
        .group_by(col(ReportCount.key), col(ReportCount.bin))
    )


# ``workflow.reports.rollups.BINS_PER_DOUBLING`` (that layer writes the bins, above this one; a test keeps the
# two equal): the width of a histogram bin on ``seconds + 1``, the most a percentile of :func:`time_in_stage`
# (a bin's mean) can be off, relatively.
BINS_PER_DOUBLING = 8
PERCENTILE_RELATIVE_ERROR = 2.0 ** (1.0 / BINS_PER_DOUBLING) - 1.0


def _percentile(histogram: dict[int, tuple[int, float]], count: int, q: float) -> float:
    """The nearest-rank (``floor(q·(n-1)+0.5)+1``) value's bin, answered as that bin's mean."""
    rank = int(q * (count - 1) + 0.5) + 1
    seen = 0
    for index in sorted(histogram):
        n, total = histogram[index]
        seen += n
        if seen >= rank:
            return total / n
    raise ValueError("empty histogram")


def time_in_stage(session: Session, merchant_id: str, *, since: datetime) -> list[StageDuration]:
    """Count, mean, p50 and p90 of the seconds spent in a stage before leaving it, per observed change
    (``from → to``), over the transitions since the start of ``since``'s UTC day.

    Read from the report roll-ups (``workflow.reports.rollups``: metric ``stage``, key ``from>to``, the
    all-tickets split), so the cost grows with days × stage pairs × histogram bins, never with tickets or
    transitions. The window is whole UTC days: from midnight of ``since``'s day (for the queue's 7 days,
    between 7 and 8 × 24 h back) with no upper end — the rolling window plus the rest of its first day.
    Counts and means are exact. p50/p90 take the nearest rank (as the scan of the transitions this
    replaced did) over the histogram bins and answer the mean of the bin holding it: exact when the values
    in that bin are equal (one value, say), else within :data:`PERCENTILE_RELATIVE_ERROR` (one bin's width,
    9 %) of the exact value on ``seconds + 1``.
    """
    first_day = since.astimezone(UTC).date()
    rows = session.execute(_time_in_stage_rows(), {"for_merchant": merchant_id, "first_day": first_day})
    bins: dict[str, dict[int, tuple[int, float]]] = defaultdict(dict)
    for key, index, n, total in rows:
        if int(n) > 0:
            bins[str(key)][int(index)] = (int(n), float(total or 0.0))
    order = {stage: i for i, stage in enumerate(STAGES)}
    durations = []
    for key, histogram in bins.items():
        from_stage, _, to_stage = key.partition(">")
        count = sum(n for n, _ in histogram.values())
        durations.append(
            StageDuration(
                from_stage=from_stage,
                to_stage=to_stage,
                count=count,
                mean_seconds=sum(total for _, total in histogram.values()) / count,
                p50_seconds=_percentile(histogram, count, 0.5),
                p90_seconds=_percentile(histogram, count, 0.9),
            )
        )
    return sorted(durations, key=lambda d: (order.get(d.from_stage, 99), order.get(d.to_stage, 99)))


def oldest_open_tickets(session: Session, merchant_id: str, *, limit: int = 10) -> list[Ticket]:
    query = (
        select(Ticket)
        .where(Ticket.merchant_id == merchant_id, col(Ticket.stage).in_(OPEN_STAGES))
        .order_by(col(Ticket.created_at), col(Ticket.id))
        .limit(max(1, min(limit, 100)))
    )
    return list(session.exec(query))


@dataclass(frozen=True)
class StageTotal:
    """Open tickets of one stage (of one merchant, or of all of them) and when the oldest entered it."""

    stage: str
    count: int
    oldest_entered_at: datetime | None
    merchant_slug: str | None = None


def open_stage_totals(session: Session, *, per_merchant: bool = False) -> list[StageTotal]:
    """Every merchant's open tickets per stage (summed, or per merchant): one grouped query, for metrics."""
    if per_merchant:
        rows = session.exec(
            select(Ticket.stage, Merchant.slug, func.count(), func.min(Ticket.stage_entered_at))
            .join(Merchant, col(Merchant.id) == col(Ticket.merchant_id))
            .where(col(Ticket.stage).in_(OPEN_STAGES))
            .group_by(Ticket.stage, Merchant.slug)
        ).all()
        return [StageTotal(stage, int(n), oldest, slug) for stage, slug, n, oldest in rows]
    totals = session.exec(
        select(Ticket.stage, func.count(), func.min(Ticket.stage_entered_at))
        .where(col(Ticket.stage).in_(OPEN_STAGES))
        .group_by(Ticket.stage)
    ).all()
    return [StageTotal(stage, int(n), oldest) for stage, n, oldest in totals]
