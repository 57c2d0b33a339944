"""Tickets through the real services on SQLite and PostgreSQL: ingest, transitions, assignment, tenancy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import select

from storage.db import Database
from storage.tables import Agent, AuditEvent, StageTransition, Ticket
from tests.conftest import MerchantKeys, assert_open_counts_match
from tests.workflow.conftest import Clock
from tests.workflow.helpers import STRICT_RULESET, ingest, principal, publish
from workflow.errors import DomainError, ErrorCode
from workflow.services import WorkflowServices
from workflow.tenancy import agents
from workflow.tickets import service as tickets


def test_ingest_classifies_routes_and_triages(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ticket = ingest(database, services, m)
    assert ticket.stage == "triaged"
    assert ticket.category is not None and 0.0 <= (ticket.category_confidence or -1) <= 1.0
    assert ticket.priority in ("urgent", "high", "normal", "low")
    assert ticket.model_version
    assert ticket.first_response_due_at is not None and ticket.first_response_due_at > ticket.created_at
    with database.read_only() as session:
        moves = session.exec(select(StageTransition).where(StageTransition.ticket_id == ticket.id)).all()
        assert [(t.from_stage, t.to_stage, t.actor) for t in moves] == [
            (None, "new", "partner"),
            ("new", "triaged", "system"),
        ]
        kinds = {e.kind for e in session.exec(select(AuditEvent).where(AuditEvent.ticket_id == ticket.id))}
        assert {"ticket.created", "ticket.routed", "ticket.transitioned"} <= kinds


def test_transition_follows_graph_and_version(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys], clock: Clock
) -> None:
    m = make_merchant()
    ticket = ingest(database, services, m)
    with database.unit_of_work() as session, pytest.raises(DomainError) as err:
        tickets.transition_ticket(
            session,
            services,
            principal(m),
            ticket_id=ticket.id,
            to="closed",
            expected_version=ticket.version + 5,
        )
    assert err.value.code is ErrorCode.CONFLICT
    with database.unit_of_work() as session, pytest.raises(DomainError) as err:
        tickets.transition_ticket(
            session,
            services,
            principal(m),
            ticket_id=ticket.id,
            to="waiting_on_customer",
            expected_version=None,
        )
    assert err.value.code is ErrorCode.TRANSITION_NOT_ALLOWED
    clock.advance(minutes=30)
    with database.unit_of_work() as session:
        moved = tickets.transition_ticket(
            session,
            services,
            principal(m),
            ticket_id=ticket.id,
            to="escalated",
            expected_version=ticket.version,
        )
        assert moved.stage == "escalated" and moved.version == ticket.version + 1
    with database.read_only() as session:
        last = session.exec(
            select(StageTransition).where(
                StageTransition.ticket_id == ticket.id, StageTransition.to_stage == "escalated"
            )
        ).one()
        assert last.seconds_in_from_stage == pytest.approx(1800)


def test_failed_mutation_changes_nothing(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ticket = ingest(database, services, m)
    with pytest.raises(DomainError), database.unit_of_work() as session:
        tickets.add_message(session, services, principal(m), ticket_id=ticket.id, body="first reply")
        tickets.transition_ticket(
            session, services, principal(m), ticket_id=ticket.id, to="nowhere", expected_version=None
        )
    with database.read_only() as session:
        again = session.get(Ticket, ticket.id)
        assert again is not None and again.version == ticket.version and again.first_responded_at is None
        assert tickets.list_messages(session, m.merchant_id, ticket.id) == []


def test_other_merchant_sees_not_found(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    mine, theirs = make_merchant(), make_merchant()
    ticket = ingest(database, services, mine)
    with database.read_only() as session:
        with pytest.raises(DomainError) as err:
            tickets.get_ticket(session, principal(theirs), ticket.id)
        assert err.value.code is ErrorCode.NOT_FOUND
        page = tickets.list_tickets(session, principal(theirs), tickets.TicketFilter(), first=50, after=None)
        assert page.items == []


def test_cursor_pagination_walks_every_ticket_once(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys], clock: Clock
) -> None:
    m = make_merchant()
    created = set()
    for i in range(7):
        clock.advance(seconds=1 if i % 2 else 0)  # some share a timestamp: the id breaks the tie
        created.add(ingest(database, services, m, subject=f"ticket {i}").id)
    seen: list[str] = []
    after = None
    with database.read_only() as session:
        while True:
            page = tickets.list_tickets(session, principal(m), tickets.TicketFilter(), first=3, after=after)
            seen.extend(t.id for t in page.items)
            if not page.has_next_page:
                break
            after = page.end_cursor
    assert len(seen) == len(set(seen)) == 7 and set(seen) == created


def test_least_loaded_and_round_robin_respect_capacity_and_availability(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    admin = principal(m, "admin")
    with database.unit_of_work() as session:
        team = agents.create_team(session, admin, name="support")
        a = agents.create_agent(session, admin, name="A", email="a@x.io", teams=["support"], capacity=1)
        b = agents.create_agent(session, admin, name="B", email="b@x.io", teams=["support"], capacity=5)
        agents.create_agent(
            session, admin, name="C", email="c@x.io", teams=["support"], capacity=5, available=False
        )
    order = []
    for _ in range(3):
        t = ingest(database, services, m)
        with database.unit_of_work() as session:
            team_row = agents.get_team(session, m.merchant_id, team.id)
            picked = agents.pick_assignee(session, m.merchant_id, team_row, strategy="round_robin")
            assert picked is not None
            order.append(picked.id)
            tickets.assign_ticket(session, services, admin, ticket_id=t.id, agent_id=picked.id)
    # A fills its capacity of 1 on the first pick; C is unavailable, so B takes the rest
    assert order == [a.id, b.id, b.id]
    with database.read_only() as session:
        team_row = agents.get_team(session, m.merchant_id, team.id)
        assert (
            agents.pick_assignee(session, m.merchant_id, team_row, strategy="least_loaded", skills=["nope"])
            is None
        )


def test_ai_direct_mutations_are_held_to_the_permission_rules(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    publish(database, services, m)  # the strict ruleset lets the AI reply but not transition
    ticket = ingest(database, services, m)
    with pytest.raises(DomainError) as err, database.unit_of_work() as session:
        tickets.transition_ticket(
            session, services, principal(m, "ai"), ticket_id=ticket.id, to="escalated", expected_version=None
        )
    assert err.value.code is ErrorCode.POLICY_DENIED
    with database.unit_of_work() as session:
        reply = tickets.add_message(
            session, services, principal(m, "ai"), ticket_id=ticket.id, body="Hi, checking now."
        )
        assert reply.author_type == "ai"
    publish(
        database,
        services,
        m,
        STRICT_RULESET.replace(
            "actions: [reply]\n    effect: allow\nrouting",
            "actions: [reply, transition]\n    effect: allow\nrouting",
        ),
    )
    with database.unit_of_work() as session:
        moved = tickets.transition_ticket(
            session, services, principal(m, "ai"), ticket_id=ticket.id, to="escalated", expected_version=None
        )
    assert moved.stage == "escalated"


def test_cursor_encoding_is_stable_and_round_trips() -> None:
    import base64
    import json
    from datetime import UTC, datetime

    from storage.tables import Ticket as TicketRow
    from workflow.tickets.service import decode_cursor, encode_cursor

    created = datetime(2026, 11, 26, 7, 5, 3, 123456, tzinfo=UTC)
    row = TicketRow(id="tkt_0123456789abcdef0123", merchant_id="m", subject="s", created_at=created)
    expected = base64.urlsafe_b64encode(json.dumps([created.isoformat(), row.id]).encode()).decode()
    assert encode_cursor(row) == expected.rstrip("=")  # cursors handed out before stay valid
    assert decode_cursor(encode_cursor(row)) == (created, row.id)


def test_each_agents_open_ticket_count_follows_every_change(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    """``Agent.open_tickets`` (what assignment reads) moves with assigning, reassigning, resolving,
    reopening and closing, through the direct mutations and through actions; a rollback changes nothing."""
    from workflow import actions

    m = make_merchant()
    admin, agent = principal(m, "admin"), principal(m, "agent")
    with database.unit_of_work() as session:
        agents.create_team(session, admin, name="support")
        a = agents.create_agent(session, admin, name="A", email="a@x.io", teams=["support"])
        b = agents.create_agent(session, admin, name="B", email="b@x.io", teams=["support"])
    first, second = ingest(database, services, m), ingest(database, services, m)

    def step(change: Callable[..., object], **kwargs: object) -> None:
        with database.unit_of_work() as session:
            change(session, services, kwargs.pop("by", admin), **kwargs)
        assert_open_counts_match(database, m.merchant_id)

    step(tickets.assign_ticket, ticket_id=first.id, agent_id=a.id)
    step(tickets.assign_ticket, ticket_id=second.id, agent_id=a.id)
    step(tickets.assign_ticket, ticket_id=second.id, agent_id=b.id)  # reassigned: A -1, B +1
    step(tickets.transition_ticket, ticket_id=first.id, to="in_progress", expected_version=None)
    step(tickets.transition_ticket, ticket_id=first.id, to="resolved", expected_version=None)  # A -1
    step(tickets.transition_ticket, ticket_id=first.id, to="in_progress", expected_version=None)  # reopened
    step(actions.request_action, by=agent, ticket_id=first.id, type="assign", params={"agentId": b.id})
    step(actions.request_action, by=agent, ticket_id=second.id, type="transition", params={"to": "resolved"})
    step(actions.request_action, by=agent, ticket_id=second.id, type="close")
    with database.read_only() as session:
        counts = {
            x.id: x.open_tickets
            for x in session.exec(select(Agent).where(Agent.merchant_id == m.merchant_id))
        }
    assert counts == {a.id: 0, b.id: 1}

    with pytest.raises(DomainError), database.unit_of_work() as session:  # rolled back: no count moves
        tickets.assign_ticket(session, services, admin, ticket_id=first.id, agent_id=a.id)
        raise DomainError(ErrorCode.CONFLICT, "changed my mind")
    assert_open_counts_match(database, m.merchant_id)
