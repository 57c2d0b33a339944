"""Agents' classification corrections: applied to the ticket and kept as training rows for the next model."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from storage.tables import ClassificationCorrection, Ticket
from workflow.errors import invalid
from workflow.rulesets.versions import active_ruleset
from workflow.services import WorkflowServices
from workflow.stages import PRIORITIES
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.changes import record_change, snapshot
from workflow.tickets.read import get_ticket
from workflow.tickets.sla import apply_sla


def correct_classification(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    ticket_id: str,
    category: str | None = None,
    priority: str | None = None,
) -> Ticket:
    """An agent's correction: applied to the ticket and stored as training data for the next model."""
    principal.require(Role.ADMIN, Role.AGENT)
    if category is None and priority is None:
        raise invalid("give a category, a priority or both", "category")
    labels = services.classifier.info.labels
    if category is not None and category not in labels:
        raise invalid(f"unknown category {category!r}; one of: {', '.join(labels)}", "category")
    if priority is not None and priority not in PRIORITIES:
        raise invalid(f"unknown priority {priority!r}; one of: {', '.join(PRIORITIES)}", "priority")
    ticket = get_ticket(session, principal, ticket_id, for_update=True)
    before = snapshot(ticket)
    session.add(
        ClassificationCorrection(
            merchant_id=principal.merchant_id,
            ticket_id=ticket.id,
            subject=ticket.subject,
            body=ticket.body,
            old_category=ticket.category,
            old_priority=ticket.priority,
            category=category,
            priority=priority,
            model_version=ticket.model_version,
            api_key_id=principal.key_id,
            created_at=services.clock(),  # the workflow's clock, as every other row it writes
        )
    )
    if category is not None:
        ticket.category = category
    if priority is not None and priority != ticket.priority:
        ticket.priority = priority
        apply_sla(ticket, active_ruleset(session, services, principal.merchant_id).ruleset)
    record_change(
        session,
        services,
        principal,
        ticket,
        audit_kind="classification.corrected",
        event_kind="updated",
        before=before,
        corrected=True,
    )
    return ticket


def corrections_as_training_rows(session: Session, merchant_id: str) -> list[dict[str, Any]]:
    """Corrections in the seed set's column layout, for ``bookbag classifier train --data``."""
    rows = session.exec(
        select(ClassificationCorrection)
        .where(ClassificationCorrection.merchant_id == merchant_id)
        .order_by(col(ClassificationCorrection.created_at))
    )
    latest: dict[str, dict[str, Any]] = {}
    for c in rows:  # the newest correction of a ticket wins
        row = latest.setdefault(
            c.ticket_id,
            {
                "subject": c.subject,
                "body": c.body,
                "category": c.old_category,
                "priority": c.old_priority,
                "source": f"correction/{c.ticket_id}",
            },
        )
        if c.category:
            row["category"] = c.category
        if c.priority:
            row["priority"] = c.priority
    return list(latest.values())
