"""Schema assembly with the protective extensions: depth, alias and token limits, parsed/validated
document caches, introspection off in production, and masking of unexpected errors (logged with the
request id, shown to the client only as a generic error carrying that id)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError, GraphQLField, NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from schema.fast_execution import FastLeafExecutionContext, plan_leaf_fields, plan_object_fields
from schema.root import Mutation, Query
from schema.subscriptions import Subscription

log = logging.getLogger("bookbag.api")

INTERNAL_ERROR = "INTERNAL_SERVER_ERROR"


@dataclass(frozen=True)
class SchemaLimits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    max_batch_operations: int = 5
    introspection: bool = True
    document_cache_size: int = 512


def _is_unexpected(error: GraphQLError) -> bool:
    """Expected errors are GraphQL errors (validation, ApiError); anything else is a bug to hide."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def _request_id(context: Any) -> str:
    return str(getattr(context, "request_id", "-"))


class MaskUnexpectedErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Unexpected error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = _request_id(self.execution_context.context)
        return GraphQLError(
            message=f"Unexpected error (request id {request_id}).",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions={"code": INTERNAL_ERROR, "requestId": request_id},
        )


class BookbagSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        request_id = _request_id(execution_context.context if execution_context else None)
        for error in errors:
            if _is_unexpected(error):
                log.error(
                    "unexpected error in request %s at %s: %s",
                    request_id,
                    error.path,
                    error.message,
                    exc_info=error.original_error,
                )
            else:
                log.debug("request %s: %s", request_id, error.message)


def _plain_attribute(gql_field: GraphQLField) -> str | None:
    """The attribute a field reads, when strawberry marks it basic (no resolver, extensions, permissions)."""
    definition = (gql_field.extensions or {}).get("strawberry-definition")
    if definition is None or not getattr(gql_field.resolve, "_is_default", False):
        return None
    return str(definition.python_name)


def _rules_extension(rules: list[type[ASTValidationRule]]) -> Callable[[], SchemaExtension]:
    # The rule classes are built once so the validation cache (keyed by the rules) keeps hitting;
    # the extension instance itself is per request.
    return lambda: AddValidationRules(rules)


def build_schema(limits: SchemaLimits | None = None, *, fast_leaves: bool = True) -> BookbagSchema:
    limits = limits or SchemaLimits()
    rules: list[type[ASTValidationRule]] = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    if not limits.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    size = limits.document_cache_size
    max_tokens = limits.max_tokens
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        _rules_extension(rules),
        lambda: ParserCache(maxsize=size),
        lambda: ValidationCache(maxsize=size),
        MaskUnexpectedErrors,
    ]
    schema = BookbagSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(batching_config={"max_operations": limits.max_batch_operations}),
        execution_context_class=FastLeafExecutionContext if fast_leaves else None,
    )
    if fast_leaves:
        plan_leaf_fields(schema._schema, _plain_attribute)
        plan_object_fields(schema._schema, _plain_attribute)
    return schema
