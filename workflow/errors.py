"""Domain errors with stable codes; the API maps them to ``errors { code message field }``."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_RULESET = "INVALID_RULESET"
    RULESET_TESTS_FAILED = "RULESET_TESTS_FAILED"
    TRANSITION_NOT_ALLOWED = "TRANSITION_NOT_ALLOWED"
    POLICY_DENIED = "POLICY_DENIED"
    IDEMPOTENCY_MISMATCH = "IDEMPOTENCY_MISMATCH"
    RATE_LIMITED = "RATE_LIMITED"
    QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
    TIMEOUT = "TIMEOUT"
    # A classifier model's safety gate refused its promotion (workflow.classifier_models).
    MODEL_GATE_FAILED = "MODEL_GATE_FAILED"


class DomainError(Exception):
    """An expected failure. ``details`` may carry structured data (e.g. ruleset problems)."""

    def __init__(
        self, code: ErrorCode, message: str, field: str | None = None, details: object = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details = details


def not_found(what: str, field: str | None = "id") -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, f"{what} not found", field)


def invalid(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, field)


def forbidden(message: str) -> DomainError:
    return DomainError(ErrorCode.FORBIDDEN, message)
