"""The ticket list as a support person uses it: search by customer email and name, order id, tag and
words; the filters; the sort orders with their cursors; never another merchant's tickets. Through HTTP on
SQLite (FTS5) and PostgreSQL (GIN tsvector), and the query plans use those indexes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from storage.db import Database
from storage.search import search_condition, search_words
from storage.tables import Ticket
from tests.api.conftest import Api, create_ticket
from tests.conftest import MerchantKeys

LIST = """query($f: TicketFilter, $o: TicketOrder, $first: Int, $after: String) {
  tickets(filter: $f, orderBy: $o, first: $first, after: $after) {
    totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor }
  }
}"""

UPDATE = """mutation($input: UpdateTicketInput!) {
  updateTicket(input: $input) { errors { code message } ticket { id customer { email } } }
}"""


async def ids(api: Api, key: str, flt: dict[str, Any], order: dict[str, Any] | None = None) -> list[str]:
    """Every id the list returns for ``flt`` in ``order``, walked two at a time through the cursors."""
    seen: list[str] = []
    after = None
    while True:
        variables = {"f": flt, "o": order, "first": 2, "after": after}
        conn = (await api.ok(LIST, variables, key=key))["tickets"]
        seen += [e["node"]["id"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            assert conn["totalCount"] == len(seen)
            return seen
        after = conn["pageInfo"]["endCursor"]


async def seed_customers(api: Api, m: MerchantKeys) -> dict[str, str]:
    key = m.keys["partner"]
    made = {
        "alice": await create_ticket(
            api,
            key,
            subject="Parcel never arrived",
            body="Tracking shows nothing for a week.",
            customer={"email": "Alice.Martin@example.com", "name": "Alice Martin"},
            order={"id": "A-1001"},
            tags=["vip"],
        ),
        "bob": await create_ticket(
            api,
            key,
            subject="Refund for a broken teapot",
            body="The lid cracked in transit.",
            customer={"email": "bob@example.org", "name": "Bob Stone"},
            order={"id": "B-2002"},
            tags=["fragile"],
        ),
        "carol": await create_ticket(
            api,
            key,
            subject="Change my shipping address",
            body="I moved to Lyon; please update order A-1001's address too.",
            customer={"email": "carol@example.net", "name": "Carol Alice"},
        ),
    }
    return {name: payload["ticket"]["id"] for name, payload in made.items()}


async def test_search_finds_by_email_name_order_tag_and_words(api: Api, merchant: MerchantKeys) -> None:
    t = await seed_customers(api, merchant)
    key = merchant.keys["viewer"]
    assert await ids(api, key, {"search": "alice.martin@example.com"}) == [t["alice"]]
    assert await ids(api, key, {"search": "ALICE.MARTIN@EXAMPLE.COM"}) == [t["alice"]]
    assert await ids(api, key, {"customerEmail": "alice.martin@example.com"}) == []  # exact: stored spelling
    assert await ids(api, key, {"customerEmail": "Alice.Martin@example.com"}) == [t["alice"]]
    assert await ids(api, key, {"customerEmail": "BOB@example.org"}) == [t["bob"]]  # lower-cased spelling
    assert await ids(api, key, {"search": "B-2002"}) == [t["bob"]]
    assert await ids(api, key, {"orderId": "B-2002"}) == [t["bob"]]
    # An order id mentioned in another ticket's body is found too, newest first.
    assert await ids(api, key, {"search": "A-1001"}) == [t["carol"], t["alice"]]
    assert await ids(api, key, {"search": "bob stone"}) == [t["bob"]]
    assert await ids(api, key, {"search": "alice"}) == [t["carol"], t["alice"]]  # a name in two places
    assert await ids(api, key, {"search": "fragile"}) == [t["bob"]]  # a tag
    assert await ids(api, key, {"search": "teapot lid"}) == [t["bob"]]  # every word, anywhere
    assert await ids(api, key, {"search": "teapot lyon"}) == []
    assert await ids(api, key, {"search": "refund"}) == [t["bob"]]
    assert await ids(api, key, {"search": "refun"}) == []  # whole words (see storage.search)
    assert await ids(api, key, {"search": "  \"*'()  "}) == [t["carol"], t["bob"], t["alice"]]  # no words
    assert await ids(api, key, {"search": "alice", "tag": "vip"}) == [t["alice"]]  # with the other filters
    # A search pages through its matches in every order exactly as the unfiltered list does (on PostgreSQL a
    # searched page is read differently: storage of the matches first, workflow.tickets.service._searched_page).
    for field in ("CREATED", "UPDATED", "STAGE_AGE", "PRIORITY"):
        for direction in ("ASC", "DESC"):
            order = {"field": field, "direction": direction}
            assert await ids(api, key, {"search": "example"}, order) == await ids(api, key, {}, order)


async def test_search_follows_updates(api: Api, merchant: MerchantKeys) -> None:
    t = await seed_customers(api, merchant)
    key = merchant.keys["viewer"]
    changed = await api.ok(
        UPDATE,
        {
            "input": {
                "ticketId": t["bob"],
                "customer": {"email": "robert@example.org"},
                "order": {"id": "Z-9"},
            }
        },
        key=merchant.keys["partner"],
    )
    assert changed["updateTicket"]["errors"] == []
    assert await ids(api, key, {"search": "bob@example.org"}) == []
    assert await ids(api, key, {"search": "robert@example.org"}) == [t["bob"]]
    assert await ids(api, key, {"search": "z-9"}) == [t["bob"]]
    assert await ids(api, key, {"search": "b-2002"}) == []


async def test_search_never_crosses_merchants(api: Api, make_merchant: Callable[..., MerchantKeys]) -> None:
    mine, theirs = make_merchant(), make_merchant()
    t = await seed_customers(api, mine)
    await seed_customers(api, theirs)  # the same customers, emails and order ids at another store
    for flt in (
        {"search": "alice.martin@example.com"},
        {"customerEmail": "Alice.Martin@example.com"},
        {"orderId": "A-1001"},
        {"search": "A-1001"},
        {"search": "teapot"},
    ):
        found = await ids(api, mine.keys["viewer"], flt)
        assert found and set(found) <= set(t.values()), flt
    for flt in ({"search": "teapot"}, {"orderId": "B-2002"}):
        assert set(await ids(api, theirs.keys["viewer"], flt)).isdisjoint(t.values())


async def test_filters(api: Api, make_merchant: Callable[..., MerchantKeys], database: Database) -> None:
    m = make_merchant()
    admin = m.keys["admin"]
    team = await api.ok('mutation { createTeam(name: "Returns") { team { id } errors { code } } }', key=admin)
    team_id = team["createTeam"]["team"]["id"]
    agent = await api.ok(
        """mutation($t: ID!) { createAgent(name: "Dana", email: "dana@shop.test", teamIds: [$t]) {
            agent { id } errors { code } } }""",
        {"t": team_id},
        key=admin,
    )
    agent_id = agent["createAgent"]["agent"]["id"]
    t = await seed_customers(api, m)
    assigned = await api.ok(
        """mutation($id: ID!, $a: ID!, $team: ID!) { assignTicket(input: {ticketId: $id, agentId: $a, teamId: $team})
            { errors { code message } } }""",
        {"id": t["bob"], "a": agent_id, "team": team_id},
        key=m.keys["agent"],
    )
    assert assigned["assignTicket"]["errors"] == []
    base = datetime(2026, 11, 1, tzinfo=UTC)
    with database.unit_of_work() as session:  # a history: creation days apart, a breach, a handoff
        for i, name in enumerate(("alice", "bob", "carol")):
            session.execute(
                update(Ticket)
                .where(col(Ticket.id) == t[name])
                .values(created_at=base + timedelta(days=i), needs_human=False, sla_breached_at=None)
            )
        session.execute(
            update(Ticket).where(col(Ticket.id) == t["carol"]).values(needs_human=True, sla_breached_at=base)
        )
    key = m.keys["viewer"]
    everyone = [t["carol"], t["bob"], t["alice"]]
    assert await ids(api, key, {}) == everyone
    assert await ids(api, key, {"teamId": team_id}) == [t["bob"]]
    assert await ids(api, key, {"assigneeId": agent_id}) == [t["bob"]]
    assert await ids(api, key, {"stage": "ASSIGNED"}) == [t["bob"]]
    assert await ids(api, key, {"needsHuman": True}) == [t["carol"]]
    assert await ids(api, key, {"needsHuman": False}) == [t["bob"], t["alice"]]
    assert await ids(api, key, {"slaBreached": True}) == [t["carol"]]
    assert await ids(api, key, {"slaBreached": False}) == [t["bob"], t["alice"]]
    window = {
        "createdAfter": (base + timedelta(hours=12)).isoformat(),
        "createdBefore": (base + timedelta(days=2)).isoformat(),
    }
    assert await ids(api, key, window) == [t["bob"]]
    priorities = (await api.ok("{ tickets { edges { node { id priority } } } }", key=key))["tickets"]["edges"]
    some = priorities[0]["node"]
    assert some["id"] in await ids(api, key, {"priority": some["priority"]})


async def test_sort_orders_page_through_with_their_cursors(
    api: Api, make_merchant: Callable[..., MerchantKeys], database: Database
) -> None:
    m = make_merchant()
    made = [
        (await create_ticket(api, m.keys["partner"], subject=f"Question {i}"))["ticket"]["id"]
        for i in range(7)
    ]
    base = datetime(2026, 11, 1, tzinfo=UTC)
    priorities = ["low", "urgent", "normal", "urgent", "high", "low", "normal"]
    rows: dict[str, dict[str, Any]] = {}
    with database.unit_of_work() as session:
        for i, ticket_id in enumerate(made):
            values = {
                "id": ticket_id,
                "created": base + timedelta(hours=i),
                "updated": base + timedelta(days=2, hours=(i * 5) % 7),
                "entered": base + timedelta(days=1, hours=(i * 3) % 7),
                "priority": priorities[i],
            }
            session.execute(
                update(Ticket)
                .where(col(Ticket.id) == ticket_id)
                .values(
                    created_at=values["created"],
                    updated_at=values["updated"],
                    stage_entered_at=values["entered"],
                    priority=values["priority"],
                )
            )
            rows[ticket_id] = values
    rank = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
    key = m.keys["viewer"]

    def by(field: str, reverse: bool) -> list[str]:
        return [r["id"] for r in sorted(rows.values(), key=lambda r: (r[field], r["id"]), reverse=reverse)]

    expected = {
        ("CREATED", "DESC"): by("created", True),
        ("CREATED", "ASC"): by("created", False),
        ("UPDATED", "DESC"): by("updated", True),
        ("UPDATED", "ASC"): by("updated", False),
        ("STAGE_AGE", "DESC"): by("entered", False),  # longest in stage first
        ("STAGE_AGE", "ASC"): by("entered", True),
        ("PRIORITY", "DESC"): [
            r["id"]
            for r in sorted(
                rows.values(), key=lambda r: (rank[r["priority"]], -r["created"].timestamp(), r["id"])
            )
        ],
    }
    expected[("PRIORITY", "ASC")] = list(reversed(expected[("PRIORITY", "DESC")]))
    for (field, direction), want in expected.items():
        assert await ids(api, key, {}, {"field": field, "direction": direction}) == want, (field, direction)
    # A cursor belongs to its order: another order refuses it.
    first = (await api.ok(LIST, {"o": {"field": "UPDATED"}, "first": 2}, key=key))["tickets"]
    body = await api.raw(LIST, {"o": {"field": "PRIORITY"}, "after": first["pageInfo"]["endCursor"]}, key=key)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_search_is_bounded(api: Api, merchant: MerchantKeys) -> None:
    body = await api.raw(LIST, {"f": {"search": "x" * 201}}, key=merchant.keys["viewer"])
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "search" in body["errors"][0]["message"]


def test_search_uses_the_text_index(database: Database) -> None:
    """The plan of a search answers from FTS5 (SQLite) or the GIN index (PostgreSQL), not a scan of bodies."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlmodel import select

    dialect = "postgresql" if database.is_postgres else "sqlite"
    # The condition alone: on a table this small the planner would rather read the merchant's rows, which
    # says nothing about whether the text index can answer the condition (bench/search_report_bench.py
    # shows the plans at 100k tickets).
    query = select(Ticket.id).where(search_condition(dialect, search_words("refund mug")))
    compiler = postgresql.dialect() if database.is_postgres else sqlite.dialect()  # type: ignore[no-untyped-call]
    sql = str(query.compile(dialect=compiler, compile_kwargs={"literal_binds": True}))
    with database.engine.connect() as conn:
        if database.is_postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")  # the test table is tiny; ask for the index plan
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "ix_tickets_search" in plan, plan
        else:
            plan = "\n".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert "VIRTUAL TABLE INDEX" in plan and "tickets_fts" in plan, plan
        conn.rollback()


def test_the_migration_and_the_query_share_the_search_document() -> None:
    import importlib

    migration = importlib.import_module("storage.migrations.versions.0008_ticket_search")
    from storage.search import PG_DOCUMENT

    assert migration.PG_DOCUMENT == PG_DOCUMENT


@pytest.mark.parametrize(
    ("typed", "fts", "ts"),
    [
        ("alice@example.com", '"alice example com"', "(alice <-> example <-> com)"),
        ("Refund  #A-1001", '"refund" AND "a 1001"', "(refund) & (a <-> 1001)"),
        ('"; DROP', '"drop"', "(drop)"),
    ],
)
def test_search_words_become_safe_queries(typed: str, fts: str, ts: str) -> None:
    from storage.search import fts5_query, tsquery

    words = search_words(typed)
    assert fts5_query(words) == fts and tsquery(words) == ts
