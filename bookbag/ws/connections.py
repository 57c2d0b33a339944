"""The open graphql-transport-ws connections of this process, by API key and merchant.

- Caps: at most ``max_per_key`` open connections per API key and ``max_per_merchant`` per merchant; one over
  is refused at ``connection_init`` (close code 4429 with a reason naming the cap).
- Revocation: a revoked key's connections are closed (4403 "API key revoked"). The principal cache tells
  this registry of every revocation it learns of (``PrincipalCache.on_revoked``): one made through this
  process at once, one made through another process at once on PostgreSQL (``KEYS_CHANNEL``, see
  ``bookbag.background``), and anything those miss (a dropped LISTEN connection, a key revoked in SQL) by a
  check of the open connections' keys against the database every ``key_check_seconds`` (the auth-cache
  time), one query per check however many connections are open.
- Lifetime: a connection open for ``max_lifetime_seconds`` is closed (1001 "going away", with a reason);
  clients reconnect and authenticate again.
- Handshakes: ``HandshakePacer`` lets websocket handshakes from one client address start at most
  ``handshakes_per_address_per_second`` a second (before any key is known); the rest wait their turn, and
  one that would wait longer than ``max_wait_seconds`` is refused (close 1013 "try again later").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from anyio import to_thread

from workflow.tenancy.merchants import revoked_key_ids
from workflow.tenancy.principal import Principal

if TYPE_CHECKING:
    from runtime.context import ApiRuntime

log = logging.getLogger("bookbag.ws")

CLOSE_REVOKED = 4403
CLOSE_TOO_MANY = 4429
CLOSE_LIFETIME = 1001  # "going away": reconnect
CLOSE_TRY_AGAIN = 1013  # RFC 6455 "try again later"
CLOSE_TOO_BIG = 1009  # RFC 6455 "message too big", as uvicorn itself closes over ws_max_size


@dataclass(frozen=True)
class WsLimits:
    max_per_key: int = 50
    max_per_merchant: int = 200
    max_lifetime_seconds: float = 24 * 3600.0
    max_message_bytes: int = 256 * 1024
    key_check_seconds: float = 5.0
    setups_per_merchant_per_second: float = 400.0
    handshakes_per_address_per_second: float = 100.0


class ConnectionRefused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Connection(Protocol):
    """What the registry needs of a websocket connection (``bookbag.ws.protocol.LiveTransportWSHandler``)."""

    @property
    def principal(self) -> Principal: ...

    async def close_connection(self, code: int, reason: str) -> None: ...


class SetupSlots:
    """Websocket operations of one merchant are set up (parsed, validated, authorized, run to their first
    result) at most ``per_merchant`` at a time and at most ``per_second`` a second; the rest wait their
    turn. 2,000 subscriptions sent at once otherwise keep the event loop busy for about a second (~0.3 ms
    each), and every other merchant's request waits behind them; paced, they take a small share of it
    (at 400 a second, 2,000 subscriptions are all set up within 5 s)."""

    def __init__(self, per_merchant: int = 2, per_second: float = 400.0) -> None:
        self.per_merchant = per_merchant
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        # merchant -> (slots, [users], [the loop time before which its next setup may not start])
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int], list[float]]] = {}

    async def take(self, merchant_id: str) -> Callable[[], None]:
        """Wait for one of the merchant's slots and its turn; answers its release (safe to call twice)."""
        semaphore, users, next_start = self._slots.setdefault(
            merchant_id, (asyncio.Semaphore(self.per_merchant), [0], [0.0])
        )
        users[0] += 1
        try:
            await semaphore.acquire()
        except BaseException:
            self._leave(merchant_id, users)
            raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                semaphore.release()
                self._leave(merchant_id, users)

        try:
            loop = asyncio.get_running_loop()
            wait = next_start[0] - loop.time()
            next_start[0] = max(next_start[0], loop.time()) + self.interval
            if wait > 0:
                await asyncio.sleep(wait)
        except BaseException:
            release()
            raise
        return release

    def _leave(self, merchant_id: str, users: list[int]) -> None:
        users[0] -= 1
        if users[0] == 0:
            self._slots.pop(merchant_id, None)


class HandshakePacer:
    """Websocket handshakes from one client address start at most ``per_second`` a second.

    A hundred sockets opened at once cost the event loop ~0.5 ms each (the upgrade, strawberry's handler,
    the accept) back to back, and everyone else's requests wait behind them; paced, they are spread over a
    second. At handshake time no API key is known yet, so the address (as uvicorn reports it; behind a
    proxy, through ``--forwarded-allow-ips``) is the unit. A handshake that would start more than
    ``max_wait_seconds`` from now is refused at once, which also bounds how many wait per address."""

    def __init__(self, per_second: float = 100.0, max_wait_seconds: float = 5.0) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.max_wait_seconds = max_wait_seconds
        self._next_start: dict[str, float] = {}  # address -> loop time before which its next may not start
        self.refused = 0

    async def wait(self, address: str) -> bool:
        """Wait for this address's turn; False when it is too far away (refuse the handshake)."""
        if self.interval == 0:
            return True
        now = asyncio.get_running_loop().time()
        start = max(self._next_start.get(address, 0.0), now)
        if start - now > self.max_wait_seconds:
            self.refused += 1
            return False
        self._next_start[address] = start + self.interval
        if len(self._next_start) > 4096:  # forget addresses whose turn has long passed
            for stale in [a for a, t in self._next_start.items() if t < now]:
                del self._next_start[stale]
        if start > now:
            await asyncio.sleep(start - now)
        return True


class WsConnections:
    """Use from the server's event loop (``admit``/``release``); revocations may arrive from any thread."""

    def __init__(self, runtime: ApiRuntime, limits: WsLimits) -> None:
        self.limits = limits
        self._runtime = runtime
        self._by_key: dict[str, set[Connection]] = {}
        self._per_merchant: dict[str, int] = {}
        self._timers: dict[Connection, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._checker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_count: Callable[[int], None] | None = (
            None  # told +1/-1 as connections open and close (metrics)
        )
        runtime.principals.on_revoked(self.key_revoked)

    def count(self, *, key_id: str | None = None, merchant_id: str | None = None) -> int:
        if key_id is not None:
            return len(self._by_key.get(key_id, ()))
        if merchant_id is not None:
            return self._per_merchant.get(merchant_id, 0)
        return len(self._timers)

    def admit(self, connection: Connection) -> None:
        """Count ``connection`` in (its principal is authenticated) or raise :class:`ConnectionRefused`."""
        principal = connection.principal
        key_id = principal.key_id or ""
        limits = self.limits
        if len(self._by_key.get(key_id, ())) >= limits.max_per_key:
            raise ConnectionRefused(
                CLOSE_TOO_MANY,
                f"too many open websocket connections for this API key (limit {limits.max_per_key})",
            )
        if self._per_merchant.get(principal.merchant_id, 0) >= limits.max_per_merchant:
            raise ConnectionRefused(
                CLOSE_TOO_MANY,
                f"too many open websocket connections for this merchant (limit {limits.max_per_merchant})",
            )
        loop = self._loop = asyncio.get_running_loop()
        self._by_key.setdefault(key_id, set()).add(connection)
        self._per_merchant[principal.merchant_id] = self._per_merchant.get(principal.merchant_id, 0) + 1
        self._timers[connection] = loop.call_later(limits.max_lifetime_seconds, self._expire, connection)
        if self._checker is None:
            self._checker = loop.create_task(self._check_keys(), name="bookbag-ws-key-check")
        if self.on_count is not None:
            self.on_count(1)

    def release(self, connection: Connection) -> None:
        timer = self._timers.pop(connection, None)
        if timer is None:
            return  # never admitted, or released already
        timer.cancel()
        if self.on_count is not None:
            self.on_count(-1)
        principal = connection.principal
        key_id = principal.key_id or ""
        connections = self._by_key.get(key_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._by_key[key_id]
        left = self._per_merchant.get(principal.merchant_id, 1) - 1
        if left > 0:
            self._per_merchant[principal.merchant_id] = left
        else:
            self._per_merchant.pop(principal.merchant_id, None)

    def key_revoked(self, key_id: str) -> None:
        """Close every open connection of ``key_id`` (a revocation listener: callable from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._close_key(key_id)
        else:
            loop.call_soon_threadsafe(self._close_key, key_id)

    async def close(self) -> None:
        """Shutdown: stop the key check (connections end with the server)."""
        if self._checker is not None:
            self._checker.cancel()
            await asyncio.gather(self._checker, return_exceptions=True)
            self._checker = None

    def _close_key(self, key_id: str) -> None:
        for connection in list(self._by_key.get(key_id, ())):
            log.info("closing a websocket of revoked key %s", key_id)
            self._close_soon(connection, CLOSE_REVOKED, "API key revoked")

    def _expire(self, connection: Connection) -> None:
        seconds = self.limits.max_lifetime_seconds
        self._close_soon(
            connection, CLOSE_LIFETIME, f"maximum connection lifetime reached ({seconds:g} s); reconnect"
        )

    def _close_soon(self, connection: Connection, code: int, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(connection.close_connection(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _check_keys(self) -> None:
        """Every ``key_check_seconds`` while connections are open: close those whose key was revoked where no
        notification reached this process."""
        try:
            while self._timers:
                await asyncio.sleep(max(0.2, self.limits.key_check_seconds))
                key_ids = {key_id for key_id in self._by_key if key_id}
                if not key_ids:
                    continue
                try:
                    revoked = await to_thread.run_sync(
                        self._revoked, key_ids, limiter=self._runtime.read_limiter
                    )
                except Exception:
                    log.exception("checking open websockets' API keys failed")
                    continue
                for key_id in revoked:
                    self._runtime.principals.forget_key(key_id)  # also closes them (key_revoked)
        finally:
            self._checker = None

    def _revoked(self, key_ids: set[str]) -> set[str]:
        with self._runtime.db.read_only() as session:
            return revoked_key_ids(session, key_ids)
