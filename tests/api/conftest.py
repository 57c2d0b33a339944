"""Fixtures for the API tests: one app per database back-end, driven through real HTTP (ASGI transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bookbag.app import create_app
from bookbag.settings import Settings
from bookbag.wiring import build_services
from storage.db import Database
from tests.conftest import MerchantKeys
from workflow.services import WorkflowServices


@pytest.fixture(scope="session")
def services() -> WorkflowServices:
    """The policy engine and classifier, loaded once for the whole session."""
    return build_services(Settings())


def make_settings(database_url: str, **overrides: Any) -> Settings:
    # Ruleset work in the server's threads: a worker process per app would cost every test a process start
    # (tests/api/test_fairness.py covers the worker processes).
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "run_migrations_on_start": False,
        "heavy_in_processes": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def app(database_url: str, database: Database, services: WorkflowServices) -> Starlette:
    return create_app(make_settings(database_url), services=services, database=database)


@dataclass
class Api:
    client: httpx.AsyncClient

    async def post(self, body: Any, key: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return await self.client.post("/graphql", json=body, headers=headers, **kwargs)

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str | None
    ) -> dict[str, Any]:
        response = await self.post({"query": query, "variables": variables or {}}, key)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def ok(
        self, query: str, variables: dict[str, Any] | None = None, *, key: str | None
    ) -> dict[str, Any]:
        """Execute and assert there are no GraphQL errors; return ``data``."""
        body = await self.raw(query, variables, key=key)
        assert "errors" not in body, body
        result: dict[str, Any] = body["data"]
        return result


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client)


@pytest.fixture
def merchant(make_merchant: Callable[..., MerchantKeys]) -> MerchantKeys:
    return make_merchant()


@pytest.fixture
def other_merchant(make_merchant: Callable[..., MerchantKeys]) -> MerchantKeys:
    return make_merchant()


CREATE = """
mutation Create($input: CreateTicketInput!, $key: String) {
  createTicket(input: $input, idempotencyKey: $key) {
    replayed
    errors { code message field }
    ticket { id stage category priority version teamId tags subject customer { email vip } }
    routing { ruleId team details }
    classification { category priority modelVersion }
  }
}
"""


async def create_ticket(api: Api, key: str, **fields: Any) -> dict[str, Any]:
    input_ = {
        "subject": "Where is my order?",
        "body": "Order #1001 has not arrived yet, it's been 10 days.",
        **fields,
    }
    data = await api.ok(CREATE, {"input": input_}, key=key)
    payload: dict[str, Any] = data["createTicket"]
    assert payload["errors"] == [], payload
    return payload
