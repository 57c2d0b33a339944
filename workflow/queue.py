"""Queue metrics: per-stage counts, the oldest open ticket, SLA breaches, time-in-stage statistics,
and the per-merchant queue version that orders snapshots (and signals other processes on PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, text, update
from sqlmodel import Session, col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from storage.tables import Merchant, QueueState, Ticket, utcnow
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


def breached_clause(now: datetime) -> ColumnElement[bool]:
    return or_(
        col(Ticket.sla_breached_at).is_not(None),
        and_(col(Ticket.first_responded_at).is_(None), col(Ticket.first_response_due_at) < now),
        and_(col(Ticket.resolved_at).is_(None), col(Ticket.resolution_due_at) < now),
    )


def queue_snapshot(
    session: Session, merchant_id: str, now: datetime, *, window: timedelta = timedelta(days=7)
) -> QueueSnapshot:
    version = queue_version(session, merchant_id)
    counts = dict(
        session.exec(
            select(Ticket.stage, func.count()).where(Ticket.merchant_id == merchant_id).group_by(Ticket.stage)
        ).all()
    )
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
        row = session.exec(
            select(Ticket.stage_entered_at, Ticket.id)
            .where(Ticket.merchant_id == merchant_id, Ticket.stage == stage)
            .order_by(col(Ticket.stage_entered_at), col(Ticket.id))
            .limit(1)
        ).first()
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
        time_in_stage=time_in_stage(session, merchant_id, since=now - window),
    )


_TIME_IN_STAGE_SQL = text(
    """
    WITH ranked AS (
        SELECT from_stage, to_stage, seconds_in_from_stage AS s,
               ROW_NUMBER() OVER (PARTITION BY from_stage, to_stage ORDER BY seconds_in_from_stage) AS rn,
               COUNT(*) OVER (PARTITION BY from_stage, to_stage) AS n
        FROM stage_transitions
        WHERE merchant_id = :merchant_id AND at >= :since
          AND from_stage IS NOT NULL AND seconds_in_from_stage IS NOT NULL
    )
    SELECT from_stage, to_stage, MAX(n), AVG(s),
           MAX(CASE WHEN rn = CAST(FLOOR(0.5 * (n - 1) + 0.5) AS INTEGER) + 1 THEN s END),
           MAX(CASE WHEN rn = CAST(FLOOR(0.9 * (n - 1) + 0.5) AS INTEGER) + 1 THEN s END)
    FROM ranked
    GROUP BY from_stage, to_stage
    """
).bindparams(bindparam("since", type_=UTCDateTime()))  # bound the way the `at` column stores it


def time_in_stage(session: Session, merchant_id: str, *, since: datetime) -> list[StageDuration]:
    """Mean/p50/p90 seconds spent before each observed stage change, over the window.

    Computed in the database (window functions, on SQLite and PostgreSQL alike) so the cost does not grow
    with rows shipped to Python; percentiles are nearest-rank on the sorted durations.
    """
    rows = session.execute(_TIME_IN_STAGE_SQL, {"merchant_id": merchant_id, "since": since}).all()
    order = {stage: i for i, stage in enumerate(STAGES)}
    rows = sorted(rows, key=lambda r: (order.get(r[0], 99), order.get(r[1], 99)))
    return [
        StageDuration(
            from_stage=str(from_stage),
            to_stage=str(to_stage),
            count=int(count),
            mean_seconds=float(mean),
            p50_seconds=float(p50),
            p90_seconds=float(p90),
        )
        for from_stage, to_stage, count, mean, p50, p90 in rows
    ]


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
