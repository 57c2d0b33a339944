"""The report roll-ups kept by the units of work equal the roll-ups recomputed from scratch.

A random sequence of units of work — each one to four operations, often on tickets created in the same
unit (whose contributions the commit hook takes from the session, not from the database): ingest alone
and in groups, replies, stage moves back and forth, assignments to agents and to other teams (which move a
ticket's whole history to another split value), AI actions allowed, approved, rejected and completed,
classification corrections, and scheduler ticks that escalate and mark breaches — over several days of a
moving clock, on SQLite and PostgreSQL. Then the merchant's roll-ups are thrown away and rebuilt from the
tickets' rows (``workflow.reports.rollups.rebuild``), and every count row and ticket state must come back the same.
The database fixture also checks, in every unit of work, that the contributions computed from the session
equal the ones computed from the rows read back.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlmodel import col

from storage.db import Database
from storage.tables import ActionRequest, ReportCount, Ticket, TicketReportState
from tests.conftest import MerchantKeys
from tests.workflow.conftest import Clock
from tests.workflow.helpers import principal
from workflow import actions
from workflow.errors import DomainError
from workflow.reports import rollups as report_rollups
from workflow.scheduler import run_due_work
from workflow.services import WorkflowServices
from workflow.tenancy import agents
from workflow.tickets.assignment import assign_ticket
from workflow.tickets.corrections import correct_classification
from workflow.tickets.ingest import TicketInput, create_tickets
from workflow.tickets.messages import add_message
from workflow.tickets.transitions import transition_ticket

SUBJECTS = [
    ("Refund for a broken mug", "The mug arrived broken, I want my money back."),
    ("Where is my parcel", "My order has not arrived after ten days."),
    ("Invoice copy", "Can I get an invoice for my last order?"),
    ("Chargeback", "I will file a chargeback with my lawyer if this is not fixed."),
]
STAGES = ["in_progress", "waiting_on_customer", "resolved", "closed", "in_progress", "resolved"]


def snapshot(database: Database, merchant_id: str) -> tuple[set[tuple[Any, ...]], dict[str, Any]]:
    with database.read_only() as session:
        counts = {
            (r.dim, r.day, r.metric, r.key, r.value, r.bin, r.n, round(r.total, 6))
            for r in session.execute(
                select(ReportCount).where(col(ReportCount.merchant_id) == merchant_id)
            ).scalars()
            if r.n or round(r.total, 6)
        }
        states = {
            r.ticket_id: r.entries
            for r in session.execute(
                select(TicketReportState).where(col(TicketReportState.merchant_id) == merchant_id)
            ).scalars()
        }
    return counts, states


@pytest.mark.parametrize("seed", [3, 4])
def test_maintained_roll_ups_equal_a_rebuild_after_random_work(
    database: Database,
    services: WorkflowServices,
    clock: Clock,
    make_merchant: Callable[..., MerchantKeys],
    seed: int,
) -> None:
    rng = random.Random(seed)
    m = make_merchant()
    admin, agent, ai, partner = (principal(m, r) for r in ("admin", "agent", "ai", "partner"))
    with database.unit_of_work() as session:
        teams = [agents.create_team(session, admin, name=n).id for n in ("support", "billing", "senior")]
        staff = [
            agents.create_agent(
                session, admin, name=f"Agent {i}", email=f"a{i}@shop.test", teams=[t], capacity=1000
            ).id
            for i, t in enumerate(["support", "billing", "senior", "support"])
        ]
    labels = services.classifier.info.labels
    made: list[str] = []
    pending: list[str] = []  # actions waiting for approval
    executing: list[str] = []

    def create(session: Any, count: int) -> None:
        inputs = []
        for _ in range(count):
            subject, body = rng.choice(SUBJECTS)
            inputs.append(
                (partner, TicketInput(subject=subject, body=body, channel=rng.choice(["email", "chat"])))
            )
        for result in create_tickets(session, services, inputs):
            assert not isinstance(result, Exception)
            made.append(result.ticket.id)

    def act(session: Any, ticket_id: str) -> None:
        outcome = actions.request_action(
            session,
            services,
            ai,
            ticket_id=ticket_id,
            type=rng.choice(["refund", "note", "close"]),
            amount=rng.choice([20.0, 400.0]),
        )
        if outcome.request.status == "pending_approval":
            pending.append(outcome.request.id)
        elif outcome.request.status == "executing":
            executing.append(outcome.request.id)

    def decide(session: Any, _ticket_id: str) -> None:
        if not pending:
            return
        action_id = pending.pop(rng.randrange(len(pending)))
        if rng.random() < 0.5:
            if actions.approve_action(session, services, agent, action_id=action_id).status == "executing":
                executing.append(action_id)
        else:
            actions.reject_action(session, services, agent, action_id=action_id, reason="no")

    def complete(session: Any, _ticket_id: str) -> None:
        if executing:
            action_id = executing.pop(rng.randrange(len(executing)))
            actions.complete_action(
                session, services, partner, action_id=action_id, outcome=rng.choice(["succeeded", "failed"])
            )

    operations: list[Callable[[Any, str], Any]] = [
        lambda s, t: add_message(s, services, agent, ticket_id=t, body="On it."),
        lambda s, t: transition_ticket(
            s, services, agent, ticket_id=t, to=rng.choice(STAGES), expected_version=None
        ),
        lambda s, t: transition_ticket(
            s, services, agent, ticket_id=t, to=rng.choice(STAGES), expected_version=None
        ),
        lambda s, t: assign_ticket(s, services, agent, ticket_id=t, agent_id=rng.choice(staff)),
        lambda s, t: assign_ticket(s, services, admin, ticket_id=t, team_id=rng.choice(teams)),
        lambda s, t: correct_classification(s, services, agent, ticket_id=t, category=rng.choice(labels)),
        act,
        decide,
        complete,
    ]
    for _ in range(70):
        clock.advance(minutes=rng.choice([1, 20, 90, 300, 900]))
        if rng.random() < 0.1:
            run_due_work(database, replace(services), clock.now, merchant_ids=[m.merchant_id])
            continue
        with database.unit_of_work() as session:
            if not made or rng.random() < 0.4:
                create(session, rng.choice([1, 1, 2, 5]))
            for _ in range(rng.randrange(4)):
                # Often the ticket just created in this unit of work.
                ticket_id = made[-1] if rng.random() < 0.5 else rng.choice(made)
                with contextlib.suppress(DomainError):  # not an edge from here, not pending any more...
                    rng.choice(operations)(session, ticket_id)

    kept = snapshot(database, m.merchant_id)
    # The history means something: created tickets with other days, actions, closes, team changes.
    with database.read_only() as session:
        assert (
            len(session.execute(select(col(Ticket.id)).where(col(Ticket.merchant_id) == m.merchant_id)).all())
            > 40
        )
        assert session.execute(
            select(col(ActionRequest.id)).where(col(ActionRequest.merchant_id) == m.merchant_id)
        ).first()
    metrics = {row[2] for row in kept[0]}
    assert {"created", "stage", "closed", "first_response", "action", "correction"} <= metrics
    assert len({row[1] for row in kept[0]}) > 3  # days

    with database.unit_of_work() as session:
        session.execute(delete(ReportCount).where(col(ReportCount.merchant_id) == m.merchant_id))
        session.execute(delete(TicketReportState).where(col(TicketReportState.merchant_id) == m.merchant_id))
    report_rollups.rebuild(database, m.merchant_id)
    assert snapshot(database, m.merchant_id) == kept
