"""The per-request context every resolver receives, and the long-lived runtime it points at."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from anyio import CapacityLimiter

from storage.db import Database
from workflow.live import QueueHub
from workflow.merchants import PrincipalCache
from workflow.principal import Principal
from workflow.services import WorkflowServices

if TYPE_CHECKING:
    from resolvers.loaders import Loaders


class Unauthenticated(Exception):
    """No API key, or one that is unknown or revoked."""


@dataclass(frozen=True)
class ApiLimits:
    max_page_size: int = 100
    default_page_size: int = 20
    max_cases: int = 200
    max_backtest: int = 1000
    # Units of work that write run in at most this many worker threads at once: Python runs one thread at
    # a time and SQLite has one writer, so more threads only queue on the GIL and the write lock (a holder
    # waiting for the GIL keeps every other writer waiting too).
    max_concurrent_writes: int = 2


@dataclass
class ApiRuntime:
    """Built once by ``create_app``: the database, the workflow's long-lived services and API limits."""

    db: Database
    services: WorkflowServices
    limits: ApiLimits = field(default_factory=ApiLimits)
    queue_hub: QueueHub | None = None  # the process's live-queue hub (queueUpdates subscriptions)
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache(ttl_seconds=0))
    _write_limiter: CapacityLimiter | None = field(default=None, init=False, repr=False)

    @property
    def write_limiter(self) -> CapacityLimiter:
        """Created on first use, inside the running event loop."""
        if self._write_limiter is None:
            self._write_limiter = CapacityLimiter(self.limits.max_concurrent_writes)
        return self._write_limiter


@dataclass
class RequestContext:
    """One per HTTP request (one per connection for websockets). DataLoaders live here, so their caches
    never outlive the request that filled them."""

    runtime: ApiRuntime
    request_id: str
    principal: Principal | None = None
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None

    @property
    def auth(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("missing or invalid API key")
        return self.principal

    @cached_property
    def loaders(self) -> Loaders:
        from resolvers.loaders import Loaders

        return Loaders(self.runtime, self.auth.merchant_id)
