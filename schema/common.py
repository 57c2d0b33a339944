"""Shared output types: expected errors in payloads, Relay page info."""

from __future__ import annotations

import strawberry

from schema.enums import ErrorCode
from workflow.errors import DomainError


@strawberry.type(description="An expected failure of a mutation. `field` names the offending input, if one.")
class UserError:
    code: ErrorCode
    message: str
    field: str | None = None

    @classmethod
    def from_domain(cls, error: DomainError) -> UserError:
        return cls(code=ErrorCode(error.code.value), message=error.message, field=error.field)


@strawberry.interface(
    description="An object with an id unique across all types (its prefix names the type: `tkt_` a ticket, "
    "`team_` a team, `agt_` an agent); `node(id:)` fetches any of them."
)
class Node:
    id: strawberry.ID


@strawberry.type(description="Where a page of a connection sits (Relay cursor connections).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow the last edge.")
    end_cursor: str | None = strawberry.field(description="The last edge's cursor: pass it as `after`.")
    has_previous_page: bool = strawberry.field(
        default=False, description="Items precede the first edge (the page was asked for `after` a cursor)."
    )
    start_cursor: str | None = strawberry.field(default=None, description="The first edge's cursor.")
