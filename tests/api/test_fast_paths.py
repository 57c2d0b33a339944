"""The fast paths' version fence (bookbag.fast_paths): on only at the library versions they were tested with,
logged once at start-up, forced off by ``BOOKBAG_FAST_PATHS=off``; the standard path they fall back to answers
a tickets page through HTTP exactly as the fast path does; and the lock file pins the tested versions."""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bookbag.app import create_app
from bookbag.fast_paths import TESTED, FastPaths, choose_fast_paths
from schema.fast_execution import FastLeafExecutionContext
from storage.db import Database
from tests.api.conftest import Api, create_ticket, make_settings
from tests.api.test_fast_execution import PAGE, PLAIN_PAGE
from tests.conftest import MerchantKeys
from workflow.services import WorkflowServices

LOCK = Path(__file__).resolve().parents[2] / "requirements-dev.lock"


def versions_at(**overrides: str | None) -> Callable[[str], str | None]:
    """A version lookup answering a tested version for every fenced library, except ``overrides``."""
    versions: dict[str, str | None] = {
        library: min(tested) for libraries in TESTED.values() for library, tested in libraries.items()
    }
    versions.update({name.replace("_", "-"): version for name, version in overrides.items()})
    return versions.get


def test_auto_takes_each_fast_path_only_at_its_versions_at(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bookbag.fast_paths")
    assert choose_fast_paths("auto", versions_at()) == FastPaths(execution=True, ws_direct=True)
    assert choose_fast_paths("auto", versions_at(graphql_core="3.4.0")) == FastPaths(False, True)
    assert choose_fast_paths("auto", versions_at(uvicorn="0.56.0")) == FastPaths(True, False)
    assert choose_fast_paths("auto", versions_at(websockets=None)) == FastPaths(True, False)
    # strawberry's internals are read by both
    assert choose_fast_paths("auto", versions_at(strawberry_graphql="0.342.0")) == FastPaths(False, False)
    assert choose_fast_paths("off", versions_at()) == FastPaths(False, False)
    lines = [r.getMessage() for r in caplog.records if r.name == "bookbag.fast_paths"]
    assert [r.levelno for r in caplog.records] == [logging.INFO] * 6
    assert lines[0] == "fast paths: execution on, ws_direct on (tested library versions)"
    assert "execution off: untested graphql-core 3.4.0" in lines[1] and "ws_direct on" in lines[1]
    assert "ws_direct off: untested uvicorn 0.56.0" in lines[2]
    assert "untested websockets not installed" in lines[3]
    assert lines[5].startswith("fast paths off (BOOKBAG_FAST_PATHS=off)")


def test_the_lock_and_the_installed_libraries_are_at_versions_at() -> None:
    """``make lock`` moving a fenced library fails here until its fast path is re-tested and the version
    added to ``TESTED``; and the fast-path tests below really ran the fast paths."""
    locked = dict(re.findall(r"^([a-z0-9-]+)==(\S+)$", LOCK.read_text(), flags=re.MULTILINE))
    for path, libraries in TESTED.items():
        for library, versions in libraries.items():
            assert locked.get(library) in versions, (path, library, locked.get(library))
            assert importlib.metadata.version(library) in versions, (path, library)


def test_the_setting_reaches_the_app(
    database_url: str, database: Database, services: WorkflowServices
) -> None:
    auto = create_app(make_settings(database_url), services=services, database=database)
    off = create_app(make_settings(database_url, fast_paths="off"), services=services, database=database)
    assert auto.state.bookbag.fast_paths == FastPaths(execution=True, ws_direct=True)
    assert auto.state.bookbag.schema.execution_context_class is FastLeafExecutionContext
    assert off.state.bookbag.fast_paths == FastPaths(execution=False, ws_direct=False)
    assert off.state.bookbag.schema.execution_context_class is not FastLeafExecutionContext


@asynccontextmanager
async def client_of(app: Starlette) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield Api(c)


async def test_an_untested_graphql_core_falls_back_and_answers_identically(
    api: Api,
    database_url: str,
    database: Database,
    services: WorkflowServices,
    merchant: MerchantKeys,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for i in range(5):
        await create_ticket(
            api,
            merchant.keys["partner"],
            subject=f"Order {i} is late",
            tags=["late", f"t{i}"],
            customer={"email": f"c{i}@example.com", "vip": i % 2 == 0},
        )
    fast_app = create_app(make_settings(database_url), services=services, database=database)
    real_version = importlib.metadata.version

    def untested_graphql_core(distribution: str) -> str:
        return "3.4.0" if distribution == "graphql-core" else real_version(distribution)

    caplog.set_level(logging.INFO, logger="bookbag.fast_paths")
    with monkeypatch.context() as patch:
        patch.setattr(importlib.metadata, "version", untested_graphql_core)
        standard_app = create_app(make_settings(database_url), services=services, database=database)
    assert [r.getMessage() for r in caplog.records if r.name == "bookbag.fast_paths"][-1].startswith(
        "fast paths: execution off, ws_direct on (execution off: untested graphql-core 3.4.0"
    )
    assert standard_app.state.bookbag.fast_paths.execution is False

    fast_calls = 0
    real_execute_fields = FastLeafExecutionContext.execute_fields

    def counting(self: FastLeafExecutionContext, *args: Any) -> Any:
        nonlocal fast_calls
        fast_calls += 1
        return real_execute_fields(self, *args)

    monkeypatch.setattr(FastLeafExecutionContext, "execute_fields", counting)
    key = merchant.keys["viewer"]
    for query in (PAGE, PLAIN_PAGE):
        variables = {"n": 50, "no": True}
        async with client_of(fast_app) as fast_api:
            fast_calls = 0
            fast = await fast_api.raw(query, variables, key=key)
            assert fast_calls > 0  # the fast path answered this one
        async with client_of(standard_app) as standard_api:
            fast_calls = 0
            standard = await standard_api.raw(query, variables, key=key)
            assert fast_calls == 0  # and the standard executor this one
        assert fast == standard
        assert "errors" not in fast and len(fast["data"]["tickets"]["edges"]) == 5
