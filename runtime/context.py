"""The per-request context every resolver receives, and the long-lived runtime it points at."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from anyio import CapacityLimiter

from runtime.fairness import FairShare
from runtime.workers import WorkerPool
from storage.db import Database
from workflow.live.queue_hub import QueueHub
from workflow.live.ticket_hub import TicketEventHub
from workflow.services import WorkflowServices
from workflow.tenancy.merchants import PrincipalCache
from workflow.tenancy.principal import Principal
from workflow.tickets.group_commit import BatchWork, GroupCommit
from workflow.webhooks.delivery import Sender

if TYPE_CHECKING:
    from runtime.loaders import Loaders


class Unauthenticated(Exception):
    """No API key, or one that is unknown or revoked."""


@dataclass(frozen=True)
class ApiLimits:
    max_page_size: int = 100
    default_page_size: int = 20
    max_cases: int = 200
    max_backtest: int = 1000
    # Database work runs in worker threads, at most this many at once for reads and for writes. Python runs
    # one thread at a time: more threads only queue on the GIL (measured: a 50-row read endpoint at 16
    # clients does 324 req/s with 2 threads, 200 req/s with 40, spending the difference switching), and
    # SQLite has one writer anyway.
    max_concurrent_reads: int = 2
    max_concurrent_writes: int = 2
    # createTicket requests waiting together for the database are written in one transaction, at most this
    # many at once (workflow.tickets.group_commit).
    max_group_commit: int = 32


@dataclass
class ApiRuntime:
    """Built once by ``create_app``: the database, the workflow's long-lived services and API limits."""

    db: Database
    services: WorkflowServices
    limits: ApiLimits = field(default_factory=ApiLimits)
    queue_hub: QueueHub | None = None  # the process's live-queue hub (queueUpdates subscriptions)
    ticket_events_hub: TicketEventHub | None = (
        None  # ticketEvents fan-out over websockets (bookbag.ws.protocol)
    )
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache(ttl_seconds=0))
    fair: FairShare = field(default_factory=FairShare)  # rate limits and per-merchant slots
    workers: WorkerPool | None = None  # CPU-heavy ruleset work's processes (None: heavy threads instead)
    # Test pings of webhook endpoints (its allow_private also decides which URLs may be registered).
    webhook_pings: Sender = field(default_factory=Sender)
    _limiters: dict[str, CapacityLimiter] = field(default_factory=dict, init=False, repr=False)
    _group_commits: dict[str, GroupCommit] = field(default_factory=dict, init=False, repr=False)

    @property
    def read_limiter(self) -> CapacityLimiter:
        return self._limiter("read", self.limits.max_concurrent_reads)

    @property
    def write_limiter(self) -> CapacityLimiter:
        return self._limiter("write", self.limits.max_concurrent_writes)

    def group_commit(self, operation: str, work: BatchWork) -> GroupCommit:
        """The group-committed write path of ``operation`` (one per runtime, created on first use)."""
        if operation not in self._group_commits:
            self._group_commits[operation] = GroupCommit(
                self, operation, work, max_batch=self.limits.max_group_commit
            )
        return self._group_commits[operation]

    def _limiter(self, name: str, size: int) -> CapacityLimiter:
        # Created on first use, inside the running event loop.
        if name not in self._limiters:
            self._limiters[name] = CapacityLimiter(size)
        return self._limiters[name]


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
        from runtime.loaders import Loaders

        return Loaders(self.runtime, self.auth.merchant_id)
