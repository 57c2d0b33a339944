"""Browsers on other origins: CORS for ``/graphql`` over HTTP and the ``Origin`` check of its websockets.

``BOOKBAG_CORS_ORIGINS`` lists the exact origins (``scheme://host[:port]``) of the browser frontends allowed
to call the API. HTTP requests from them get Starlette's ``CORSMiddleware`` answers (preflight included):
``GET`` and ``POST`` with the ``Authorization`` and ``Content-Type`` headers, ``x-request-id`` and
``Retry-After`` readable by the page. No credentials mode: the API key is a bearer header the page sends
itself, never a cookie the browser attaches.

``*`` is refused. With bearer keys it would not be a CSRF hole (a page must hold a key to do anything), but
it lets every web page drive the API from a browser, with any key that page can get hold of (a key pasted
into a look-alike page, one read from a frontend's storage by an injected script), and it would make the
websocket check below meaningless. The frontends that hold merchant keys are few and known: list them.
``null`` (sandboxed frames, ``file:`` pages) is refused for the same reason.

Websockets are not covered by CORS: a browser opens one to any host and only sends ``Origin``. Strawberry's
view (since 0.339) accepts the upgrade of a request carrying ``Origin`` when that origin is in its
``allowed_origins`` (this same list) or is the server's own: its host and port equal the ``Host`` header's,
whatever the scheme, so TLS ended at a proxy still counts as the same origin (the admin UI and GraphiQL are
served from the API's origin). Otherwise it is refused with a 403 before anything runs, with an
``ORIGIN_NOT_ALLOWED`` body where the server can send one (``BookbagGraphQL.reject_websocket``). Clients that
are not browsers send no ``Origin`` and are not affected. A proxy that rewrites ``Host`` needs the public
origin listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("Authorization", "Content-Type")
EXPOSED_HEADERS = ("x-request-id", "Retry-After")
PREFLIGHT_MAX_AGE_SECONDS = 600
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9._-]+|\[[0-9a-f:.]+\]")  # a name or IPv4 address, or an IPv6 literal


class InvalidOrigin(ValueError):
    """An entry of ``BOOKBAG_CORS_ORIGINS`` that is not an origin."""


def canonical_origin(value: str) -> str:
    """``value`` as browsers send it in ``Origin``: lower-case scheme and host, no default port. Raises
    :class:`InvalidOrigin` for anything but ``http(s)://host[:port]``."""
    text = value.strip()
    if text == "*":
        raise InvalidOrigin(
            "`*` is not accepted: list the exact origins of the browser frontends (see bookbag.cors)"
        )

    def bad(reason: str) -> InvalidOrigin:
        return InvalidOrigin(
            f"{text!r} is not an origin scheme://host[:port] (e.g. https://shop.example.com): {reason}"
        )

    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port that is not a number or out of range
    except ValueError:
        raise bad("it does not parse (a bad port?)") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise bad("the scheme must be http or https")
    if not parts.hostname:
        raise bad("it has no host")
    if parts.username is not None or parts.password is not None:
        raise bad("it has a user or password")
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise bad("it has a path, query or fragment (not even a trailing `/` is allowed)")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal: urlsplit dropped its brackets
        host = f"[{host}]"
    if not _HOST.fullmatch(host):
        raise bad("the host has characters no host name has (an international name goes in its xn-- form)")
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_origins(value: object) -> tuple[str, ...]:
    """The canonical origins of a comma-separated string (or of a list of strings), duplicates dropped, in
    order; empty entries (a trailing comma) are ignored. Raises :class:`InvalidOrigin` naming the bad entry."""
    if value is None:
        return ()
    if isinstance(value, str):
        entries: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple | set | frozenset):
        entries = list(value)
    else:
        raise InvalidOrigin(f"expected a comma-separated list of origins, got {type(value).__name__}")
    origins: list[str] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise InvalidOrigin(f"{entry!r} is not an origin (a string scheme://host[:port])")
        if not entry.strip():
            continue
        origin = canonical_origin(entry)
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def with_cors(app: ASGIApp, origins: Iterable[str]) -> ASGIApp:
    """``app`` behind Starlette's CORS handling for the listed (canonical) origins."""
    return CORSMiddleware(
        app,
        allow_origins=tuple(origins),
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )
