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


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
