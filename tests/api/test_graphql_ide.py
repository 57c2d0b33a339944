"""GraphiQL from the package, through real HTTP: the page ``GET /graphql`` renders loads only files this
server serves under ``/graphql-ide/`` (no other host), each is served with the bytes its ``integrity``
attribute names, the vendored files are the ones ``SOURCES.txt`` records, their licences ship with them,
and production serves neither the page nor the files. That it renders in a browser with every other host
blocked is ``tests/admin_ui/test_graphiql.py``."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from bookbag.app import create_app
from bookbag.graphql_ide import GRAPHIQL_ASSETS, ide_static_dir
from storage.db import Database
from tests.api.conftest import Api, make_settings
from workflow.services import WorkflowServices

PAGE_URL = "http://testserver/graphql"


class References(HTMLParser):
    """Every URL the page would load: scripts, stylesheets, icons, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str | None]] = []  # (tag, url, integrity)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            url = values.get(name)
            if url:
                self.found.append((tag, url, values.get("integrity")))


async def ide_page(client: httpx.AsyncClient) -> str:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


async def test_the_page_loads_only_files_of_this_server_with_their_integrity(api: Api) -> None:
    html = await ide_page(api.client)
    assert "unpkg" not in html and "cdn" not in html.lower()
    parser = References()
    parser.feed(html)
    loaded = [(tag, url, integrity) for tag, url, integrity in parser.found if not url.startswith("data:")]
    assert len(loaded) == 5  # the stylesheet, react, react-dom, graphiql, our start script
    for _tag, url, integrity in loaded:
        absolute = urljoin(PAGE_URL, url)
        assert urlsplit(absolute).netloc == "testserver", url
        assert urlsplit(absolute).path.startswith("/graphql-ide/"), url
        response = await api.client.get(absolute)
        assert response.status_code == 200, url
        if integrity is not None:  # the vendored files; graphiql-start.js is ours
            assert integrity == sri(response.content), url
    names = {urlsplit(url).path.rsplit("/", 1)[1] for _tag, url, _i in loaded}
    assert names == {*GRAPHIQL_ASSETS, "graphiql-start.js"}
    assert all(GRAPHIQL_ASSETS[name] in html for name in GRAPHIQL_ASSETS)

    start = (await api.client.get("/graphql-ide/graphiql-start.js")).text
    assert not re.search(r"https?://", start), "the start script names no host"


def test_the_vendored_files_are_the_ones_sources_txt_records() -> None:
    directory = ide_static_dir()
    rows = [
        line.split()
        for line in (directory / "SOURCES.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    recorded = {row[0]: row for row in rows}
    assert set(recorded) == {
        *GRAPHIQL_ASSETS,
        "graphiql.LICENSE.txt",
        "react.LICENSE.txt",
        "react-dom.LICENSE.txt",
    }
    for name, (_file, package, _member, sha256, _integrity) in recorded.items():
        data = (directory / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256, name
        assert package in {"graphiql@3.8.3", "react@18.2.0", "react-dom@18.2.0"}
        if name.endswith(".LICENSE.txt"):
            assert data.startswith(b"MIT License"), name
    # Nothing else is shipped: the files above, our start script and SOURCES.txt.
    assert {path.name for path in directory.iterdir()} == {*recorded, "graphiql-start.js", "SOURCES.txt"}


async def test_an_api_client_still_gets_json_not_the_page(api: Api) -> None:
    response = await api.client.get("/graphql", headers={"Accept": "application/json"})
    assert "text/html" not in response.headers.get("content-type", "")


@pytest.fixture
def production_app(database_url: str, database: Database, services: WorkflowServices) -> Starlette:
    return create_app(make_settings(database_url, env="production"), services=services, database=database)


async def test_production_serves_neither_the_page_nor_its_files(production_app: Starlette) -> None:
    transport = httpx.ASGITransport(app=production_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert "GraphiQL" not in page.text
        assert page.status_code != 200
        for name in (*GRAPHIQL_ASSETS, "graphiql-start.js"):
            assert (await client.get(f"/graphql-ide/{name}")).status_code == 404
