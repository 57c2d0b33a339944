"""Running units of work off the event loop, and turning domain errors into API errors.

Workflow services are synchronous SQLAlchemy; each resolver call runs its whole unit of work in a worker
thread, so the event loop (and every websocket on it) never waits on the database. The commit happens in
that thread, inside ``db.unit_of_work()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from anyio import to_thread
from graphql import GraphQLError
from sqlmodel import Session

from resolvers.context import RequestContext
from workflow.errors import DomainError, ErrorCode
from workflow.idempotency import rerun_if_key_raced, run_idempotent
from workflow.principal import Principal, Role
from workflow.services import WorkflowServices

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


def require_role(principal: Principal, roles: frozenset[Role] | None) -> None:
    """The API's own role table, checked before any service runs (``None``: any role)."""
    if roles is not None and principal.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"this needs one of the roles: {allowed} (your key is {principal.role.value})",
        )


async def read(ctx: RequestContext, fn: Callable[[Session], T]) -> T:
    """Run ``fn`` in a worker thread with a read-only session."""
    db = ctx.runtime.db

    def work() -> T:
        with db.read_only() as session:
            result = fn(session)
            # read_only() rolls back at the end, which would expire the loaded rows; detach them first.
            session.expunge_all()
            return result

    return await to_thread.run_sync(work, limiter=ctx.runtime.read_limiter)


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
        result = await to_thread.run_sync(
            rerun_if_key_raced, unit, idempotency_key, limiter=runtime.write_limiter
        )
    except DomainError as exc:
        return None, exc, False
    return result, None, not ran
