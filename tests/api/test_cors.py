"""CORS on ``/graphql`` through real HTTP (the app through httpx's ASGI transport): the setting's validation,
preflights from allowed and other origins, the headers on actual answers, and the app without the setting.
Websockets' ``Origin`` check runs against a real uvicorn in ``tests/live/test_cors_websockets.py``; a real
browser on another origin in ``tests/admin_ui/test_cross_origin.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from bookbag.app import create_app
from bookbag.cli import main
from bookbag.cors import canonical_origin
from bookbag.settings import Settings
from storage.db import Database
from tests.api.conftest import make_settings
from tests.conftest import MerchantKeys
from workflow.services import WorkflowServices

FRONTEND = "http://shop.example:5173"
OTHER = "https://evil.example"
ME = "{ me { role merchant { name } } }"


def preflight_headers(
    origin: str, method: str = "POST", headers: str = "authorization,content-type"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


@pytest.fixture
def cors_app(database_url: str, database: Database, services: WorkflowServices) -> Starlette:
    settings = make_settings(database_url, cors_origins=f"{FRONTEND}, https://admin.shop.example")
    return create_app(settings, services=services, database=database)


@pytest.fixture
async def client(cors_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=cors_app), base_url="http://testserver"
    ) as c:
        yield c


# --- the setting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("https://shop.example", "https://shop.example"),
        ("HTTPS://Shop.Example:443", "https://shop.example"),  # browsers send lower case, no default port
        ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("  http://localhost:3000 ", "http://localhost:3000"),
    ],
)
def test_origins_are_kept_as_browsers_send_them(given: str, canonical: str) -> None:
    assert canonical_origin(given) == canonical


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("*", "`*` is not accepted"),
        ("null", "scheme must be http or https"),
        ("shop.example", "scheme must be http or https"),
        ("ftp://shop.example", "scheme must be http or https"),
        ("https://shop.example/", "path"),
        ("https://shop.example/app", "path"),
        ("https://shop.example?x=1", "path, query or fragment"),
        ("https://user@shop.example", "user or password"),
        ("https://shop.example:99999", "does not parse"),
        ("https://", "no host"),
        ("https://bücher.example", "xn--"),
    ],
)
def test_bad_origins_are_refused_at_start_with_the_entry_named(given: str, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(cors_origins=f"https://fine.example,{given}")  # type: ignore[arg-type]  # the environment's comma-separated form
    message = str(info.value)
    assert problem in message
    if given != "*":
        assert repr(given.strip()) in message


def test_the_environment_variable_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKBAG_CORS_ORIGINS", "https://A.example, http://b.example:8080,,https://a.example")
    assert Settings().cors_origins == ("https://a.example", "http://b.example:8080")
    monkeypatch.setenv("BOOKBAG_CORS_ORIGINS", "")
    assert Settings().cors_origins == ()
    monkeypatch.delenv("BOOKBAG_CORS_ORIGINS")
    assert Settings().cors_origins == ()


def test_the_cli_refuses_a_bad_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOKBAG_CORS_ORIGINS", "https://shop.example/")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: BOOKBAG_CORS_ORIGINS: 'https://shop.example/' is not an origin"), err
    assert len(err.splitlines()) == 1


# --- HTTP ------------------------------------------------------------------------------------------------


async def test_a_preflight_from_a_listed_origin_is_answered_with_the_cors_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options("/graphql", headers=preflight_headers(FRONTEND))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONTEND
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST"}
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "access-control-allow-credentials" not in response.headers  # a bearer header, no cookies
    assert "Origin" in response.headers["vary"]
    assert int(response.headers["access-control-max-age"]) > 0

    second = await client.options("/graphql", headers=preflight_headers("https://admin.shop.example", "GET"))
    assert second.status_code == 200
    assert second.headers["access-control-allow-origin"] == "https://admin.shop.example"


@pytest.mark.parametrize("origin", [OTHER, "http://shop.example:5174", "http://shop.example", "null"])
async def test_a_preflight_from_another_origin_gets_no_allow_origin(
    client: httpx.AsyncClient, origin: str
) -> None:
    response = await client.options("/graphql", headers=preflight_headers(origin))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_a_preflight_for_another_method_or_header_is_refused(client: httpx.AsyncClient) -> None:
    for headers in (
        preflight_headers(FRONTEND, method="DELETE"),
        preflight_headers(FRONTEND, headers="x-admin"),
    ):
        response = await client.options("/graphql", headers=headers)
        assert response.status_code == 400, headers
        assert "Disallowed CORS" in response.text


async def test_answers_to_a_listed_origin_carry_the_cors_headers(
    client: httpx.AsyncClient, merchant: MerchantKeys
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": ME},
        headers={"Origin": FRONTEND, "Authorization": f"Bearer {merchant.keys['agent']}"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["me"]["role"] == "AGENT"
    assert response.headers["access-control-allow-origin"] == FRONTEND
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"x-request-id", "retry-after"}
    assert response.headers["x-request-id"]

    # Errors too, so the page can read them: a missing key (401) and a body over the cap (413).
    unauthenticated = await client.post("/graphql", json={"query": ME}, headers={"Origin": FRONTEND})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["access-control-allow-origin"] == FRONTEND
    assert unauthenticated.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    too_big = await client.post(
        "/graphql",
        content=b"x" * (Settings().max_body_bytes + 1),
        headers={"Origin": FRONTEND, "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.headers["access-control-allow-origin"] == FRONTEND


async def test_answers_to_another_origin_carry_no_allow_origin(
    client: httpx.AsyncClient, merchant: MerchantKeys
) -> None:
    # The server still answers (CORS is the browser's to enforce), but without the header the browser
    # hands the answer to no page of that origin.
    response = await client.post(
        "/graphql",
        json={"query": ME},
        headers={"Origin": OTHER, "Authorization": f"Bearer {merchant.keys['agent']}"},
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_without_the_setting_there_are_no_cors_answers(api: Any, merchant: MerchantKeys) -> None:
    client: httpx.AsyncClient = api.client
    preflight = await client.options("/graphql", headers=preflight_headers(FRONTEND))
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers
    answer = await client.post(
        "/graphql",
        json={"query": ME},
        headers={"Origin": FRONTEND, "Authorization": f"Bearer {merchant.keys['agent']}"},
    )
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
