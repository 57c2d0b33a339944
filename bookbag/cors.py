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

Websockets are not covered by CORS: a browser opens one to any host and only sends ``Origin``. The upgrade
of a request carrying ``Origin`` is accepted when that origin is listed or is the server's own (the admin UI
and GraphiQL are served from the API's origin); otherwise it is refused with a 403 before anything runs
(code ``ORIGIN_NOT_ALLOWED`` in the body where the server supports a body). Clients that are not browsers
send no ``Origin`` and are not affected. The server's own origin is recognised by comparing the ``Origin``'s
host and port with the ``Host`` header, not its scheme: behind a proxy that terminates TLS the server sees
``ws`` while the page's origin is ``https``. A proxy that rewrites ``Host`` needs the public origin listed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("bookbag.cors")

ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("Authorization", "Content-Type")
EXPOSED_HEADERS = ("x-request-id", "Retry-After")
PREFLIGHT_MAX_AGE_SECONDS = 600
ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
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


def _host_and_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def is_same_origin(origin: str, host_header: str | None) -> bool:
    """Whether ``origin`` names the host and port the request was sent to (its ``Host`` header). The port a
    ``Host`` header leaves out is the default of the origin's scheme, as a browser would have omitted it."""
    if not host_header:
        return False
    try:
        canonical = urlsplit(canonical_origin(origin))
    except InvalidOrigin:
        return False
    ours = _host_and_port(host_header, canonical.scheme)
    return ours is not None and ours == _host_and_port(canonical.netloc, canonical.scheme)


class WebSocketOriginCheck:
    """Refuse websocket upgrades whose ``Origin`` is neither listed nor the server's own (module docstring)."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    def allows(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser
        return origin in self.origins or is_same_origin(origin, headers.get("host"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.allows(headers):
            await self.app(scope, receive, send)
            return
        log.info("websocket refused: origin %r is not allowed (BOOKBAG_CORS_ORIGINS)", headers.get("origin"))
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            body = {
                "errors": [
                    {
                        "message": "this origin may not open websockets to the API (BOOKBAG_CORS_ORIGINS)",
                        "extensions": {"code": ORIGIN_NOT_ALLOWED},
                    }
                ]
            }
            encoded = json.dumps(body).encode()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(encoded)).encode()),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": encoded})
            return
        await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
