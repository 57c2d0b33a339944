"""No N+1: a page's nested fields are loaded with one query per relation, whatever the page size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from storage.db import Database
from tests.api.conftest import Api
from tests.conftest import MerchantKeys
from workflow.services import WorkflowServices
from workflow.tenancy import agents
from workflow.tenancy.principal import Principal, Role
from workflow.tickets.ingest import TicketInput, create_ticket
from workflow.tickets.service import add_message, assign_ticket

PAGE = """query($n: Int!) { tickets(first: $n) { edges { node {
  id subject stage team { id name } assignee { id name teams { name } } messages { id body }
  actions { id status ticket { id } } } } pageInfo { hasNextPage } } }"""


@contextmanager
def counting(database: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            statements.append(statement)

    engines = {id(e): e for e in (database.engine, database.read_engine)}.values()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", before)


def seed(database: Database, services: WorkflowServices, m: MerchantKeys, count: int) -> None:
    admin = Principal(merchant_id=m.merchant_id, role=Role.ADMIN, key_id=m.key_ids["admin"])
    agent_p = Principal(merchant_id=m.merchant_id, role=Role.AGENT, key_id=m.key_ids["agent"])
    partner = Principal(merchant_id=m.merchant_id, role=Role.PARTNER, key_id=m.key_ids["partner"])
    with database.unit_of_work() as session:
        teams = [agents.create_team(session, admin, name=f"Team {i}") for i in range(3)]
        people = [
            agents.create_agent(
                session,
                admin,
                name=f"Agent {i}",
                email=f"a{i}@example.com",
                teams=[teams[i % 3].name],
                capacity=1000,
            )
            for i in range(4)
        ]
    for i in range(count):
        with database.unit_of_work() as session:
            ticket = create_ticket(
                session, services, partner, TicketInput(subject=f"Order {i} late", body="Where is it?")
            ).ticket
            assign_ticket(
                session,
                services,
                agent_p,
                ticket_id=ticket.id,
                agent_id=people[i % 4].id,
                team_id=teams[i % 3].id,
            )
            add_message(session, services, agent_p, ticket_id=ticket.id, body=f"Looking into it ({i})")


async def test_page_statements_do_not_grow_with_page_size(
    api: Api, database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    seed(database, services, merchant, 50)
    key = merchant.keys["viewer"]
    await api.ok(PAGE, {"n": 5}, key=key)  # warm caches (parsed document, ruleset) outside the count
    with counting(database) as small:
        page5 = await api.ok(PAGE, {"n": 5}, key=key)
    with counting(database) as large:
        page50 = await api.ok(PAGE, {"n": 50}, key=key)
    assert len(page5["tickets"]["edges"]) == 5
    edges = page50["tickets"]["edges"]
    assert len(edges) == 50
    assert all(e["node"]["team"] and e["node"]["assignee"]["teams"] for e in edges)
    assert all(len(e["node"]["messages"]) == 1 for e in edges)
    # auth, page, teams, agents, agent->team memberships, messages, actions: one query each.
    assert len(large) == len(small), (small, large)
    assert len(large) <= 8, large


async def test_a_finished_page_leaves_its_loaders_and_rows_to_reference_counting(
    api: Api, database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    """A request's DataLoaders, their cached futures and the rows in them must not sit in a reference
    cycle: under load, what each request leaves to the cyclic collector becomes its full passes (pauses of
    the whole server). The test client's own cyclic leftovers are not ours and are not counted."""
    import gc

    from strawberry.dataloader import DataLoader

    from runtime.loaders import Loaders
    from storage.tables import Ticket

    seed(database, services, merchant, 20)
    key = merchant.keys["viewer"]
    await api.ok(PAGE, {"n": 20}, key=key)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            await api.ok(PAGE, {"n": 20}, key=key)
        gc.collect()
        left = [type(o) for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    ours = [t.__name__ for t in left if t in (Loaders, DataLoader, Ticket)]
    assert ours == []
