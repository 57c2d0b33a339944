"""SLA due times from the active ruleset's targets per priority."""

from __future__ import annotations

from datetime import datetime

from policy import Ruleset
from storage.tables import Ticket


def apply_sla(ticket: Ticket, ruleset: Ruleset) -> None:
    """(Re)compute due times from the ticket's creation and current priority.

    A first response already given keeps its met/missed status; only the pending targets move.
    """
    target = ruleset.sla.get(ticket.priority)
    if target is None:
        ticket.first_response_due_at = None
        ticket.resolution_due_at = None
        return
    ticket.first_response_due_at = ticket.created_at + target.first_response
    ticket.resolution_due_at = ticket.created_at + target.resolution


def breach_of(ticket: Ticket, now: datetime) -> str | None:
    """Which SLA the ticket has breached at ``now`` ("first_response" or "resolution"), if any."""
    if (
        ticket.first_responded_at is None
        and ticket.first_response_due_at
        and ticket.first_response_due_at < now
    ):
        return "first_response"
    if ticket.resolved_at is None and ticket.resolution_due_at and ticket.resolution_due_at < now:
        return "resolution"
    return None
