"""One webhook attempt: sign the payload (Standard Webhooks), check the target, POST it, read a little back.

The headers are ``webhook-id`` (the event's id, the same on every retry: receivers deduplicate on it),
``webhook-timestamp`` (seconds, the time of this attempt) and ``webhook-signature`` (``v1,<base64>``; during
a secret rotation one signature per valid secret, space-separated), computed by the ``standardwebhooks``
package. The attempt connects to the address :func:`workflow.webhooks.ssrf.resolve_target` checked, with
the name in ``Host`` and in TLS (SNI and the certificate check); redirects are not followed (a 3xx is a
failed attempt); the whole attempt — resolving, connecting, sending, reading — has one deadline; at most
``MAX_RESPONSE_BYTES`` of the answer are read. 2xx is success, anything else a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from workflow.webhooks.ssrf import Resolver, UrlRefused, resolve_target, system_resolver

MAX_RESPONSE_BYTES = 4096
MAX_ERROR_CHARS = 500
USER_AGENT = "Bookbag-Webhooks/1"


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str | None


def signature_header(secrets: Sequence[str], event_id: str, timestamp: datetime, payload: str) -> str:
    """``webhook-signature``: one ``v1,…`` per secret (the current one first)."""
    return " ".join(Webhook(secret).sign(event_id, timestamp, payload) for secret in secrets)


def signed_headers(secrets: Sequence[str], event_id: str, payload: str, now: float) -> dict[str, str]:
    timestamp = datetime.fromtimestamp(int(now), UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": signature_header(secrets, event_id, timestamp, payload),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",  # the excerpt is read raw: no decompression of what a receiver sends
    }


class Sender:
    """Sends attempts with one pooled ``httpx.AsyncClient`` per (scheme, host name, port), so a kept-alive
    TLS connection is only reused for the name its certificate was checked for; at most ``max_clients``
    are kept (least recently used closed first)."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        allow_private: bool = False,
        resolver: Resolver = system_resolver,
        max_clients: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.resolver = resolver
        self._max_clients = max_clients
        self._transport = transport
        self._clients: OrderedDict[tuple[str, str, int], httpx.AsyncClient] = OrderedDict()

    def _client(self, key: tuple[str, str, int]) -> httpx.AsyncClient:
        client = self._clients.pop(key, None)
        if client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                trust_env=False,  # never through a proxy from the environment: the checked IP is the peer
                transport=self._transport,
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            )
            while len(self._clients) >= self._max_clients:
                _, oldest = self._clients.popitem(last=False)
                asyncio.get_running_loop().create_task(oldest.aclose())
        self._clients[key] = client
        return client

    async def close(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    async def send(self, url: str, secrets: Sequence[str], event_id: str, payload: str) -> AttemptResult:
        started = time.perf_counter()

        def failed(error: str, status: int | None = None, excerpt: str | None = None) -> AttemptResult:
            latency = (time.perf_counter() - started) * 1000
            return AttemptResult(False, status, latency, error[:MAX_ERROR_CHARS], excerpt)

        try:
            async with asyncio.timeout(self.timeout):
                target = await resolve_target(url, allow_private=self.allow_private, resolver=self.resolver)
                headers = signed_headers(secrets, event_id, payload, time.time())
                headers["host"] = target.host_header
                extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
                client = self._client((target.scheme, target.host, target.port))
                request = client.build_request(
                    "POST",
                    target.connect_url,
                    content=payload.encode(),
                    headers=headers,
                    extensions=extensions,
                )
                response = await client.send(request, stream=True)
                try:
                    excerpt = await _read_capped(response)
                finally:
                    await response.aclose()
        except UrlRefused as exc:
            return failed(str(exc))
        except TimeoutError:
            return failed(f"timed out after {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except OSError as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        status = response.status_code
        if 200 <= status < 300:
            return AttemptResult(True, status, latency, None, excerpt)
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            return failed(f"HTTP {status}: redirect to {location[:200]!r} not followed", status, excerpt)
        return failed(f"HTTP {status}", status, excerpt)


async def _read_capped(response: httpx.Response) -> str:
    """At most ``MAX_RESPONSE_BYTES`` of the body; the rest is not read (the connection is then closed)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:MAX_RESPONSE_BYTES].decode("utf-8", "replace")
