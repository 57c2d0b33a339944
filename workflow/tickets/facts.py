"""Facts: what the rules see about a ticket, its customer and order, the classifier, the action and the time.

Unknown values are left out rather than set to None, so a rule on a missing fact is false (and its trace
says "missing"), as the ruleset semantics promise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from classifier.cleaning import clean_body
from storage.tables import Team, Ticket

BUSINESS_HOURS = range(9, 18)  # Mon-Fri 09:00-17:59 UTC; merchants' own calendars are future work


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def time_facts(now: datetime) -> dict[str, Any]:
    weekday = now.weekday()
    return {
        "hour": now.hour,
        "weekday": weekday,
        "business_hours": weekday < 5 and now.hour in BUSINESS_HOURS,
    }


def ticket_facts(ticket: Ticket, now: datetime, *, team_name: str | None = None) -> dict[str, Any]:
    order_age_days = None
    if ticket.order_created_at is not None:
        order_age_days = round((now - ticket.order_created_at).total_seconds() / 86400, 3)
    return {
        "ticket": _compact(
            {
                "id": ticket.id,
                "stage": ticket.stage,
                "priority": ticket.priority,
                "category": ticket.category,
                "channel": ticket.channel,
                "subject": ticket.subject,
                # The customer's new words: no HTML, quoted history or signature (classifier.cleaning), as the
                # model reads them; the stored ticket keeps its raw body.
                "body": clean_body(ticket.body),
                "language": ticket.language,
                "tags": list(ticket.tags),
                "team": team_name,
                "assigned": ticket.assignee_id is not None,
                "needs_human": ticket.needs_human,
                "seconds_in_stage": max(0.0, (now - ticket.stage_entered_at).total_seconds()),
                "age_seconds": max(0.0, (now - ticket.created_at).total_seconds()),
                "sla_breached": ticket.sla_breached_at is not None,
            }
        ),
        "customer": _compact(
            {
                "email": ticket.customer_email,
                "name": ticket.customer_name,
                "vip": ticket.customer_vip,
                "lifetime_value": ticket.customer_lifetime_value,
                "order_count": ticket.customer_order_count,
            }
        ),
        "order": _compact(
            {
                "id": ticket.order_id,
                "total": ticket.order_total,
                "currency": ticket.order_currency,
                "financial_status": ticket.order_financial_status,
                "fulfillment_status": ticket.order_fulfillment_status,
                "age_days": order_age_days,
                "delivered": None if ticket.order_id is None else ticket.order_delivered_at is not None,
            }
        ),
        "classifier": _compact(
            {
                "category": ticket.category,
                "category_confidence": ticket.category_confidence,
                "priority": ticket.priority,
                "priority_confidence": ticket.priority_confidence,
                "model_version": ticket.model_version,
            }
        ),
        "time": time_facts(now),
    }


def stored_ticket_facts(session: Session, ticket: Ticket, now: datetime) -> dict[str, Any]:
    """:func:`ticket_facts` for a stored ticket, with its team's name looked up."""
    team = session.get(Team, ticket.team_id) if ticket.team_id else None
    return ticket_facts(ticket, now, team_name=team.name if team else None)


def with_action(facts: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    return {**facts, "action": _compact(action)}
