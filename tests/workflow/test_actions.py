"""Action requests decided by the merchant's published ruleset: allow executes, approval waits for the named
role, deny is recorded and refused; every decision is audited with the facts it saw and replays the same."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import select

from storage.db import Database
from storage.tables import AuditEvent, Message, Ticket
from tests.conftest import MerchantKeys
from tests.workflow.helpers import STRICT_RULESET, ingest, principal, publish
from workflow import actions
from workflow.errors import DomainError, ErrorCode
from workflow.rulesets.versions import active_ruleset
from workflow.services import WorkflowServices


def test_allow_approval_and_deny_paths(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    version = publish(database, services, m)
    ticket = ingest(database, services, m)
    with database.unit_of_work() as session:
        small = actions.request_action(
            session, services, principal(m, "ai"), ticket_id=ticket.id, type="refund", amount=20
        )
        big = actions.request_action(
            session, services, principal(m, "ai"), ticket_id=ticket.id, type="refund", amount=80
        )
        denied = actions.request_action(
            session, services, principal(m, "ai"), ticket_id=ticket.id, type="cancel_order"
        )
    assert (small.request.status, small.decision["deciding_rules"]) == ("executing", ["ai-small-refund"])
    assert (big.request.status, big.request.approvers) == ("pending_approval", ["admin"])
    assert denied.request.status == "denied" and denied.decision["matched_rules"] == []
    assert {small.request.ruleset_version, big.request.ruleset_version} == {version}

    # only the role the rule names may approve
    with database.unit_of_work() as session, pytest.raises(DomainError) as err:
        actions.approve_action(session, services, principal(m, "agent"), action_id=big.request.id)
    assert err.value.code is ErrorCode.FORBIDDEN
    with database.unit_of_work() as session:
        approved = actions.approve_action(session, services, principal(m, "admin"), action_id=big.request.id)
    assert approved.status == "executing"  # a refund: handed to the partner system
    with database.unit_of_work() as session, pytest.raises(DomainError) as err:
        actions.reject_action(
            session, services, principal(m, "admin"), action_id=big.request.id, reason="late"
        )
    assert err.value.code is ErrorCode.CONFLICT


def test_recorded_decisions_replay_identically(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    publish(database, services, m)
    ticket = ingest(database, services, m)
    with database.unit_of_work() as session:
        for amount in (10, 50, 51, 500):
            actions.request_action(
                session, services, principal(m, "ai"), ticket_id=ticket.id, type="refund", amount=amount
            )
    with database.read_only() as session:
        ruleset = active_ruleset(session, services, m.merchant_id).ruleset
        recorded = session.exec(
            select(AuditEvent).where(AuditEvent.ticket_id == ticket.id, AuditEvent.kind == "action.decided")
        ).all()
        assert len(recorded) == 4
        for event in recorded:
            assert event.facts is not None and event.decision is not None
            replay = services.policy.decide(ruleset, event.facts).to_dict()
            assert replay["effect"] == event.decision["effect"]
            assert replay["matched_rules"] == event.decision["matched_rules"]


def test_reply_action_records_first_response_and_handoff_flags_ticket(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    publish(database, services, m)
    ticket = ingest(database, services, m, body="I will file a chargeback with my bank and call my lawyer.")
    assert ticket.needs_human
    with database.unit_of_work() as session:
        outcome = actions.request_action(
            session,
            services,
            principal(m, "ai"),
            ticket_id=ticket.id,
            type="reply",
            params={"body": "We are on it."},
        )
    # handoff turns the AI's allow into an approval, so nothing is sent yet
    assert outcome.request.status == "pending_approval" and outcome.decision["handoff"] is True
    with database.unit_of_work() as session:
        outcome = actions.request_action(
            session,
            services,
            principal(m, "agent"),
            ticket_id=ticket.id,
            type="reply",
            params={"body": "Hello, a person here."},
        )
    assert outcome.request.status == "executed"
    with database.read_only() as session:
        bodies = [msg.body for msg in session.exec(select(Message).where(Message.ticket_id == ticket.id))]
    assert bodies == ["Hello, a person here."]


def test_bad_action_input_is_refused_and_changes_nothing(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    ticket = ingest(database, services, m)
    for kwargs in (
        {"type": "teleport"},
        {"type": "refund", "amount": -5},
        {"type": "refund", "amount": float("nan")},
    ):
        with pytest.raises(DomainError) as err, database.unit_of_work() as session:
            actions.request_action(session, services, principal(m, "ai"), ticket_id=ticket.id, **kwargs)
        assert err.value.code is ErrorCode.INVALID_INPUT
    with pytest.raises(DomainError) as err, database.unit_of_work() as session:
        actions.request_action(session, services, principal(m, "viewer"), ticket_id=ticket.id, type="reply")
    assert err.value.code is ErrorCode.FORBIDDEN
    with database.read_only() as session:
        assert actions.list_actions(session, principal(m), ticket_id=ticket.id) == []


def test_set_priority_recomputes_sla_and_note_is_audited(
    database: Database, services: WorkflowServices, make_merchant: Callable[..., MerchantKeys]
) -> None:
    m = make_merchant()
    publish(
        database,
        services,
        m,
        STRICT_RULESET.replace(
            "actions: [reply]\n    effect: allow",
            "actions: [reply, note, set_priority]\n    effect: allow",
            1,
        ),
    )
    ticket = ingest(database, services, m)
    with database.unit_of_work() as session:
        moved = actions.request_action(
            session,
            services,
            principal(m, "agent"),
            ticket_id=ticket.id,
            type="set_priority",
            params={"priority": "urgent"},
        )
        noted = actions.request_action(
            session,
            services,
            principal(m, "agent"),
            ticket_id=ticket.id,
            type="note",
            params={"text": "called the carrier"},
        )
    assert moved.request.status == noted.request.status == "executed"
    with database.read_only() as session:
        after = session.get(Ticket, ticket.id)
        assert after is not None and after.priority == "urgent"
        assert after.first_response_due_at == after.created_at + timedelta(hours=1)
        executed = session.exec(
            select(AuditEvent).where(AuditEvent.ticket_id == ticket.id, AuditEvent.kind == "action.executed")
        ).all()
        assert any(e.after.get("params") == {"text": "called the carrier"} for e in executed)
