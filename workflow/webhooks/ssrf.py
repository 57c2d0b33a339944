"""Which addresses a webhook may reach (server-side request forgery protection).

A merchant admin chooses the URL, so a delivery must not become a way into the server's own network: only
``http``/``https``; no credentials in the URL; and unless ``allow_private`` (``BOOKBAG_WEBHOOK_ALLOW_PRIVATE``,
for local development and tests) only globally routable unicast addresses — loopback, private, link-local,
shared (CGNAT), multicast, reserved and unspecified addresses are refused, also when written as IPv6
(IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``, Teredo).

:func:`resolve_target` is called at send time: it resolves the host name (through a resolver that tests
can replace), checks every address it resolves to (any refused address refuses the URL, so a name cannot
mix a public and a private answer), and returns the address to connect to — the sender connects to that
IP, never resolving the name again (no DNS rebinding between the check and the connection).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2000
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


class UrlRefused(Exception):
    """The URL may not be used for a webhook; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where one attempt connects: the checked address, with the name kept for ``Host`` and TLS (SNI)."""

    scheme: str
    host: str  # the name as written (for Host and the certificate check)
    address: str  # the checked IP to connect to
    port: int
    path: str  # path and query

    @property
    def connect_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def parse_url(url: str) -> SplitResult:
    """The URL's parts, or :class:`UrlRefused` when it is not an http(s) URL a webhook may have."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UrlRefused("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("only http and https URLs are allowed")
    if not parts.hostname:
        raise UrlRefused("the URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("credentials in the URL are not allowed")
    if port == 0:
        raise UrlRefused("port 0 is not allowed")
    return parts


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, 6to4, NAT64, Teredo client), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = int(address)
    if (
        packed >> 32 == 0 and packed > 1
    ):  # IPv4-compatible ::a.b.c.d (deprecated, still routable by some stacks)
        return ipaddress.IPv4Address(packed)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return f"{address} has a zone index"
        inner = embedded_ipv4(address)
        if inner is not None:
            why = refusal(inner)
            return f"{address} carries {inner}: {why}" if why else None
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_unspecified:
        return f"{address} is the unspecified address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_private:
        return f"{address} is a private address"
    if address.is_reserved or not address.is_global:
        return f"{address} is not a public address"
    return None


def check_address(text: str, *, allow_private: bool) -> IPAddress:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise UrlRefused(f"{text!r} is not an IP address") from None
    if not allow_private:
        why = refusal(address)
        if why is not None:
            raise UrlRefused(f"refused: {why}")
    return address


def literal_address(host: str) -> str | None:
    """``host`` as an IP address if it is written as one (IPv6 with or without brackets)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def check_url(url: str, *, allow_private: bool) -> None:
    """What can be checked without resolving: the scheme, the form, and a host written as an address."""
    parts = parse_url(url)
    assert parts.hostname is not None
    literal = literal_address(parts.hostname)
    if literal is not None:
        check_address(literal, allow_private=allow_private)
    elif not allow_private and parts.hostname.rstrip(".").lower() in ("localhost", "localhost.localdomain"):
        raise UrlRefused("refused: localhost is a loopback name")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_target(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> Target:
    """The checked address to connect to for ``url`` (:class:`UrlRefused` when there is none)."""
    parts = parse_url(url)
    host = parts.hostname
    assert host is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    literal = literal_address(host)
    if literal is not None:
        check_address(literal, allow_private=allow_private)
        return Target(parts.scheme, literal, literal, port, path)
    try:
        resolved = await resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(f"{host} does not resolve: {exc}") from None
    if not resolved:
        raise UrlRefused(f"{host} does not resolve")
    checked: list[IPAddress] = []
    for text in resolved:
        try:
            checked.append(check_address(text.split("%", 1)[0], allow_private=allow_private))
        except UrlRefused as exc:
            raise UrlRefused(f"{host} resolves to {text}: {exc}") from None
    return Target(parts.scheme, host, str(checked[0]), port, path)
