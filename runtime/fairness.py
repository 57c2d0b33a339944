"""Fair share between merchants and keys in one process: rate limits, database slots, heavy-work slots.

Many merchants share one process. Its scarce things are the database worker threads, the CPU (one GIL)
and the database's connection lookups; this module decides who may use them, and nothing else. All of it
runs on the event loop (no thread locks; nothing here ever blocks a thread). One :class:`FairShare` per
:class:`runtime.context.ApiRuntime`.

* **Rate limits**: token buckets per API key and per merchant, taken at the HTTP edge as soon as the key is
  known (from the principal cache or the key lookup) and before the body is parsed or anything executed.
  An unknown key has no bucket, so failed authentications are limited per client address instead: when an
  address has used up its failed attempts, its next lookup is refused before it reaches the database.
  A refusal is :class:`RateLimited` with the seconds after which a request would be accepted.
* **Database slots**: a unit of work of a merchant first takes one of that merchant's slots
  (``db_units_per_merchant``), then a worker thread of the process's shared read or write pool. Those pools
  are first come, first served: without the slots a merchant with a pile of requests queues everyone behind
  its pile. With them, at most that many of its units are running or waiting in the shared pool; the rest
  of its pile waits behind its own requests, and another merchant's unit waits for at most that many.
* **Heavy slots**: CPU-heavy ruleset work (validate, test, simulate, backtest, publish's checks) runs outside
  the database threads (``runtime.workers``), at most ``heavy_per_merchant`` at a time per merchant and
  ``heavy_per_process`` in all. A merchant's next ones wait their turn behind its own (the admin UI sends a
  validation, the draft's tests and a coverage simulation close together), at most
  ``heavy_queue_per_merchant`` of them and at most ``heavy_wait_seconds`` each; beyond that they are refused
  at once, so a flood costs nothing but its refusals and never holds a slot another merchant needs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from anyio import CapacityLimiter

from workflow.tenancy.principal import Principal


@dataclass(frozen=True)
class FairLimits:
    """The knobs (``bookbag.settings.Settings`` fills them; the defaults are the settings' defaults).

    The request rates are ceilings far above what one process serves on a small machine (about 600
    createTicket/s on 2 cores in ``bench/api_bench.py``, closed loop from one key), so neither the admin UI,
    the test suite nor the benchmarks ever meet them; what keeps one merchant from crowding out another
    below them is the slots. They bound what one key can make a bigger machine (or a fleet) do.
    """

    key_per_second: float = 1000.0
    key_burst: float = 2000.0
    merchant_per_second: float = 2000.0
    merchant_burst: float = 4000.0
    failed_auth_per_second: float = 2.0
    failed_auth_burst: float = 30.0
    db_units_per_merchant: int = 1
    heavy_per_merchant: int = 1
    heavy_queue_per_merchant: int = 4
    heavy_per_process: int = 2
    heavy_wait_seconds: float = 5.0
    # Buckets kept per kind (keys, merchants, addresses); beyond it the ones full again are forgotten first.
    max_tracked: int = 10_000


class RateLimited(Exception):
    """Refused to protect the others; ``retry_after`` is in seconds (at least a millisecond)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(0.001, round(retry_after, 3))

    @property
    def retry_after_header(self) -> str:
        """The HTTP ``Retry-After`` value: whole seconds, rounded up."""
        return str(max(1, math.ceil(self.retry_after)))


class TokenBuckets:
    """One token bucket per name: ``burst`` tokens, refilled at ``rate`` per second. A bucket refilled to
    the brim is the same as no bucket, so buckets are forgotten when there are too many (bounded memory)."""

    def __init__(self, rate: float, burst: float, *, max_tracked: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self.max_tracked = max_tracked
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when they were counted)

    def tokens(self, name: str) -> float:
        now = self._clock()
        tokens, counted = self._buckets.get(name, (self.burst, now))
        return min(self.burst, tokens + (now - counted) * self.rate)

    def wait(self, name: str) -> float:
        """Seconds until ``name`` has a whole token (0: it has one now)."""
        return max(0.0, (1.0 - self.tokens(name)) / self.rate)

    def take(self, name: str) -> None:
        """Spend one token (the bucket may go into debt: repeated failures keep the address waiting)."""
        tokens = self.tokens(name) - 1.0
        self._buckets.pop(name, None)  # re-inserted last: the dict's order is the order of last use
        self._buckets[name] = (max(tokens, -self.burst), self._clock())
        if len(self._buckets) > self.max_tracked:
            self._forget()

    def _forget(self) -> None:
        full = [name for name in self._buckets if self.tokens(name) >= self.burst]
        for name in full:
            del self._buckets[name]
        # Still too many (many names busy at once): keep the most recently used half. Forgetting is lenient
        # (a full bucket again), never stricter; halving keeps this scan rare (amortized O(1) per take).
        if len(self._buckets) > self.max_tracked // 2:
            excess = len(self._buckets) - self.max_tracked // 2
            for name in list(self._buckets)[:excess]:
                del self._buckets[name]

    def __len__(self) -> int:
        return len(self._buckets)


class _MerchantGate:
    """A merchant's slots of one kind, with the number of requests holding or waiting for one."""

    __slots__ = ("semaphore", "users")

    def __init__(self, size: int) -> None:
        self.semaphore = asyncio.Semaphore(size)
        self.users = 0


class FairShare:
    """The process's fair-share state: rate-limit buckets and per-merchant slots (see the module doc)."""

    def __init__(self, limits: FairLimits | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.limits = limits = limits or FairLimits()
        self.keys = TokenBuckets(
            limits.key_per_second, limits.key_burst, max_tracked=limits.max_tracked, clock=clock
        )
        self.merchants = TokenBuckets(
            limits.merchant_per_second, limits.merchant_burst, max_tracked=limits.max_tracked, clock=clock
        )
        self.failed_auth = TokenBuckets(
            limits.failed_auth_per_second,
            limits.failed_auth_burst,
            max_tracked=limits.max_tracked,
            clock=clock,
        )
        self._gates: dict[tuple[str, str], _MerchantGate] = {}
        self._heavy_limiter: CapacityLimiter | None = None
        self._heavy_process: asyncio.Semaphore | None = None
        self.stats = {"rate_limited": 0, "heavy_refused": 0, "failed_auth_refused": 0}

    # -- rate limits ---------------------------------------------------------------------------------------
    def admit(self, principal: Principal) -> None:
        """Spend one request of the key's and the merchant's rate, or raise :class:`RateLimited`."""
        key = principal.key_id or f"merchant:{principal.merchant_id}"
        wait = max(self.keys.wait(key), self.merchants.wait(principal.merchant_id))
        if wait > 0:
            self.stats["rate_limited"] += 1
            raise RateLimited("too many requests for this API key or merchant; retry later", wait)
        self.keys.take(key)
        self.merchants.take(principal.merchant_id)

    def check_lookup(self, address: str) -> None:
        """Before looking an unknown key up in the database: refuse an address out of failed attempts."""
        wait = self.failed_auth.wait(address)
        if wait > 0:
            self.stats["failed_auth_refused"] += 1
            raise RateLimited("too many failed authentications from this address; retry later", wait)

    def lookup_failed(self, address: str) -> None:
        self.failed_auth.take(address)

    # -- database slots ------------------------------------------------------------------------------------
    @asynccontextmanager
    async def db_unit(self, merchant_id: str, pool: str) -> AsyncIterator[None]:
        """Hold one of the merchant's ``pool`` slots (``"read"`` or ``"write"``) for one unit of work; take the
        shared thread inside it."""
        async with self._gate(pool, merchant_id, self.limits.db_units_per_merchant):
            yield

    # -- heavy work ----------------------------------------------------------------------------------------
    @property
    def heavy_limiter(self) -> CapacityLimiter:
        """The worker threads heavy work runs in (created on first use, inside the running event loop)."""
        if self._heavy_limiter is None:
            self._heavy_limiter = CapacityLimiter(self.limits.heavy_per_process)
        return self._heavy_limiter

    @asynccontextmanager
    async def heavy(self, merchant_id: str) -> AsyncIterator[None]:
        """One heavy slot: the merchant's, then the process's, waited for at most ``heavy_wait_seconds`` in
        all; refused at once when ``heavy_queue_per_merchant`` of the merchant's already wait."""
        limits = self.limits
        gate = self._gates.get(("heavy", merchant_id))
        if gate is not None and gate.users >= limits.heavy_per_merchant + limits.heavy_queue_per_merchant:
            self.stats["heavy_refused"] += 1
            raise RateLimited(
                f"at most {limits.heavy_per_merchant} ruleset check(s) (validate, test, simulate, backtest, "
                f"publish) at a time per merchant and {limits.heavy_queue_per_merchant} waiting; retry when "
                "one is answered",
                1.0,
            )
        if self._heavy_process is None:
            self._heavy_process = asyncio.Semaphore(limits.heavy_per_process)
        process = self._heavy_process
        try:
            async with asyncio.timeout(limits.heavy_wait_seconds) as waiting:
                async with self._gate("heavy", merchant_id, limits.heavy_per_merchant):
                    await process.acquire()
                    waiting.reschedule(None)  # the wait is over: the work itself runs without this limit
                    try:
                        yield
                    finally:
                        process.release()
        except TimeoutError:
            if waiting.expired():
                self.stats["heavy_refused"] += 1
                raise RateLimited(
                    "the ruleset checks before this one are still running; retry later",
                    limits.heavy_wait_seconds,
                ) from None
            raise

    def holding(self, pool: str, merchant_id: str) -> int:
        """How many requests of the merchant hold or wait for a ``pool`` slot (for tests and diagnostics)."""
        gate = self._gates.get((pool, merchant_id))
        return 0 if gate is None else gate.users

    @asynccontextmanager
    async def _gate(self, pool: str, merchant_id: str, size: int) -> AsyncIterator[None]:
        name = (pool, merchant_id)
        gate = self._gates.get(name)
        if gate is None:
            gate = self._gates[name] = _MerchantGate(size)
        gate.users += 1
        try:
            async with gate.semaphore:
                yield
        finally:
            gate.users -= 1
            if gate.users == 0:  # nobody holds or waits: forget it (memory stays bounded by activity)
                del self._gates[name]
