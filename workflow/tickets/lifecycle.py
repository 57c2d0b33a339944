"""The lifecycle of a merchant's data: retention of closed tickets' history, export, and erasure of a
customer's personal data.

* Retention (:func:`prune_closed`): for tickets closed (``resolved``/``closed``) more than ``closed_days``
  ago, their stage transitions, escalation firings and audit rows *without* a decision are deleted. Decision
  records — audit rows carrying a decision, and action requests — stay for as long as the merchant's
  ``decision_retention_days`` says (NULL: for ever). The tickets and their messages stay: counts do not
  change. Deletion is idempotent, so processes running it at once only repeat each other's work.
* Export (:func:`export_rows`): every table's rows of one merchant, as plain JSON-able dicts.
* Erasure (:func:`forget_customer`): a customer's personal data — email, name, the subjects and bodies of
  their tickets, the messages on them, correction copies — is replaced by ``[redacted]`` wherever it is
  stored: the ticket and message rows, the JSON of audit rows and action requests (before/after, facts,
  decisions, params) and stored idempotent responses. Rows are kept, so counts, stages, decisions' effects
  and matched rules stay as they were; only the strings that carry the customer's data change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, delete, func, not_, or_, update
from sqlmodel import Session, SQLModel, col, select

from storage.db import Database
from storage.tables import (
    ALL_TABLES,
    ActionRequest,
    AuditEvent,
    ClassificationCorrection,
    EscalationFiring,
    IdempotencyRecord,
    Merchant,
    Message,
    StageTransition,
    Ticket,
)
from workflow import audit
from workflow.errors import invalid
from workflow.stages import CLOSED_STAGES
from workflow.tenancy.principal import Principal, Role

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
MIN_CONTAINED = (
    4  # shorter personal strings (a two-letter name) are redacted where equal, not where contained
)
PERSONAL_KEYS = frozenset({"customer_email", "customer_name", "email", "subject", "body"})


# -- retention ----------------------------------------------------------------------------------------------


@dataclass
class PruneReport:
    transitions: int = 0
    escalation_firings: int = 0
    audit_events: int = 0
    decision_audit_events: int = 0
    action_requests: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def carries_decision() -> ColumnElement[bool]:
    """An audit row with a decision (the JSON column holds ``null`` as JSON for the others, not SQL NULL)."""
    decision = col(AuditEvent.decision)
    return and_(decision.is_not(None), cast(decision, Text) != "null")


def _closed_before(cutoff: datetime, merchant_id: str | None = None) -> Any:
    query = select(Ticket.id).where(
        col(Ticket.stage).in_(CLOSED_STAGES), col(Ticket.stage_entered_at) < cutoff
    )
    if merchant_id is not None:
        query = query.where(Ticket.merchant_id == merchant_id)
    return query


def prune_closed(session: Session, now: datetime, *, closed_days: int) -> PruneReport:
    """Delete the history of tickets closed more than ``closed_days`` ago (0: keep everything), keeping
    decision records per merchant (``merchants.decision_retention_days``)."""
    report = PruneReport()
    if closed_days <= 0:
        return report
    closed = _closed_before(now - timedelta(days=closed_days))
    report.transitions = _deleted(
        session, delete(StageTransition).where(col(StageTransition.ticket_id).in_(closed))
    )
    report.escalation_firings = _deleted(
        session, delete(EscalationFiring).where(col(EscalationFiring.ticket_id).in_(closed))
    )
    report.audit_events = _deleted(
        session,
        delete(AuditEvent).where(col(AuditEvent.ticket_id).in_(closed), not_(carries_decision())),
    )
    kept = session.exec(
        select(Merchant.id, Merchant.decision_retention_days).where(
            col(Merchant.decision_retention_days).is_not(None)
        )
    ).all()
    for merchant_id, days in kept:
        assert days is not None
        decided = _closed_before(now - timedelta(days=max(days, closed_days)), merchant_id)
        report.decision_audit_events += _deleted(
            session,
            delete(AuditEvent).where(
                col(AuditEvent.merchant_id) == merchant_id, col(AuditEvent.ticket_id).in_(decided)
            ),
        )
        report.action_requests += _deleted(
            session,
            delete(ActionRequest).where(
                col(ActionRequest.merchant_id) == merchant_id, col(ActionRequest.ticket_id).in_(decided)
            ),
        )
    return report


def _deleted(session: Session, statement: Any) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def set_decision_retention(session: Session, merchant_id: str, days: int | None) -> None:
    if days is not None and not 1 <= days <= 36_500:
        raise invalid("decision retention must be between 1 and 36500 days (or none: keep for ever)", "days")
    session.execute(
        update(Merchant).where(col(Merchant.id) == merchant_id).values(decision_retention_days=days)
    )


# -- export -------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def export_rows(session: Session, merchant_id: str) -> Iterator[dict[str, Any]]:
    """``{"table": name, "row": {...}}`` for every row of every table that belongs to the merchant."""
    for model in ALL_TABLES:
        table: Any = model.__table__  # type: ignore[attr-defined]
        column = table.c.id if model is Merchant else table.c.merchant_id
        order = list(table.primary_key.columns)
        for row in session.execute(select(table).where(column == merchant_id).order_by(*order)).mappings():
            yield {"table": table.name, "row": {name: _plain(value) for name, value in row.items()}}


# -- erasure ------------------------------------------------------------------------------------------------


@dataclass
class ForgetReport:
    tickets: int = 0
    messages: int = 0
    corrections: int = 0
    audit_events: int = 0
    action_requests: int = 0
    idempotency_records: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Redactor:
    """Replaces every string that is (or, when long enough, contains) one of the customer's strings."""

    def __init__(self, personal: set[str], *, by_key: bool) -> None:
        self.by_key = by_key  # also any string under a personal key (rows that are about the customer)
        self.equal = {s.casefold() for s in personal if s.strip()}
        self.contained = [s for s in self.equal if len(s) >= MIN_CONTAINED]

    def hits(self, text: str) -> bool:
        folded = text.casefold()
        return folded in self.equal or any(s in folded for s in self.contained)

    def walk(self, value: Any, key: str | None = None) -> tuple[Any, bool]:
        if isinstance(value, str):
            if value != REDACTED and (self.hits(value) or (self.by_key and key in PERSONAL_KEYS and value)):
                return REDACTED, True
            return value, False
        if isinstance(value, dict):
            changed = False
            out: dict[str, Any] = {}
            for k, v in value.items():
                out[k], hit = self.walk(v, k)
                changed = changed or hit
            return (out, True) if changed else (value, False)
        if isinstance(value, list):
            items = [self.walk(v) for v in value]
            if any(hit for _, hit in items):
                return [v for v, _ in items], True
            return value, False
        return value, False


def forget_customer(session: Session, principal: Principal, email: str) -> ForgetReport:
    """Redact the personal data of the customer with ``email`` across the merchant's data (admins only)."""
    principal.require(Role.ADMIN)
    address = email.strip().casefold()
    if not 3 <= len(address) <= 320 or "@" not in address:
        raise invalid("email must be an email address", "email")
    merchant_id = principal.merchant_id
    report = ForgetReport()
    tickets = list(
        session.exec(
            select(Ticket).where(
                Ticket.merchant_id == merchant_id, func.lower(Ticket.customer_email) == address
            )
        )
    )
    ids = [ticket.id for ticket in tickets]
    personal = {address}
    for ticket in tickets:
        personal.update(s for s in (ticket.customer_name, ticket.subject, ticket.body) if s)
    messages = list(session.exec(select(Message).where(col(Message.ticket_id).in_(ids)))) if ids else []
    personal.update(message.body for message in messages if message.body)
    corrections = (
        list(
            session.exec(
                select(ClassificationCorrection).where(col(ClassificationCorrection.ticket_id).in_(ids))
            )
        )
        if ids
        else []
    )
    theirs = _Redactor(personal, by_key=True)  # rows about their tickets
    anywhere = _Redactor(personal, by_key=False)  # the merchant's other rows: only their strings

    for ticket in tickets:
        ticket.customer_email = None
        ticket.customer_name = None
        ticket.subject = REDACTED
        ticket.body = REDACTED
        session.add(ticket)
    report.tickets = len(tickets)
    for message in messages:
        message.body = REDACTED
        session.add(message)
    report.messages = len(messages)
    for correction in corrections:
        correction.subject = correction.body = REDACTED
        session.add(correction)
    report.corrections = len(corrections)
    # Other tickets and messages of the merchant that mention the address (a colleague forwarding it).
    pattern = f"%{address}%"
    for row in session.exec(
        select(Ticket).where(
            Ticket.merchant_id == merchant_id,
            or_(func.lower(Ticket.subject).like(pattern), func.lower(Ticket.body).like(pattern)),
        )
    ):
        row.subject, row.body = _without(row.subject, address), _without(row.body, address)
        session.add(row)
    for message in session.exec(
        select(Message).where(Message.merchant_id == merchant_id, func.lower(Message.body).like(pattern))
    ):
        message.body = _without(message.body, address)
        session.add(message)

    if ids:
        report.audit_events = _redact_json(
            session,
            AuditEvent,
            ("before", "after", "facts", "decision"),
            theirs,
            col(AuditEvent.ticket_id).in_(ids),
        )
        report.action_requests = _redact_json(
            session,
            ActionRequest,
            ("params", "facts", "explanation", "reason"),
            theirs,
            col(ActionRequest.ticket_id).in_(ids),
        )
    report.idempotency_records = _redact_json(
        session, IdempotencyRecord, ("response",), anywhere, IdempotencyRecord.merchant_id == merchant_id
    )
    session.flush()
    audit.record(session, principal, kind="customer.forgotten", after={"counts": report.as_dict()})
    return report


def _without(text: str, address: str) -> str:
    lowered = text.casefold()
    out, start = [], 0
    while (found := lowered.find(address, start)) >= 0:
        out.append(text[start:found])
        out.append(REDACTED)
        start = found + len(address)
    out.append(text[start:])
    return "".join(out)


def _redact_json(
    session: Session, model: type[SQLModel], fields: tuple[str, ...], redactor: _Redactor, where: Any
) -> int:
    changed_rows = 0
    for row in session.exec(select(model).where(where)):
        changed = False
        for name in fields:
            value, hit = redactor.walk(getattr(row, name))
            if hit:
                setattr(row, name, value)
                changed = True
        if changed:
            session.add(row)
            changed_rows += 1
    return changed_rows


async def retention_loop(
    database: Database, clock: Callable[[], datetime], *, closed_days: int, interval: float
) -> None:
    """The server's retention: :func:`prune_closed` every ``interval`` seconds, one unit of work each."""

    def once() -> PruneReport:
        with database.unit_of_work() as session:
            return prune_closed(session, clock(), closed_days=closed_days)

    while True:
        try:
            report = await asyncio.to_thread(once)
            if any(report.as_dict().values()):
                log.info("retention: deleted %s", report.as_dict())
        except asyncio.CancelledError:
            raise
        except Exception:  # rolled back; the same rows are found next time
            log.exception("retention run failed")
        await asyncio.sleep(interval)
