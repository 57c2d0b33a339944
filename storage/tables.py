"""SQLModel tables. Every table holding merchant data carries ``merchant_id``.

Ids are random strings with a short prefix (``tkt_…``) so they reveal nothing about other merchants'
volumes. JSON columns hold small lists/dicts (tags, skills, facts, decisions).
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Merchant(SQLModel, table=True):
    __tablename__ = "merchants"
    id: str = Field(default_factory=lambda: new_id("mer"), primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    slug: str = Field(max_length=100, unique=True, index=True)
    active_ruleset_version: int | None = Field(default=None)
    round_robin_cursor: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow)
    # How long decision records of closed tickets are kept (workflow.tickets.lifecycle); None: for ever.
    decision_retention_days: int | None = Field(default=None)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: str = Field(default_factory=lambda: new_id("key"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", index=True, max_length=40)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    prefix: str = Field(max_length=16, index=True)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class Team(SQLModel, table=True):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("merchant_id", "name"),)
    id: str = Field(default_factory=lambda: new_id("team"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", index=True, max_length=40)
    name: str = Field(max_length=100)
    round_robin_cursor: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow)


class Agent(SQLModel, table=True):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("merchant_id", "email"),)
    id: str = Field(default_factory=lambda: new_id("agt"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", index=True, max_length=40)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320)
    skills: list[str] = _json_list()
    capacity: int = Field(default=10)
    available: bool = Field(default=True)
    # Open tickets assigned to this agent, kept in step by the workflow (workflow.tenancy.agents.count_open_tickets)
    # so that choosing an assignee reads one row per agent instead of counting the backlog.
    open_tickets: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow)


class TeamMember(SQLModel, table=True):
    __tablename__ = "team_members"
    team_id: str = Field(foreign_key="teams.id", primary_key=True, max_length=40)
    agent_id: str = Field(foreign_key="agents.id", primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", index=True, max_length=40)


FIRST_RESPONSE_PENDING = "sla_breached_at IS NULL AND first_responded_at IS NULL"
RESOLUTION_PENDING = "sla_breached_at IS NULL AND resolved_at IS NULL"


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_merchant_stage", "merchant_id", "stage", "stage_entered_at"),
        Index("ix_tickets_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_tickets_merchant_assignee", "merchant_id", "assignee_id", "stage"),
        # The ticket list's filters and sort orders (workflow.tickets.service.list_tickets); the text search has its
        # own index per back-end, outside the models (migration 0008: FTS5 on SQLite, a GIN tsvector
        # expression index on PostgreSQL).
        Index("ix_tickets_merchant_updated", "merchant_id", "updated_at", "id"),
        Index("ix_tickets_merchant_stage_entered", "merchant_id", "stage_entered_at", "id"),
        Index("ix_tickets_merchant_team", "merchant_id", "team_id", "created_at"),
        Index("ix_tickets_merchant_category", "merchant_id", "category", "created_at"),
        Index("ix_tickets_merchant_email", "merchant_id", "customer_email"),
        Index("ix_tickets_merchant_order", "merchant_id", "order_id"),
        # The scheduler's SLA-breach scan reads only tickets with a due time still pending (partial indexes:
        # a handful of rows, whatever the size of the table).
        Index(
            "ix_tickets_first_response_pending",
            "first_response_due_at",
            sqlite_where=text(FIRST_RESPONSE_PENDING),
            postgresql_where=text(FIRST_RESPONSE_PENDING),
        ),
        Index(
            "ix_tickets_resolution_pending",
            "resolution_due_at",
            sqlite_where=text(RESOLUTION_PENDING),
            postgresql_where=text(RESOLUTION_PENDING),
        ),
    )
    id: str = Field(default_factory=lambda: new_id("tkt"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", max_length=40)
    channel: str = Field(default="email", max_length=20)
    subject: str = Field(default="", sa_column=Column(Text, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    customer_email: str | None = Field(default=None, max_length=320)
    customer_name: str | None = Field(default=None, max_length=200)
    customer_vip: bool = Field(default=False)
    customer_lifetime_value: float | None = None
    customer_order_count: int | None = None
    order_id: str | None = Field(default=None, max_length=100)
    order_total: float | None = None
    order_currency: str | None = Field(default=None, max_length=3)
    order_financial_status: str | None = Field(default=None, max_length=40)
    order_fulfillment_status: str | None = Field(default=None, max_length=40)
    order_created_at: datetime | None = None
    order_delivered_at: datetime | None = None
    category: str | None = Field(default=None, max_length=60)
    category_confidence: float | None = None
    priority: str = Field(default="normal", max_length=20)
    priority_confidence: float | None = None
    model_version: str | None = Field(default=None, max_length=80)
    # ISO 639-1 code detected in the cleaned body at ingest (classifier.language); None when unsure.
    language: str | None = Field(default=None, max_length=8)
    stage: str = Field(default="new", max_length=40)
    team_id: str | None = Field(default=None, foreign_key="teams.id", max_length=40)
    assignee_id: str | None = Field(default=None, foreign_key="agents.id", max_length=40)
    tags: list[str] = _json_list()
    needs_human: bool = Field(default=False)
    routing_rule_id: str | None = Field(default=None, max_length=100)
    first_response_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    first_responded_at: datetime | None = None
    resolved_at: datetime | None = None
    sla_breached_at: datetime | None = None
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    stage_entered_at: datetime = Field(default_factory=utcnow)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_ticket", "merchant_id", "ticket_id", "created_at"),)
    id: str = Field(default_factory=lambda: new_id("msg"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", max_length=40)
    ticket_id: str = Field(foreign_key="tickets.id", max_length=40)
    author_type: str = Field(max_length=20)
    author_key_id: str | None = Field(default=None, max_length=40)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class StageTransition(SQLModel, table=True):
    """One row per stage change, the source of time-in-stage statistics."""

    __tablename__ = "stage_transitions"
    __table_args__ = (Index("ix_stage_transitions_merchant_at", "merchant_id", "at"),)
    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    merchant_id: str = Field(foreign_key="merchants.id", max_length=40)
    ticket_id: str = Field(foreign_key="tickets.id", index=True, max_length=40)
    from_stage: str | None = Field(default=None, max_length=40)
    to_stage: str = Field(max_length=40)
    seconds_in_from_stage: float | None = None
    actor: str = Field(max_length=20)
    at: datetime = Field(default_factory=utcnow)


EXECUTION_PENDING = "status = 'executing' AND timed_out_at IS NULL"


class ActionRequest(SQLModel, table=True):
    """An action asked for, the decision that governed it, and for an external action (a refund, say) its
    execution by a partner system: ``executing`` until the partner reports the outcome."""

    __tablename__ = "action_requests"
    __table_args__ = (
        Index("ix_action_requests_merchant_status", "merchant_id", "status", "created_at"),
        # The scheduler's timeout scan reads only the actions still executing and not yet timed out.
        Index(
            "ix_action_requests_execution_pending",
            "execution_deadline_at",
            sqlite_where=text(EXECUTION_PENDING),
            postgresql_where=text(EXECUTION_PENDING),
        ),
    )
    id: str = Field(default_factory=lambda: new_id("act"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", max_length=40)
    ticket_id: str = Field(foreign_key="tickets.id", index=True, max_length=40)
    type: str = Field(max_length=40)
    amount: float | None = None
    params: dict[str, Any] = _json_dict()
    actor: str = Field(max_length=20)
    api_key_id: str | None = Field(default=None, max_length=40)
    status: str = Field(max_length=20)
    effect: str = Field(max_length=20)
    matched_rules: list[str] = _json_list()
    deciding_rules: list[str] = _json_list()
    approvers: list[str] = _json_list()
    handoff: bool = Field(default=False)
    handoff_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    explanation: str = Field(default="", sa_column=Column(Text, nullable=False))
    ruleset_version: int | None = None
    facts: dict[str, Any] = _json_dict()
    decided_by_key_id: str | None = Field(default=None, max_length=40)
    decided_at: datetime | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    # External actions: handed to the partner (executing) until it reports SUCCEEDED or FAILED.
    executing_at: datetime | None = None
    execution_deadline_at: datetime | None = None
    timed_out_at: datetime | None = None
    completed_at: datetime | None = None
    completed_by_key_id: str | None = Field(default=None, max_length=40)
    external_ref: str | None = Field(default=None, max_length=200)
    outcome_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AuditEvent(SQLModel, table=True):
    """Append-only: who did what, before/after, and for decisions the exact facts seen."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_merchant_ticket", "merchant_id", "ticket_id", "id"),
        Index("ix_audit_merchant_kind", "merchant_id", "kind", "id"),
    )
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    merchant_id: str = Field(foreign_key="merchants.id", max_length=40)
    ticket_id: str | None = Field(default=None, max_length=40)
    kind: str = Field(max_length=60)
    actor: str = Field(max_length=20)
    api_key_id: str | None = Field(default=None, max_length=40)
    before: dict[str, Any] = _json_dict()
    after: dict[str, Any] = _json_dict()
    ruleset_version: int | None = None
    model_version: str | None = Field(default=None, max_length=80)
    facts: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    decision: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class RulesetVersion(SQLModel, table=True):
    __tablename__ = "ruleset_versions"
    __table_args__ = (UniqueConstraint("merchant_id", "version"),)
    id: str = Field(default_factory=lambda: new_id("rsv"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", index=True, max_length=40)
    version: int
    name: str = Field(max_length=200)
    source: str = Field(sa_column=Column(Text, nullable=False))
    digest: str = Field(max_length=64)
    message: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_by_key_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow)


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_records"
    merchant_id: str = Field(foreign_key="merchants.id", primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=200)
    operation: str = Field(max_length=60)
    request_hash: str = Field(max_length=64)
    response: dict[str, Any] = _json_dict()
    created_at: datetime = Field(default_factory=utcnow, index=True)


class ClassificationCorrection(SQLModel, table=True):
    __tablename__ = "classification_corrections"
    # The report roll-ups read a ticket's corrections (workflow.reports.rollups).
    __table_args__ = (Index("ix_corrections_merchant_ticket", "merchant_id", "ticket_id"),)
    id: str = Field(default_factory=lambda: new_id("cor"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", index=True, max_length=40)
    ticket_id: str = Field(foreign_key="tickets.id", max_length=40)
    subject: str = Field(default="", sa_column=Column(Text, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    old_category: str | None = Field(default=None, max_length=60)
    old_priority: str | None = Field(default=None, max_length=20)
    category: str | None = Field(default=None, max_length=60)
    priority: str | None = Field(default=None, max_length=20)
    model_version: str | None = Field(default=None, max_length=80)
    api_key_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow)


class QueueState(SQLModel, table=True):
    """A per-merchant counter bumped in every transaction that changes the queue."""

    __tablename__ = "queue_state"
    merchant_id: str = Field(foreign_key="merchants.id", primary_key=True, max_length=40)
    version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    updated_at: datetime = Field(default_factory=utcnow)


class EscalationFiring(SQLModel, table=True):
    """One row per escalation fired for a ticket's stay in a stage: the unique key makes it fire once."""

    __tablename__ = "escalation_firings"
    __table_args__ = (UniqueConstraint("merchant_id", "ticket_id", "rule_id", "stage_entered_at"),)
    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    merchant_id: str = Field(foreign_key="merchants.id", max_length=40)
    ticket_id: str = Field(foreign_key="tickets.id", max_length=40)
    rule_id: str = Field(max_length=100)
    stage_entered_at: datetime
    fired_at: datetime = Field(default_factory=utcnow)


class WebhookEndpoint(SQLModel, table=True):
    """A partner system's URL that receives signed events of the types it subscribed to (workflow.webhooks).

    The signing secret must be readable to sign with, so it is stored as issued; a rotated-out secret keeps
    signing beside the new one until ``previous_secret_expires_at``. ``failing_since`` is the first failure
    since the last success: a day of that disables the endpoint with ``disabled_reason``."""

    __tablename__ = "webhook_endpoints"
    id: str = Field(default_factory=lambda: new_id("whe"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", index=True, max_length=40)
    url: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", max_length=200)
    event_types: list[str] = _json_list()
    enabled: bool = Field(default=True)
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: datetime | None = None
    secret_rotated_at: datetime | None = None
    failing_since: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookEvent(SQLModel, table=True):
    """The outbox: one row per event a merchant's endpoints subscribed to, written in the transaction of the
    change it describes. ``id`` is the ``webhook-id`` every delivery of it carries; ``payload`` is the exact
    JSON text that is signed and sent."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_merchant_created", "merchant_id", "created_at"),)
    id: str = Field(default_factory=lambda: new_id("evt"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", max_length=40)
    type: str = Field(max_length=60)
    ticket_id: str | None = Field(default=None, max_length=40)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


WEBHOOK_PENDING = "status = 'pending'"


class WebhookDelivery(SQLModel, table=True):
    """One event to one endpoint: ``pending`` (due at ``next_attempt_at``; while an attempt is in flight,
    ``lease_token`` is set and ``next_attempt_at`` is the end of its lease), ``delivered`` or ``failed``."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The dispatcher's scans read only pending rows (partial indexes: the delivered history is not read).
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=text(WEBHOOK_PENDING),
            postgresql_where=text(WEBHOOK_PENDING),
        ),
        Index(
            "ix_webhook_deliveries_endpoint_due",
            "endpoint_id",
            "next_attempt_at",
            sqlite_where=text(WEBHOOK_PENDING),
            postgresql_where=text(WEBHOOK_PENDING),
        ),
        Index("ix_webhook_deliveries_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
    )
    id: str = Field(default_factory=lambda: new_id("whd"), primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", max_length=40)
    event_id: str = Field(foreign_key="webhook_events.id", index=True, max_length=40)
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id", max_length=40)
    status: str = Field(default="pending", max_length=20)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_token: str | None = Field(default=None, max_length=40)
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    delivered_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class WebhookAttempt(SQLModel, table=True):
    """Append-only: one row per HTTP attempt of a delivery (or a test ping, ``delivery_id`` null)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
        Index("ix_webhook_attempts_endpoint", "merchant_id", "endpoint_id", "id"),
    )
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    merchant_id: str = Field(foreign_key="merchants.id", max_length=40)
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id", max_length=40)
    delivery_id: str | None = Field(default=None, max_length=40)
    event_id: str = Field(max_length=40)
    attempt: int
    started_at: datetime
    status_code: int | None = None
    latency_ms: float | None = None
    ok: bool = Field(default=False)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    response_excerpt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ReportCount(SQLModel, table=True):
    """The reports' roll-ups (``workflow.reports.rollups``): per merchant, split dimension (``dim``: '' for
    all tickets, or team, category, priority, channel) and its ``value``, UTC day, metric and key (a stage
    pair, an action outcome, ...), a count ``n`` and, for durations, the ``total`` seconds and the
    histogram ``bin`` (-1 for plain counts). Every event is counted once per dimension, so a report split
    one way reads only that dimension's rows."""

    __tablename__ = "report_counts"
    # The key's order is the reading order: one merchant, one split, a few metrics, a range of days.
    merchant_id: str = Field(foreign_key="merchants.id", primary_key=True, max_length=40)
    dim: str = Field(default="", primary_key=True, max_length=20)
    metric: str = Field(primary_key=True, max_length=30)
    day: date = Field(primary_key=True)
    key: str = Field(default="", primary_key=True, max_length=250)
    value: str = Field(default="", primary_key=True, max_length=60)
    bin: int = Field(default=-1, primary_key=True)
    n: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    total: float = Field(default=0.0)


class TicketReportState(SQLModel, table=True):
    """What one ticket currently contributes to ``report_counts`` (a list of entries), so a change to the
    ticket applies exactly the difference."""

    __tablename__ = "ticket_report_states"
    ticket_id: str = Field(foreign_key="tickets.id", primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchants.id", index=True, max_length=40)
    entries: list[Any] = _json_list()


ALL_TABLES: tuple[type[SQLModel], ...] = (
    Merchant,
    ApiKey,
    Team,
    Agent,
    TeamMember,
    Ticket,
    Message,
    StageTransition,
    ActionRequest,
    AuditEvent,
    RulesetVersion,
    IdempotencyRecord,
    ClassificationCorrection,
    QueueState,
    EscalationFiring,
    WebhookEndpoint,
    WebhookEvent,
    WebhookDelivery,
    WebhookAttempt,
    ReportCount,
    TicketReportState,
)
