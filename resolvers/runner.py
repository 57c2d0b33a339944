"""Running units of work off the event loop, and turning domain errors into API errors.

Workflow services are synchronous SQLAlchemy; each resolver call runs its whole unit of work in a worker
thread, so the event loop (and every websocket on it) never waits on the database. The commit happens in
that thread, inside ``db.unit_of_work()``. Each unit of work first takes one of its merchant's database slots
(``runtime.fairness``), so one merchant's pile of requests queues behind itself, not in front of everyone.
CPU-heavy ruleset work runs through :func:`heavy` and :func:`compute` instead: bounded per merchant, in worker
processes (``runtime.workers``) or threads of its own, never in the database threads.

A refusal to protect the others (:class:`runtime.fairness.RateLimited`) becomes :func:`rate_limited`: a
GraphQL error with ``extensions.code`` RATE_LIMITED and ``extensions.retryAfter`` seconds, and on HTTP the
status 429 with a ``Retry-After`` header, exactly as the edge answers a request over its rate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from anyio import to_thread
from graphql import GraphQLError
from sqlmodel import Session

from runtime.context import RequestContext
from runtime.fairness import RateLimited
from runtime.workers import Tools
from workflow.errors import DomainError, ErrorCode
from workflow.idempotency import rerun_if_key_raced, run_idempotent
from workflow.services import WorkflowServices
from workflow.tenancy.principal import Principal, Role

T = TypeVar("T")


class ApiError(GraphQLError):
    """An expected failure of a query (not masked): carries a stable ``extensions.code``."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        extensions: dict[str, Any] = {"code": code}
        if field:
            extensions["field"] = field
        super().__init__(message, extensions=extensions)


def api_error(error: DomainError) -> ApiError:
    return ApiError(error.code.value, error.message, error.field)


def rate_limited(ctx: RequestContext, refused: RateLimited) -> ApiError:
    """The GraphQL error for a refusal; on HTTP the response also becomes a 429 with ``Retry-After``."""
    response = ctx.response
    if response is not None and hasattr(response, "status_code") and hasattr(response, "headers"):
        response.status_code = 429
        response.headers["retry-after"] = refused.retry_after_header
    error = ApiError(ErrorCode.RATE_LIMITED.value, refused.message)
    assert error.extensions is not None
    error.extensions["retryAfter"] = refused.retry_after
    return error


def require_role(principal: Principal, roles: frozenset[Role] | None) -> None:
    """The API's own role table, checked before any service runs (``None``: any role)."""
    if roles is not None and principal.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"this needs one of the roles: {allowed} (your key is {principal.role.value})",
        )


async def read(ctx: RequestContext, fn: Callable[[Session], T]) -> T:
    """Run ``fn`` in a worker thread with a read-only session, in one of the merchant's read slots."""
    runtime = ctx.runtime
    db = runtime.db

    def work() -> T:
        with db.read_only() as session:
            result = fn(session)
            # read_only() rolls back at the end, which would expire the loaded rows; detach them first.
            session.expunge_all()
            return result

    async with runtime.fair.db_unit(ctx.auth.merchant_id, "read"):
        return await to_thread.run_sync(work, limiter=runtime.read_limiter)


async def heavy(
    ctx: RequestContext, roles: frozenset[Role] | None, work: Callable[[Principal], Awaitable[T]]
) -> T:
    """CPU-heavy work (ruleset checks, simulations, backtests): role check, then ``work`` inside one of the
    merchant's heavy slots, after waiting its turn behind the merchant's own; refused with RATE_LIMITED when
    too many of the merchant's wait or the wait is too long (see ``runtime.fairness``)."""
    principal = ctx.auth
    require_role(principal, roles)
    try:
        async with ctx.runtime.fair.heavy(principal.merchant_id):
            return await work(principal)
    except RateLimited as refused:
        raise rate_limited(ctx, refused) from None


async def compute(ctx: RequestContext, fn: Callable[..., T], *args: Any) -> T:
    """``fn(tools, *args)`` (a function of ``runtime.workers``) in a worker process with a hard time
    limit, or, without worker processes, in a thread of the heavy pool with the server's engine. Call it
    inside :func:`heavy`."""
    runtime = ctx.runtime
    if runtime.workers is not None:
        return await runtime.workers.run(fn, *args)
    services = runtime.services
    tools = Tools(engine=services.policy, ruleset=services.rulesets.get, limits=services.rulesets.limits)
    return await to_thread.run_sync(lambda: fn(tools, *args), limiter=runtime.fair.heavy_limiter)


async def read_as(
    ctx: RequestContext, roles: frozenset[Role] | None, fn: Callable[[Session, Principal], T]
) -> T:
    """Role check, then ``fn`` in a read-only session; domain errors propagate as they are."""
    principal = ctx.auth
    require_role(principal, roles)
    return await read(ctx, lambda session: fn(session, principal))


async def query(
    ctx: RequestContext, roles: frozenset[Role] | None, fn: Callable[[Session, Principal], T]
) -> T:
    """A query field: like :func:`read_as`, with domain errors turned into GraphQL errors."""
    try:
        return await read_as(ctx, roles, fn)
    except DomainError as exc:
        raise api_error(exc) from None


Work = Callable[[Session, WorkflowServices, Principal], dict[str, Any]]


async def mutate(
    ctx: RequestContext,
    roles: frozenset[Role] | None,
    *,
    operation: str,
    payload: dict[str, Any],
    idempotency_key: str | None,
    work: Work,
) -> tuple[dict[str, Any] | None, DomainError | None, bool]:
    """Run one mutation as one unit of work: ``(snapshot, None, replayed)`` or ``(None, error, False)``.

    ``work`` returns a JSON-able snapshot of its result; with an idempotency key, that snapshot is stored
    in the same transaction and replayed verbatim on a repeat, so a replay answers exactly as the first did.
    """
    principal = ctx.auth
    runtime = ctx.runtime
    ran = False

    def run(session: Session) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            nonlocal ran
            ran = True
            return work(session, runtime.services, principal)

        return run_idempotent(
            session,
            merchant_id=principal.merchant_id,
            key=idempotency_key,
            operation=operation,
            payload=payload,
            run=once,
        )

    def unit() -> dict[str, Any]:
        nonlocal ran
        ran = False  # a rerun after a key race replays: it runs nothing
        with runtime.db.unit_of_work() as session:
            return run(session)

    try:
        require_role(principal, roles)
        async with runtime.fair.db_unit(principal.merchant_id, "write"):
            result = await to_thread.run_sync(
                rerun_if_key_raced, unit, idempotency_key, limiter=runtime.write_limiter
            )
    except DomainError as exc:
        return None, exc, False
    return result, None, not ran
