"""The data lifecycle on SQLite and PostgreSQL: ``forgetCustomer`` (and its CLI twin) leaves nothing of the
customer's personal data in any table — every row of every table is searched — while counts and decisions
keep their shape and other merchants keep theirs; ``bookbag merchants export`` writes exactly the merchant's
rows; retention deletes closed tickets' history and keeps decision records per the merchant's setting."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import not_
from sqlalchemy import select as sa_select
from sqlmodel import col, func, select

from bookbag.cli import main as cli_main
from storage.db import Database
from storage.tables import ALL_TABLES, ActionRequest, AuditEvent, Merchant, Message, StageTransition, Ticket
from tests.conftest import MerchantKeys
from workflow.tickets.lifecycle import REDACTED, carries_decision, prune_closed, set_decision_retention

from .conftest import CREATE, Api

FORGET = """mutation($email: String!) { forgetCustomer(email: $email) {
  tickets messages corrections auditEvents actionRequests idempotencyRecords errors { code field } } }"""
ADD_MESSAGE = """mutation($input: AddMessageInput!) { addMessage(input: $input) { errors { code } } }"""
REQUEST = """mutation($t: ID!) { requestAction(input: {ticketId: $t, type: REFUND, amount: 20}) {
  errors { code } decision { effect matchedRules } } }"""
CORRECT = """mutation($input: CorrectClassificationInput!) { correctClassification(input: $input) {
  errors { code } } }"""


class Customer:
    def __init__(self) -> None:
        tag = secrets.token_hex(4)
        self.email = f"Jane.Doe.{tag}@Example.com"
        self.name = f"Janeth Doerington {tag}"
        self.subject = f"Parcel {tag} never came"
        self.body = f"Hello, I am {self.name}; my parcel to 12 Elm St {tag} is late."
        self.message = f"Also my phone is 555-{tag}"

    def strings(self) -> list[str]:
        return [
            self.email.lower(),
            self.name.lower(),
            self.subject.lower(),
            self.body.lower(),
            self.message.lower(),
        ]


async def seed_customer(api: Api, merchant: MerchantKeys, customer: Customer) -> list[str]:
    """Two tickets (one with an idempotency key), a customer message, an agent reply quoting the address, an
    action request (a decision with facts) and a classification correction."""
    ids = []
    for n, key in enumerate((f"idem-{secrets.token_hex(4)}", None)):
        input_ = {
            "subject": customer.subject if n == 0 else f"{customer.subject} again",
            "body": customer.body,
            "customer": {"email": customer.email, "name": customer.name},
        }
        data = await api.ok(CREATE, {"input": input_, "key": key}, key=merchant.keys["partner"])
        assert data["createTicket"]["errors"] == []
        ids.append(data["createTicket"]["ticket"]["id"])
    message = {"ticketId": ids[0], "body": customer.message, "authorType": "CUSTOMER"}
    assert (await api.ok(ADD_MESSAGE, {"input": message}, key=merchant.keys["partner"]))["addMessage"][
        "errors"
    ] == []
    reply = {"ticketId": ids[0], "body": f"Dear customer, we wrote to {customer.email}"}
    assert (await api.ok(ADD_MESSAGE, {"input": reply}, key=merchant.keys["agent"]))["addMessage"][
        "errors"
    ] == []
    decided = (await api.ok(REQUEST, {"t": ids[0]}, key=merchant.keys["agent"]))["requestAction"]
    assert decided["errors"] == []
    correction = {"ticketId": ids[1], "priority": "URGENT"}
    assert (await api.ok(CORRECT, {"input": correction}, key=merchant.keys["agent"]))[
        "correctClassification"
    ]["errors"] == []
    return ids


def every_row(database: Database) -> list[tuple[str, str | None, str]]:
    """(table, merchant id, the row as lower-cased JSON text) for every row of every table."""
    rows = []
    with database.read_only() as session:
        for model in ALL_TABLES:
            table: Any = model.__table__  # type: ignore[attr-defined]
            owner = table.c.id if model is Merchant else table.c.merchant_id
            for row in session.execute(sa_select(table, owner.label("_owner"))).mappings():
                text = json.dumps({k: v for k, v in row.items() if k != "_owner"}, default=str).lower()
                rows.append((table.name, row["_owner"], text))
    return rows


def counts(database: Database, merchant_id: str) -> dict[str, int]:
    with database.read_only() as session:
        return {
            model.__tablename__: int(
                session.exec(
                    select(func.count()).select_from(model).where(model.merchant_id == merchant_id)
                ).one()
            )
            for model in (Ticket, Message, AuditEvent, ActionRequest, StageTransition)
        }


def decisions(database: Database, merchant_id: str) -> list[tuple[str, list[str], list[str], str]]:
    with database.read_only() as session:
        return [
            (r.effect, list(r.matched_rules), list(r.deciding_rules), r.status)
            for r in session.exec(
                select(ActionRequest)
                .where(ActionRequest.merchant_id == merchant_id)
                .order_by(col(ActionRequest.id))
            )
        ]


async def test_forget_customer_leaves_none_of_their_data_in_any_table(
    api: Api, merchant: MerchantKeys, other_merchant: MerchantKeys, database: Database
) -> None:
    customer = Customer()
    await seed_customer(api, merchant, customer)
    await seed_customer(api, other_merchant, customer)  # the same person at another store: not erased there
    bystander = Customer()
    await seed_customer(api, merchant, bystander)
    assert any(
        customer.email.lower() in text
        for _, owner, text in every_row(database)
        if owner == merchant.merchant_id
    )
    before_counts, before_decisions = (
        counts(database, merchant.merchant_id),
        decisions(database, merchant.merchant_id),
    )

    refused = await api.ok(FORGET, {"email": customer.email}, key=merchant.keys["agent"])
    assert refused["forgetCustomer"]["errors"] == [{"code": "FORBIDDEN", "field": None}]
    bad = await api.ok(FORGET, {"email": "not an address"}, key=merchant.keys["admin"])
    assert bad["forgetCustomer"]["errors"] == [{"code": "INVALID_INPUT", "field": "email"}]

    done = (await api.ok(FORGET, {"email": customer.email.upper()}, key=merchant.keys["admin"]))[
        "forgetCustomer"
    ]
    assert (
        done["errors"] == [] and done["tickets"] == 2 and done["messages"] == 2 and done["corrections"] == 1
    )
    assert done["auditEvents"] > 0 and done["actionRequests"] == 1 and done["idempotencyRecords"] == 1

    rows = every_row(database)
    for table, owner, text in rows:
        if owner == merchant.merchant_id:
            for personal in customer.strings():
                assert personal not in text, (table, personal, text[:400])
    # another merchant's copy and the bystander's data are untouched
    others = "\n".join(text for _, owner, text in rows if owner == other_merchant.merchant_id)
    mine = "\n".join(text for _, owner, text in rows if owner == merchant.merchant_id)
    assert all(personal in others for personal in customer.strings())
    assert bystander.email.lower() in mine and bystander.body.lower() in mine
    # counts and decisions keep their shape; one audit row says what was done (counts only)
    after_counts = counts(database, merchant.merchant_id)
    assert after_counts == {**before_counts, "audit_events": before_counts["audit_events"] + 1}
    assert decisions(database, merchant.merchant_id) == before_decisions
    with database.read_only() as session:
        tickets = list(session.exec(select(Ticket).where(Ticket.merchant_id == merchant.merchant_id)))
    assert sum(t.subject == REDACTED and t.customer_email is None for t in tickets) == 2


async def test_the_cli_twin_forgets_the_same_way(
    api: Api,
    merchant: MerchantKeys,
    database: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    customer = Customer()
    await seed_customer(api, merchant, customer)
    monkeypatch.setenv("BOOKBAG_DATABASE_URL", database_url)
    assert cli_main(["customers", "forget", "--merchant", merchant.slug, customer.email]) == 0
    assert "tickets 2" in capsys.readouterr().out
    for table, owner, text in every_row(database):
        if owner == merchant.merchant_id:
            assert not any(personal in text for personal in customer.strings()), table
    assert cli_main(["customers", "forget", "--merchant", "no-such-store", customer.email]) == 2


async def test_export_writes_every_row_of_the_merchant_and_nothing_else(
    api: Api,
    merchant: MerchantKeys,
    other_merchant: MerchantKeys,
    database: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    await seed_customer(api, merchant, Customer())
    await seed_customer(api, other_merchant, Customer())
    monkeypatch.setenv("BOOKBAG_DATABASE_URL", database_url)
    out = tmp_path / "export.jsonl"
    assert cli_main(["merchants", "export", merchant.slug, "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    exported: dict[str, int] = {}
    for line in lines:
        row = line["row"]
        assert (row["id"] if line["table"] == "merchants" else row["merchant_id"]) == merchant.merchant_id
        exported[line["table"]] = exported.get(line["table"], 0) + 1
    expected = {
        table: n
        for table, n in (
            (t, sum(1 for tt, owner, _ in every_row(database) if tt == t and owner == merchant.merchant_id))
            for t in {table for table, _, _ in every_row(database)}
        )
        if n
    }
    assert exported == expected
    assert {
        "merchants",
        "api_keys",
        "tickets",
        "messages",
        "audit_events",
        "action_requests",
    } <= exported.keys()


async def test_retention_deletes_closed_history_and_keeps_decisions_per_merchant(
    api: Api, make_merchant: Callable[..., MerchantKeys], database: Database
) -> None:
    merchant = make_merchant()
    closed_id, open_id = await seed_customer(api, merchant, Customer())
    now = datetime.now(UTC)
    with database.unit_of_work() as session:
        ticket = session.get(Ticket, closed_id)
        assert ticket is not None
        ticket.stage, ticket.stage_entered_at = "closed", now - timedelta(days=100)
        session.add(ticket)

    def rows(model: Any, ticket_id: str, **where: Any) -> int:
        with database.read_only() as session:
            query = select(func.count()).select_from(model).where(model.ticket_id == ticket_id)
            for name, value in where.items():
                query = query.where(value(getattr(model, name)))
            return int(session.exec(query).one())

    decided = {"decision": lambda _: carries_decision()}
    undecided = {"decision": lambda _: not_(carries_decision())}
    assert rows(StageTransition, closed_id) and rows(AuditEvent, closed_id, **undecided)
    kept_decisions = rows(AuditEvent, closed_id, **decided)
    assert kept_decisions and rows(ActionRequest, closed_id) == 1
    before_open = (rows(StageTransition, open_id), rows(AuditEvent, open_id))
    with database.read_only() as session:
        messages = session.exec(
            select(func.count()).select_from(Message).where(Message.ticket_id == closed_id)
        ).one()

    with database.unit_of_work() as session:
        assert prune_closed(session, now, closed_days=365).transitions == 0  # not closed long enough
        report = prune_closed(session, now, closed_days=90)
    assert report.transitions >= 1 and report.audit_events >= 1
    assert rows(StageTransition, closed_id) == 0 and rows(AuditEvent, closed_id, **undecided) == 0
    assert rows(AuditEvent, closed_id, **decided) == kept_decisions and rows(ActionRequest, closed_id) == 1
    assert (rows(StageTransition, open_id), rows(AuditEvent, open_id)) == before_open  # open: untouched
    with database.read_only() as session:
        assert session.get(Ticket, closed_id) is not None
        assert (
            session.exec(
                select(func.count()).select_from(Message).where(Message.ticket_id == closed_id)
            ).one()
            == messages
        )

    with database.unit_of_work() as session:  # the merchant keeps decisions 30 days: they go at 90 too
        set_decision_retention(session, merchant.merchant_id, 30)
    with database.unit_of_work() as session:
        report = prune_closed(session, now, closed_days=90)
    assert report.decision_audit_events == kept_decisions and report.action_requests == 1
    assert rows(AuditEvent, closed_id) == 0 and rows(ActionRequest, closed_id) == 0


def test_the_retention_commands(
    merchant: MerchantKeys,
    database: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BOOKBAG_DATABASE_URL", database_url)
    assert cli_main(["merchants", "retention", merchant.slug, "--decision-days", "400"]) == 0
    assert "kept for 400 days" in capsys.readouterr().out
    with database.read_only() as session:
        stored = session.get(Merchant, merchant.merchant_id)
        assert stored is not None and stored.decision_retention_days == 400
    assert cli_main(["merchants", "retention", merchant.slug, "--decision-days", "0"]) == 2
    assert "between 1 and 36500" in capsys.readouterr().err
    assert cli_main(["merchants", "retention", merchant.slug, "--decision-days", "forever"]) == 0
    with database.read_only() as session:
        stored = session.get(Merchant, merchant.merchant_id)
        assert stored is not None and stored.decision_retention_days is None
    monkeypatch.setenv("BOOKBAG_RETENTION_CLOSED_DAYS", "0")
    assert cli_main(["retention", "prune"]) == 0
    assert "retention is off" in capsys.readouterr().out
    assert cli_main(["retention", "prune", "--closed-days", "36500"]) == 0  # nothing is that old
    assert capsys.readouterr().out.startswith("deleted: transitions 0")
