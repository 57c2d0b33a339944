"""Two real server processes on PostgreSQL, both schedulers ticking: every external action left executing past
its deadline flags its ticket exactly once (``FOR UPDATE SKIP LOCKED`` and ``timed_out_at``), and an inbox
change committed through process A reaches a ``pendingActionUpdates`` subscriber on process B."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from storage.db import Database
from storage.tables import AuditEvent, Ticket
from tests.conftest import MerchantKeys, count_rows
from workflow import actions
from workflow.demo.seed import create_demo_teams
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.ingest import TicketInput, create_ticket

from .servers import ProcessServer, WsClient, gql

pytestmark = pytest.mark.slow  # each test starts real server processes


@pytest.fixture
def servers(database: Database, database_url: str) -> Iterator[Callable[..., ProcessServer]]:
    if not database.is_postgres:
        pytest.skip("several server processes need PostgreSQL (SQLite is the single-process embedded mode)")
    started: list[ProcessServer] = []

    def start(**env: str) -> ProcessServer:
        values = {"BOOKBAG_QUEUE_COALESCE_SECONDS": "0.05", "BOOKBAG_SCHEDULER_INTERVAL_SECONDS": "0", **env}
        server = ProcessServer(database_url, env=values)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def executing_refunds(
    database: Database, services: WorkflowServices, merchant: MerchantKeys, at: datetime, count: int
) -> list[str]:
    """``count`` agent refunds (allowed by the default ruleset) handed to the partner at ``at``."""
    timed = replace(services, clock=lambda: at)
    partner = Principal(merchant.merchant_id, Role.PARTNER, merchant.key_ids["partner"])
    agent = Principal(merchant.merchant_id, Role.AGENT, merchant.key_ids["agent"])
    ids = []
    with database.unit_of_work() as session:
        create_demo_teams(session, merchant.merchant_id)  # every ticket finds its team: none is flagged yet
        for n in range(count):
            ticket = create_ticket(
                session, timed, partner, TicketInput(subject=f"refund {n}", body="arrived broken")
            ).ticket
            outcome = actions.request_action(
                session, timed, agent, ticket_id=ticket.id, type="refund", amount=20.0
            )
            assert outcome.request.status == "executing" and not ticket.needs_human
            ids.append(ticket.id)
    return ids


async def test_two_schedulers_time_out_each_execution_exactly_once(
    servers: Callable[..., ProcessServer],
    database: Database,
    loaded_services: WorkflowServices,
    make_merchant: Callable[..., MerchantKeys],
) -> None:
    merchant = make_merchant()
    ticket_ids = executing_refunds(
        database, loaded_services, merchant, datetime.now(UTC) - timedelta(hours=1), 20
    )
    servers(BOOKBAG_SCHEDULER_INTERVAL_SECONDS="0.1")
    servers(BOOKBAG_SCHEDULER_INTERVAL_SECONDS="0.1")
    deadline = time.monotonic() + 60
    while count_rows(database, AuditEvent, merchant.merchant_id, kind="action.timed_out") < len(ticket_ids):
        assert time.monotonic() < deadline, "the executions were not timed out"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # both schedulers keep ticking: nothing may be flagged a second time
    assert count_rows(database, AuditEvent, merchant.merchant_id, kind="action.timed_out") == len(ticket_ids)
    with database.read_only() as session:
        flags = session.exec(
            select(Ticket.needs_human).where(Ticket.merchant_id == merchant.merchant_id)
        ).all()
    assert flags == [True] * len(ticket_ids)


async def test_an_inbox_change_through_process_a_reaches_an_approver_on_process_b(
    servers: Callable[..., ProcessServer], make_merchant: Callable[..., MerchantKeys]
) -> None:
    a, b = servers(), servers()
    merchant = make_merchant()
    ws = await WsClient.open(b.ws, merchant.keys["agent"])
    await ws.ack()
    sid = await ws.subscribe("subscription { pendingActionUpdates { kind actionId pendingCount } }")
    await asyncio.sleep(0.5)  # the subscription is registered on B's bus
    created = await gql(
        a.http,
        merchant.keys["partner"],
        'mutation { createTicket(input: {subject: "refund", body: "broken"}) { ticket { id } } }',
    )
    asked = await gql(
        a.http,
        merchant.keys["ai"],
        "mutation($t: ID!) { requestAction(input: {ticketId: $t, type: REFUND, amount: 75}) { action { id } } }",
        {"t": created["createTicket"]["ticket"]["id"]},
    )
    update = (await ws.next_data(sid, timeout=10))["pendingActionUpdates"]
    assert update == {
        "kind": "action_decided",
        "actionId": asked["requestAction"]["action"]["id"],
        "pendingCount": 1,
    }
    await ws.close()
