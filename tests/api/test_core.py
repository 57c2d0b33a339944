"""Auth, me, ticket, tickets and createTicket through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import func
from sqlmodel import select

from bookbag.app import create_app
from storage.db import Database
from storage.tables import ApiKey as ApiKeyRow
from storage.tables import Ticket, utcnow
from tests.api.conftest import CREATE, Api, create_ticket, make_settings
from tests.conftest import MerchantKeys
from tests.waiting import eventually
from workflow.services import WorkflowServices
from workflow.tenancy.merchants import PrincipalCache
from workflow.tenancy.principal import Principal, Role

ME = "query { me { role actor keyId merchant { id slug } } }"


async def test_missing_and_bad_keys_get_401_and_nothing_else(api: Api, merchant: MerchantKeys) -> None:
    for headers in (
        {},
        {"authorization": "Bearer nope"},
        {"authorization": merchant.keys["admin"]},
        {"authorization": "Basic " + merchant.keys["admin"]},
    ):
        response = await api.client.post("/graphql", json={"query": ME}, headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body == {
            "errors": [{"message": "missing or invalid API key", "extensions": {"code": "UNAUTHENTICATED"}}]
        }
        assert "data" not in body


async def test_me_reports_role_actor_and_merchant(api: Api, merchant: MerchantKeys) -> None:
    expected_actor = {"admin": "AGENT", "agent": "AGENT", "ai": "AI", "partner": "PARTNER", "viewer": None}
    for role, key in merchant.keys.items():
        me = (await api.ok(ME, key=key))["me"]
        assert me["role"] == role.upper()
        assert me["actor"] == expected_actor[role]
        assert me["keyId"] == merchant.key_ids[role]
        assert me["merchant"] == {"id": merchant.merchant_id, "slug": merchant.slug}


async def test_revoked_key_is_refused(api: Api, merchant: MerchantKeys) -> None:
    await api.ok(ME, key=merchant.keys["viewer"])  # authenticated once: now in the process's key cache
    revoke = "mutation($id: ID!) { revokeApiKey(id: $id) { errors { code } apiKey { revokedAt } } }"
    data = await api.ok(revoke, {"id": merchant.key_ids["viewer"]}, key=merchant.keys["admin"])
    assert data["revokeApiKey"]["errors"] == []
    assert data["revokeApiKey"]["apiKey"]["revokedAt"]
    response = await api.post({"query": ME}, merchant.keys["viewer"])
    assert response.status_code == 401


async def test_create_ticket_classifies_routes_and_triages(api: Api, merchant: MerchantKeys) -> None:
    payload = await create_ticket(
        api, merchant.keys["partner"], customer={"email": "a@example.com", "vip": True}
    )
    ticket = payload["ticket"]
    assert ticket["id"].startswith("tkt_")
    assert ticket["stage"] in {"TRIAGED", "ASSIGNED"}
    assert ticket["category"]
    assert ticket["priority"] in {"URGENT", "HIGH", "NORMAL", "LOW"}
    assert ticket["customer"] == {"email": "a@example.com", "vip": True}
    assert payload["classification"]["category"] == ticket["category"]
    assert payload["classification"]["modelVersion"]
    assert isinstance(payload["routing"]["details"], dict)
    assert payload["replayed"] is False


async def test_ticket_by_id_and_unknown_id(api: Api, merchant: MerchantKeys) -> None:
    created = (await create_ticket(api, merchant.keys["agent"]))["ticket"]
    query = "query($id: ID!) { ticket(id: $id) { id subject stage version messages { id } } }"
    data = await api.ok(query, {"id": created["id"]}, key=merchant.keys["viewer"])
    assert data["ticket"]["id"] == created["id"]
    assert data["ticket"]["subject"] == "Where is my order?"
    assert data["ticket"]["messages"] == []
    missing = await api.ok(query, {"id": "tkt_does_not_exist"}, key=merchant.keys["viewer"])
    assert missing == {"ticket": None}


async def test_tickets_pages_with_cursors(api: Api, make_merchant: Callable[..., MerchantKeys]) -> None:
    m = make_merchant()
    ids = [
        (await create_ticket(api, m.keys["partner"], subject=f"Order question {i}"))["ticket"]["id"]
        for i in range(5)
    ]
    query = """query($after: String) { tickets(first: 2, after: $after) {
        totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        conn = (await api.ok(query, {"after": after}, key=m.keys["viewer"]))["tickets"]
        assert conn["totalCount"] == 5
        seen += [e["node"]["id"] for e in conn["edges"]]
        pages += 1
        if conn["edges"]:
            assert conn["edges"][-1]["cursor"] == conn["pageInfo"]["endCursor"]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert pages == 3
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert seen == list(reversed(ids))  # newest first


async def test_tickets_filters(api: Api, make_merchant: Callable[..., MerchantKeys]) -> None:
    m = make_merchant()
    a = (await create_ticket(api, m.keys["partner"], subject="Refund for broken mug", tags=["Fragile"]))[
        "ticket"
    ]
    await create_ticket(api, m.keys["partner"], subject="Where is my parcel")
    query = "query($f: TicketFilter) { tickets(filter: $f, first: 10) { totalCount edges { node { id } } } }"
    by_text = (await api.ok(query, {"f": {"text": "broken mug"}}, key=m.keys["viewer"]))["tickets"]
    assert [e["node"]["id"] for e in by_text["edges"]] == [a["id"]]
    by_tag = (await api.ok(query, {"f": {"tag": "fragile"}}, key=m.keys["viewer"]))["tickets"]
    assert [e["node"]["id"] for e in by_tag["edges"]] == [a["id"]]
    by_stage = (await api.ok(query, {"f": {"stage": "CLOSED"}}, key=m.keys["viewer"]))["tickets"]
    assert by_stage["totalCount"] == 0
    by_priority = (await api.ok(query, {"f": {"priority": a["priority"]}}, key=m.keys["viewer"]))["tickets"]
    assert a["id"] in [e["node"]["id"] for e in by_priority["edges"]]
    by_category = (await api.ok(query, {"f": {"category": a["category"]}}, key=m.keys["viewer"]))["tickets"]
    assert a["id"] in [e["node"]["id"] for e in by_category["edges"]]
    future = await api.ok(query, {"f": {"createdAfter": "2999-01-01T00:00:00+00:00"}}, key=m.keys["viewer"])
    assert future["tickets"]["totalCount"] == 0


async def test_page_size_is_capped(api: Api, merchant: MerchantKeys) -> None:
    body = await api.raw("{ tickets(first: 101) { edges { cursor } } }", key=merchant.keys["viewer"])
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "between 1 and 100" in body["errors"][0]["message"]
    bad_cursor = await api.raw(
        '{ tickets(first: 5, after: "garbage!") { edges { cursor } } }', key=merchant.keys["viewer"]
    )
    assert bad_cursor["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_viewer_cannot_create_tickets(api: Api, merchant: MerchantKeys, database: Database) -> None:
    data = await api.ok(CREATE, {"input": {"subject": "x", "body": "y"}}, key=merchant.keys["viewer"])
    assert data["createTicket"]["ticket"] is None
    assert data["createTicket"]["errors"][0]["code"] == "FORBIDDEN"
    with database.read_only() as session:
        count = session.exec(
            select(func.count()).select_from(Ticket).where(Ticket.merchant_id == merchant.merchant_id)
        ).one()
    assert count == 0


async def test_a_key_revoked_by_another_process_stops_working_within_the_cache_ttl(
    database_url: str, database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    app = create_app(make_settings(database_url, auth_cache_seconds=2), services=services, database=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        api = Api(client)
        await api.ok(ME, key=merchant.keys["agent"])
        with database.unit_of_work() as session:  # as `bookbag` in another process would
            key = session.get(ApiKeyRow, merchant.key_ids["agent"])
            assert key is not None
            key.revoked_at = utcnow()
            session.add(key)
        await api.ok(ME, key=merchant.keys["agent"])  # still cached in this process

        async def refused() -> bool:
            return (await api.post({"query": ME}, merchant.keys["agent"])).status_code == 401

        await eventually(refused, timeout=10, what="401 once the cached key expired (TTL 2 s)")


def test_principal_cache_expires_evicts_and_forgets() -> None:
    now = [0.0]
    cache = PrincipalCache(ttl_seconds=5, max_entries=2, clock=lambda: now[0])
    a = Principal(merchant_id="m1", role=Role.AGENT, key_id="k1")
    b = Principal(merchant_id="m1", role=Role.VIEWER, key_id="k2")
    c = Principal(merchant_id="m2", role=Role.ADMIN, key_id="k3")
    cache.put("secret-a", a)
    cache.put("secret-b", b)
    assert cache.get("secret-a") == a and cache.get("secret-b") == b
    assert cache.get("secret-x") is None
    cache.put("secret-c", c)  # over max_entries: the least recently used (a) goes
    assert cache.get("secret-a") is None and cache.get("secret-c") == c
    cache.forget_key("k2")
    assert cache.get("secret-b") is None
    now[0] = 5.0
    assert cache.get("secret-c") is None  # expired
    off = PrincipalCache(ttl_seconds=0)
    off.put("secret-a", a)
    assert off.get("secret-a") is None
