"""GraphiQL at ``GET /graphql`` (outside production), entirely from this package: no CDN, works offline.

Strawberry's own GraphiQL page loads React, ReactDOM and GraphiQL from unpkg.com, so it stays blank without
internet access (and tells a third party whenever someone opens it). :data:`GRAPHIQL_HTML` replaces it (see
``BookbagGraphQL.graphql_ide_html``) and loads the same files, byte for byte, from ``/graphql-ide/``, which
serves ``bookbag/graphql_ide_static/``: graphiql 3.8.3, react and react-dom 18.2.0 as npm publishes them
(``scripts/vendor_graphiql.py`` copies them and records their SHA-256 in ``SOURCES.txt``; their licences are
the ``*.LICENSE.txt`` files), and our ``graphiql-start.js``. Strawberry's explorer plugin and js-cookie are
left out. Each ``<script>``/``<link>`` carries the file's SHA-384 as ``integrity``, the values strawberry's
page uses for the same versions.

The asset URLs are relative (``graphql-ide/…`` from ``/graphql``), so the page also works when the app is
served under a path prefix.
"""

from __future__ import annotations

from pathlib import Path

IDE_ASSETS_PATH = "/graphql-ide"

# file -> its Subresource Integrity value (tests/api/test_graphql_ide.py checks them against the files)
GRAPHIQL_ASSETS: dict[str, str] = {
    "react.production.min.js": "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
    "react-dom.production.min.js": "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh",
    "graphiql.min.js": "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
    "graphiql.min.css": "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
}

_BASE = IDE_ASSETS_PATH.lstrip("/")


def _script(name: str) -> str:
    return f'<script src="{_BASE}/{name}" integrity="{GRAPHIQL_ASSETS[name]}"></script>'


GRAPHIQL_HTML = f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Bookbag GraphiQL</title>
    <link rel="icon" href="data:," />
    <style>
      body {{ height: 100%; margin: 0; width: 100%; overflow: hidden; }}
      #graphiql {{ height: 100vh; display: flex; }}
    </style>
    <link rel="stylesheet" href="{_BASE}/graphiql.min.css" integrity="{GRAPHIQL_ASSETS["graphiql.min.css"]}" />
    {_script("react.production.min.js")}
    {_script("react-dom.production.min.js")}
  </head>
  <body>
    <div id="graphiql" class="graphiql-container">Loading GraphiQL…</div>
    {_script("graphiql.min.js")}
    <script src="{_BASE}/graphiql-start.js"></script>
  </body>
</html>
"""


def ide_static_dir() -> Path:
    """The directory ``/graphql-ide/`` serves (installed with the package: ``*.js``, ``*.css``, ``*.txt``)."""
    return Path(__file__).resolve().parent / "graphql_ide_static"
