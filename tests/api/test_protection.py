"""Protective limits: depth, aliases, tokens, body size, batching, introspection/GraphiQL in production,
and masking of unexpected errors (with a request id that is also in the log)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from bookbag.app import create_app
from storage.db import Database
from tests.api.conftest import CREATE, Api, make_settings
from tests.conftest import MerchantKeys
from workflow.services import WorkflowServices


def _nested(depth: int) -> str:
    # ticket -> actions -> ticket -> actions ... gives arbitrarily deep valid queries.
    inner = "id"
    for i in range(depth):
        inner = f"actions {{ ticket {{ {inner} }} }}" if i % 2 == 0 else inner
    return f'{{ ticket(id: "x") {{ {inner} }} }}'


async def test_query_depth_limit(api: Api, merchant: MerchantKeys) -> None:
    shallow = await api.raw(_nested(2), key=merchant.keys["viewer"])
    assert "errors" not in shallow
    deep = await api.raw(_nested(16), key=merchant.keys["viewer"])
    assert deep["data"] is None
    assert "exceeds maximum operation depth" in deep["errors"][0]["message"]


async def test_alias_limit(api: Api, merchant: MerchantKeys) -> None:
    ok = " ".join(f"a{i}: me {{ role }}" for i in range(30))
    assert "errors" not in await api.raw(f"{{ {ok} }}", key=merchant.keys["viewer"])
    too_many = " ".join(f"a{i}: me {{ role }}" for i in range(31))
    body = await api.raw(f"{{ {too_many} }}", key=merchant.keys["viewer"])
    assert body["data"] is None
    assert "aliases" in body["errors"][0]["message"].lower()


async def test_token_limit(api: Api, merchant: MerchantKeys) -> None:
    under = " ".join(["role"] * 300)
    assert "errors" not in await api.raw(f"{{ me {{ {under} }} }}", key=merchant.keys["viewer"])
    fields = " ".join(["role"] * 2100)
    body = await api.raw(f"{{ me {{ {fields} }} }}", key=merchant.keys["viewer"])
    assert body["data"] is None
    assert "more than 2000 tokens" in body["errors"][0]["message"]


async def test_body_size_cap(api: Api, merchant: MerchantKeys) -> None:
    big = {"query": CREATE, "variables": {"input": {"subject": "x", "body": "b" * 300_000}}}
    response = await api.post(big, merchant.keys["partner"])
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"query": "{ me { role } }", "pad": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}'

    streamed = await api.client.post(
        "/graphql",
        content=chunks(),
        headers={"authorization": f"Bearer {merchant.keys['viewer']}", "content-type": "application/json"},
    )
    assert streamed.status_code == 413


async def test_batching_is_capped(api: Api, merchant: MerchantKeys) -> None:
    op = {"query": "{ me { role } }"}
    ok = await api.post([op] * 5, merchant.keys["viewer"])
    assert ok.status_code == 200
    assert [r["data"]["me"]["role"] for r in ok.json()] == ["VIEWER"] * 5
    too_many = await api.post([op] * 6, merchant.keys["viewer"])
    assert too_many.status_code == 400
    assert "Too many operations" in too_many.text


INTROSPECTION = "{ __schema { queryType { name } } }"


async def test_introspection_and_graphiql_on_outside_production(api: Api, merchant: MerchantKeys) -> None:
    body = await api.raw(INTROSPECTION, key=merchant.keys["viewer"])
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    page = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


@pytest.fixture
async def production_api(
    database_url: str, database: Database, services: WorkflowServices
) -> AsyncIterator[Api]:
    app = create_app(make_settings(database_url, env="production"), services=services, database=database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Api(client)


async def test_production_turns_introspection_and_graphiql_off(
    production_api: Api, merchant: MerchantKeys
) -> None:
    body = await production_api.raw(INTROSPECTION, key=merchant.keys["viewer"])
    assert body["data"] is None
    assert "introspection" in body["errors"][0]["message"].lower()
    typename = await production_api.raw("{ __typename me { role } }", key=merchant.keys["viewer"])
    assert typename["data"]["me"]["role"] == "VIEWER"
    page = await production_api.client.get(
        "/graphql", headers={"accept": "text/html", "authorization": f"Bearer {merchant.keys['viewer']}"}
    )
    assert page.status_code == 404
    anonymous = await production_api.client.get("/graphql", headers={"accept": "text/html"})
    assert anonymous.status_code == 401


class _Exploding:
    """A classifier stand-in that fails like a bug would."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("secret internal detail: disk on fire")


async def test_unexpected_errors_are_masked_and_logged_with_request_id(
    database_url: str,
    database: Database,
    services: WorkflowServices,
    merchant: MerchantKeys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = replace(services, classifier=_Exploding())  # type: ignore[arg-type]
    app = create_app(make_settings(database_url), services=broken, database=database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        api = Api(client)
        with caplog.at_level(logging.ERROR, logger="bookbag.api"):
            response = await api.post(
                {"query": CREATE, "variables": {"input": {"subject": "s", "body": "b"}}},
                merchant.keys["partner"],
            )
    body = response.json()
    error = body["errors"][0]
    assert "disk on fire" not in response.text
    request_id = error["extensions"]["requestId"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert response.headers["x-request-id"] == request_id
    assert request_id in error["message"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "disk on fire" in str(logged[0].exc_info[1])


SUGGESTION_PROBES: list[tuple[str, dict[str, Any] | None]] = [
    ('{ tickt(id: "x") { id } }', None),  # misspelled field: "Did you mean 'ticket' or 'tickets'?"
    ("{ tickets(filter: {stage: TRIAGD}) { totalCount } }", None),  # bad enum literal
    (
        "query($s: Stage) { tickets(filter: {stage: $s}) { totalCount } }",
        {"s": "TRIAGD"},
    ),  # bad enum variable
    ("{ tickets(filtr: {}) { totalCount } }", None),  # misspelled argument
    ("query($f: TicketFilter) { tickets(filter: $f) { totalCount } }", {"f": {"stag": "NEW"}}),  # input field
    ("query($f: TicketFiltr) { tickets(filter: $f) { totalCount } }", {"f": {}}),  # type name
]


async def _messages(api: Api, key: str, query: str, variables: dict[str, Any] | None) -> list[str]:
    body = await api.raw(query, variables, key=key)
    assert body["data"] is None, body
    return [e["message"] for e in body["errors"]]


async def test_production_errors_suggest_nothing(production_api: Api, merchant: MerchantKeys) -> None:
    for query, variables in SUGGESTION_PROBES:
        messages = await _messages(production_api, merchant.keys["viewer"], query, variables)
        assert messages and all("did you mean" not in m.lower() for m in messages), (query, messages)
        # Nothing else names the schema's other fields, values or types either.
        for hint in ("'ticket'", "'tickets'", "TRIAGED", "'filter'", "'stage'", "'TicketFilter'"):
            assert not any(hint in m for m in messages if hint.strip("'") not in query), (query, messages)


async def test_development_still_suggests(api: Api, merchant: MerchantKeys) -> None:
    viewer = merchant.keys["viewer"]
    assert "Did you mean 'ticket' or 'tickets'?" in (await _messages(api, viewer, *SUGGESTION_PROBES[0]))[0]
    for query, variables in SUGGESTION_PROBES[1:3]:
        assert "Did you mean the enum value 'TRIAGED'?" in (await _messages(api, viewer, query, variables))[0]
