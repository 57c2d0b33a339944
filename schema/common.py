"""Shared output types: expected errors in payloads, Relay page info."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry

from schema.enums import ErrorCode
from workflow.errors import DomainError

ResolverT = TypeVar("ResolverT", bound=Callable[..., Any])


def described(description: str) -> Callable[[ResolverT], ResolverT]:
    """``@strawberry.field(description=...)`` on a method, typed: strawberry's overload for that call returns
    ``Any``, which strict mypy refuses as a decorator."""
    return cast(Callable[[ResolverT], ResolverT], strawberry.field(description=description))


@strawberry.type(description="An expected failure of a mutation. `field` names the offending input, if one.")
class UserError:
    code: ErrorCode = strawberry.field(description="The error's code.")
    message: str = strawberry.field(description="What went wrong, in words.")
    field: str | None = strawberry.field(default=None, description="The input field at fault.")

    @classmethod
    def from_domain(cls, error: DomainError) -> UserError:
        return cls(code=ErrorCode(error.code.value), message=error.message, field=error.field)


@strawberry.interface(
    description="An object with an id unique across all types (its prefix names the type: `tkt_` a ticket, "
    "`team_` a team, `agt_` an agent); `node(id:)` fetches any of them."
)
class Node:
    id: strawberry.ID = strawberry.field(
        description="Global id, unique across types; its prefix names the type."
    )


@strawberry.type(description="Where a page of a connection sits (Relay cursor connections).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow the last edge.")
    end_cursor: str | None = strawberry.field(description="The last edge's cursor: pass it as `after`.")
    has_previous_page: bool = strawberry.field(
        default=False, description="Items precede the first edge (the page was asked for `after` a cursor)."
    )
    start_cursor: str | None = strawberry.field(default=None, description="The first edge's cursor.")
