"""Group commit: requests for one mutation that wait for the database together run in one transaction.

Under load, createTicket requests queue for the single SQLite writer one after another, and each paid on
its own for a thread hand-off, a transaction, the ruleset, team and load reads, and a classifier call. A
``GroupCommit`` takes every request waiting when the database comes free (up to ``max_batch``), runs them
through a batch service (``workflow.ingest.create_tickets``) in one unit of work, and answers each request
with its own result. A request that finds the database idle runs at once, alone: nobody waits for company.

Each request keeps the semantics it would have alone:

* its own outcome: an input the service refuses is that request's error and writes nothing;
* idempotency: keys are looked up for the whole batch in one query, a repeat replays the stored response,
  and a second request with a key already in the batch waits for the next batch (then it replays);
* all or nothing: when the batch's transaction fails as a whole (a constraint, an idempotency key that
  another process stored first, an unexpected error), nothing of it is kept and each of its requests is
  run again on its own, so one bad request never fails, or changes, another.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from workflow.errors import DomainError
from workflow.idempotency import check_key, find_records, remember, replay
from workflow.principal import Principal
from workflow.services import WorkflowServices

if TYPE_CHECKING:
    from resolvers.context import ApiRuntime

log = logging.getLogger(__name__)

# (snapshot, None, replayed) or (None, error, False), as resolvers.runner.mutate answers.
Outcome = tuple[dict[str, Any] | None, DomainError | None, bool]
# The batch service: one JSON-able snapshot or a refusal (that wrote nothing) per request, in order.
BatchWork = Callable[
    [Session, WorkflowServices, Sequence[tuple[Principal, Any]]], list[dict[str, Any] | DomainError]
]


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
    item: Any
    future: asyncio.Future[Outcome]

    @property
    def idempotency_slot(self) -> tuple[str, str] | None:
        return None if self.key is None else (self.principal.merchant_id, self.key)


class GroupCommit:
    """The group-committed write path of one operation (one instance per operation and runtime)."""

    def __init__(self, runtime: ApiRuntime, operation: str, work: BatchWork, *, max_batch: int) -> None:
        self.runtime = runtime
        self.operation = operation
        self.work = work
        self.max_batch = max_batch
        self._pending: deque[_Request] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self.stats = GroupCommitStats()

    async def submit(
        self, principal: Principal, *, payload: dict[str, Any], idempotency_key: str | None, item: Any
    ) -> Outcome:
        """Queue one request and wait for its outcome (unexpected errors are raised, as from ``mutate``)."""
        if idempotency_key is not None:
            try:
                check_key(idempotency_key)
            except DomainError as exc:
                return None, exc, False
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(principal, idempotency_key, payload, item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[_Request] = []
        try:
            while self._pending:
                batch = self._take()
                if not batch:  # every waiting client went away
                    continue
                self.stats.groups += 1
                self.stats.requests += len(batch)
                self.stats.largest = max(self.stats.largest, len(batch))
                outcomes = await to_thread.run_sync(self._run, batch, limiter=self.runtime.write_limiter)
                for request, outcome in zip(batch, outcomes, strict=True):
                    if request.future.done():  # the client went away; the work is done all the same
                        continue
                    if isinstance(outcome, BaseException):
                        request.future.set_exception(outcome)
                    else:
                        request.future.set_result(outcome)
                batch = []
        except BaseException as exc:  # cancelled at shutdown, or a bug here: nobody may wait forever
            for request in [*batch, *self._pending]:
                if request.future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    request.future.cancel()
                else:
                    request.future.set_exception(exc)
            self._pending.clear()
            raise
        finally:
            self._drainer = None

    def _take(self) -> list[_Request]:
        """The next batch, oldest first. A request whose idempotency key is already in the batch stays queued
        (for the next batch, where it replays the first one's response); one whose client has gone away
        before its turn is dropped (nothing is written for it)."""
        batch: list[_Request] = []
        slots: set[tuple[str, str]] = set()
        waiting: deque[_Request] = deque()
        while self._pending and len(batch) < self.max_batch:
            request = self._pending.popleft()
            if request.future.done():
                continue
            slot = request.idempotency_slot
            if slot is not None and slot in slots:
                waiting.append(request)
                continue
            if slot is not None:
                slots.add(slot)
            batch.append(request)
        self._pending.extendleft(reversed(waiting))
        return batch

    # ------------------------------------------------------------------ in the worker thread

    def _run(self, batch: list[_Request]) -> list[Outcome | BaseException]:
        if len(batch) > 1:
            try:
                with self.runtime.db.unit_of_work() as session:
                    return list(self._attempt(session, batch))
            except Exception:
                self.stats.rerun_alone += 1
                log.info(
                    "%s: a group of %d failed as a whole; running each alone", self.operation, len(batch)
                )
        return [self._alone(request) for request in batch]

    def _alone(self, request: _Request) -> Outcome | BaseException:
        for attempt in (1, 2):
            try:
                with self.runtime.db.unit_of_work() as session:
                    return self._attempt(session, [request])[0]
            except DomainError as exc:
                return None, exc, False
            except IntegrityError as exc:
                if request.key is None or attempt == 2:
                    return exc
                # Another request with this key committed first; the retry replays its response.
            except Exception as exc:
                return exc
        raise AssertionError("unreachable")

    def _attempt(self, session: Session, batch: list[_Request]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        records = self._stored_records(session, batch)
        todo: list[int] = []
        for index, request in enumerate(batch):
            if request.key is not None:
                try:
                    stored = records.get((request.principal.merchant_id, request.key))
                    replayed = replay(stored, self.operation, request.payload)
                except DomainError as exc:
                    outcomes[index] = (None, exc, False)
                    continue
                if replayed is not None:
                    outcomes[index] = (replayed, None, True)
                    continue
            todo.append(index)
        services = self.runtime.services
        results = (
            self.work(session, services, [(batch[i].principal, batch[i].item) for i in todo]) if todo else []
        )
        for index, result in zip(todo, results, strict=True):
            request = batch[index]
            if isinstance(result, DomainError):
                outcomes[index] = (None, result, False)
                continue
            if request.key is not None:
                remember(
                    session,
                    merchant_id=request.principal.merchant_id,
                    key=request.key,
                    operation=self.operation,
                    payload=request.payload,
                    response=result,
                )
            outcomes[index] = (result, None, False)
        return [outcome for outcome in outcomes if outcome is not None]

    @staticmethod
    def _stored_records(session: Session, batch: list[_Request]) -> dict[tuple[str, str], Any]:
        keys: dict[str, list[str]] = {}
        for request in batch:
            if request.key is not None:
                keys.setdefault(request.principal.merchant_id, []).append(request.key)
        return {
            (merchant_id, key): record
            for merchant_id, merchant_keys in keys.items()
            for key, record in find_records(session, merchant_id, merchant_keys).items()
        }
