"""Messages on a ticket: who a key posts as, posting (first response time), reading per ticket and for many
tickets at once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from storage.tables import Message
from workflow.errors import DomainError, ErrorCode, invalid
from workflow.services import WorkflowServices
from workflow.stages import MESSAGE_AUTHORS
from workflow.tenancy.principal import TICKET_WRITERS, Principal, Role
from workflow.tickets.changes import record_change, require_permission
from workflow.tickets.read import get_ticket
from workflow.tickets.updates import MAX_BODY

_AUTHOR_OF_ROLE = {
    Role.ADMIN: "agent",
    Role.AGENT: "agent",
    Role.AI: "ai",
    Role.PARTNER: "customer",
}


def message_author(principal: Principal) -> str:
    """Who a message posted with this key is from: human agents (and admins) as ``agent``, AI keys as
    ``ai``, partner systems relay the customer's words as ``customer``."""
    try:
        return _AUTHOR_OF_ROLE[principal.role]
    except KeyError:
        raise DomainError(
            ErrorCode.FORBIDDEN, f"a {principal.role.value} key cannot post messages", "authorType"
        ) from None


def add_message(
    session: Session,
    services: WorkflowServices,
    principal: Principal,
    *,
    ticket_id: str,
    body: str,
    author_type: str | None = None,
) -> Message:
    """Agents and AI reply as themselves; partners relay customer messages (author ``customer``).

    The author comes from the caller's key, never from the input: ``author_type``, when given, must be the
    key's own author (so a client can state what it expects), and ``system`` is written only by Bookbag
    itself (scheduler, workflow), never through this function."""
    principal.require(*TICKET_WRITERS)
    if not body.strip():
        raise invalid("message body is empty", "body")
    if len(body) > MAX_BODY:
        raise invalid(f"message body must be at most {MAX_BODY} characters", "body")
    author = message_author(principal)
    if author_type is not None and author_type != author:
        if author_type not in MESSAGE_AUTHORS:
            raise invalid(f"author must be one of {', '.join(MESSAGE_AUTHORS)}", "authorType")
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"a message's author comes from the API key: a {principal.role.value} key posts as {author}, "
            f"not {author_type}",
            "authorType",
        )
    ticket = get_ticket(session, principal, ticket_id, for_update=True)
    require_permission(session, services, principal, ticket, {"type": "reply"})
    now = services.clock()
    message = Message(
        merchant_id=principal.merchant_id,
        ticket_id=ticket.id,
        author_type=author,
        author_key_id=principal.key_id,
        body=body,
        created_at=now,
    )
    session.add(message)
    if author in ("agent", "ai") and ticket.first_responded_at is None:
        ticket.first_responded_at = now
    record_change(
        session,
        services,
        principal,
        ticket,
        audit_kind="message.added",
        event_kind="message_added",
        after={"message_id": message.id, "author": author},
        message_id=message.id,
        author=author,
    )
    return message


def list_messages(session: Session, merchant_id: str, ticket_id: str) -> list[Message]:
    return list(
        session.exec(
            select(Message)
            .where(Message.merchant_id == merchant_id, Message.ticket_id == ticket_id)
            .order_by(col(Message.created_at), col(Message.id))
        )
    )


def messages_by_ticket_ids(
    session: Session, merchant_id: str, ticket_ids: Sequence[str]
) -> dict[str, list[Message]]:
    grouped: dict[str, list[Message]] = {tid: [] for tid in ticket_ids}
    if not ticket_ids:
        return grouped
    rows = session.exec(
        select(Message)
        .where(Message.merchant_id == merchant_id, col(Message.ticket_id).in_(list(ticket_ids)))
        .order_by(col(Message.created_at), col(Message.id))
    )
    for message in rows:
        grouped[message.ticket_id].append(message)
    return grouped
