"""Group commit: requests for one mutation that wait for the database together run in one transaction.

Under load, createTicket requests queue for the single SQLite writer one after another, and each paid on
its own for a thread hand-off, a transaction, the ruleset, team and load reads, and a classifier call. A
``GroupCommit`` takes every request waiting when its previous group is done (up to ``max_batch``), runs them
through a batch service (``workflow.tickets.ingest.create_tickets``) in one unit of work, and answers each request
with its own result. A request that finds the database idle runs at once, alone: nobody waits for company.

Each request keeps the semantics it would have alone:

* its own outcome: an input the service refuses is that request's error and writes nothing;
* idempotency: keys are looked up for the whole batch in one query, a repeat replays the stored response,
  and a second request with a key already in the batch waits for the next batch (then it replays);
* all or nothing: when the batch's transaction fails as a whole (a constraint, an idempotency key that
  another process stored first, an unexpected error), nothing of it is kept and each of its requests is
  run again on its own, so one bad request never fails, or changes, another. Only a failed COMMIT is not
  rerun (``storage.db.CommitFailed``: it may have taken effect); its requests get that error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from anyio import CapacityLimiter, to_thread
from sqlmodel import Session

from storage.db import CommitFailed, Database
from workflow.errors import DomainError
from workflow.idempotency import KeyedRequest, Outcome, check_key, rerun_if_key_raced, run_idempotent_batch
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal

log = logging.getLogger(__name__)

# The batch service: one JSON-able snapshot or a refusal (that wrote nothing) per request, in order.
BatchWork = Callable[
    [Session, WorkflowServices, Sequence[tuple[Principal, Any]]], list[dict[str, Any] | DomainError]
]


class CommitRuntime(Protocol):
    """What a group commit needs of the API's runtime (``runtime.context.ApiRuntime``)."""

    db: Database
    services: WorkflowServices

    @property
    def write_limiter(self) -> CapacityLimiter: ...


@dataclass
class GroupCommitStats:
    """Counters since start: how many groups ran, how many requests they held, the largest group, and how
    many groups failed as a whole (and were rerun one request at a time)."""

    groups: int = 0
    requests: int = 0
    largest: int = 0
    rerun_alone: int = 0


@dataclass
class _Request:
    principal: Principal
    key: str | None
    payload: dict[str, Any]
    service_input: Any
    future: asyncio.Future[Outcome]

    @property
    def idempotency_slot(self) -> tuple[str, str] | None:
        return None if self.key is None else (self.principal.merchant_id, self.key)


class GroupCommit:
    """The group-committed write path of one operation (one instance per operation and runtime)."""

    def __init__(self, runtime: CommitRuntime, operation: str, work: BatchWork, *, max_batch: int) -> None:
        self.runtime = runtime
        self.operation = operation
        self.work = work
        self.max_batch = max_batch
        self._pending: deque[_Request] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._running: list[_Request] = []
        self.stats = GroupCommitStats()

    async def submit(
        self,
        principal: Principal,
        *,
        payload: dict[str, Any],
        idempotency_key: str | None,
        service_input: Any,
    ) -> Outcome:
        """Queue one request and wait for its outcome (unexpected errors are raised, as from ``mutate``)."""
        if idempotency_key is not None:
            try:
                check_key(idempotency_key)
            except DomainError as exc:
                return None, exc, False
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(principal, idempotency_key, payload, service_input, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
            self._drainer.add_done_callback(self._drained)
        return await future

    async def _drain(self) -> None:
        while self._pending:
            self._running = batch = self._take()
            if not batch:  # every waiting client went away
                continue
            self.stats.groups += 1
            self.stats.requests += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            self.runtime.services.metrics.group_committed(self.operation, len(batch))
            outcomes = await to_thread.run_sync(self._run, batch, limiter=self.runtime.write_limiter)
            for request, outcome in zip(batch, outcomes, strict=True):
                if request.future.done():  # the client went away; the work is done all the same
                    continue
                if isinstance(outcome, BaseException):
                    request.future.set_exception(outcome)
                else:
                    request.future.set_result(outcome)
            self._running = []

    def _drained(self, task: asyncio.Task[None]) -> None:
        """Nobody may wait forever: when the drainer was cancelled (shutdown; even before it first ran) or
        failed (a bug here, logged once), every request still waiting is cancelled or fails with it."""
        if task is self._drainer:
            self._drainer = None
        if task.cancelled():
            self._fail_waiting(None)
        elif (exc := task.exception()) is not None:
            log.error("%s: group commit failed", self.operation, exc_info=exc)
            self._fail_waiting(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))

    def _fail_waiting(self, exc: Exception | None) -> None:
        """Cancel (``exc`` None) or fail every request still waiting, in the running group or queued."""
        for request in [*self._running, *self._pending]:
            if request.future.done():
                continue
            if exc is None:
                request.future.cancel()
            else:
                request.future.set_exception(exc)
        self._running = []
        self._pending.clear()

    def _take(self) -> list[_Request]:
        """The next batch, shared fairly: merchants take turns, one request each per round, oldest first
        within a merchant, so one merchant's pile never keeps another's request out of the next batch (it
        waits for at most the group being written). The batch keeps arrival order. A request whose
        idempotency key is already in the batch stays queued (for the next batch, where it replays the first
        one's response); one whose client has gone away before its turn is dropped (nothing is written)."""
        waiting = [request for request in self._pending if not request.future.done()]
        queues: dict[str, deque[int]] = {}
        for position, request in enumerate(waiting):
            queues.setdefault(request.principal.merchant_id, deque()).append(position)
        chosen: list[int] = []
        slots: set[tuple[str, str]] = set()
        while len(chosen) < self.max_batch and queues:
            for merchant_id in list(queues):
                queue = queues[merchant_id]
                while queue:
                    slot = waiting[queue[0]].idempotency_slot
                    if slot is None or slot not in slots:
                        break
                    queue.popleft()  # its key is in this batch already: it waits for the next one
                if not queue:
                    del queues[merchant_id]
                    continue
                position = queue.popleft()
                slot = waiting[position].idempotency_slot
                if slot is not None:
                    slots.add(slot)
                chosen.append(position)
                if len(chosen) == self.max_batch:
                    break
        taken = set(chosen)
        self._pending = deque(r for i, r in enumerate(waiting) if i not in taken)
        return [waiting[i] for i in sorted(chosen)]

    # ------------------------------------------------------------------ in the worker thread

    def _run(self, batch: list[_Request]) -> list[Outcome | BaseException]:
        if len(batch) > 1:
            try:
                with self.runtime.db.unit_of_work() as session:
                    return list(self._attempt(session, batch))
            except CommitFailed as exc:  # it may have been written: rerunning could write it twice
                log.exception("%s: the COMMIT of a group of %d failed", self.operation, len(batch))
                return [exc] * len(batch)
            except Exception:  # rolled back: nothing of the group was kept
                self.stats.rerun_alone += 1
                log.info(
                    "%s: a group of %d failed as a whole; running each alone", self.operation, len(batch)
                )
        return [self._alone(request) for request in batch]

    def _alone(self, request: _Request) -> Outcome | BaseException:
        def unit() -> Outcome:
            with self.runtime.db.unit_of_work() as session:
                return self._attempt(session, [request])[0]

        try:
            return rerun_if_key_raced(unit, request.key)
        except DomainError as exc:
            return None, exc, False
        except Exception as exc:
            return exc

    def _attempt(self, session: Session, batch: list[_Request]) -> list[Outcome]:
        services = self.runtime.services

        def run(indexes: list[int]) -> list[dict[str, Any] | DomainError]:
            return self.work(
                session, services, [(batch[i].principal, batch[i].service_input) for i in indexes]
            )

        keyed = [KeyedRequest(r.principal.merchant_id, r.key, r.payload) for r in batch]
        return run_idempotent_batch(session, self.operation, keyed, run)
