"""Schema assembly with the protective extensions: depth, alias and token limits, a parsed-document cache,
validation (cached per document) followed by the request's input checks (``schema.input_checks``) and its
static cost (``schema.cost``, refused over the budget with ``QUERY_TOO_COSTLY``), introspection and
"Did you mean …?" suggestions off in production, and masking of unexpected errors (logged with the request
id, shown to the client only as a generic error carrying that id)."""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, TypeVar

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLField,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    parse,
    validate,
)
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext

from api.root import Mutation, Query
from api.subscriptions import Subscription
from schema.cost import CostModel, operation_cost, selected_operation
from schema.fast_execution import FastLeafExecutionContext, plan_leaf_fields, plan_object_fields
from schema.input_checks import literal_problems, variable_problems

log = logging.getLogger("bookbag.api")

INTERNAL_ERROR = "INTERNAL_SERVER_ERROR"
INVALID_INPUT = "INVALID_INPUT"
QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"


@dataclass(frozen=True)
class SchemaLimits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    max_batch_operations: int = 5
    # The standard introspection query (GraphiQL's) costs about 16,400; the admin UI's queries at most 140.
    max_query_cost: int = 20_000
    cost_model: CostModel = field(default_factory=CostModel)
    introspection: bool = True
    suggestions: bool = True  # "Did you mean …?" in errors; off in production
    document_cache_size: int = 512


def too_costly(cost: int, budget: int, what: str = "operation") -> GraphQLError:
    return GraphQLError(
        f"{what} cost {cost} exceeds the budget of {budget} (each object counts 1, a list counts its page "
        "size `first`, nested lists multiply): ask for smaller pages or fewer nested lists",
        extensions={"code": QUERY_TOO_COSTLY, "cost": cost, "budget": budget},
    )


K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A small least-recently-used map (one per guard, so nothing is cached at module level)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class RequestGuard:
    """What every operation passes before it executes, over HTTP and websockets alike: validation and the
    checks of the values written in the document (cached per document and rule set), then the checks of the
    request's variables, then the cost budget. Held by the schema, so its cache lives and dies with it."""

    def __init__(self, limits: SchemaLimits) -> None:
        self.limits = limits
        # Keyed by the query text, never by the parsed document: a document hashes by value (a walk of the
        # whole tree on every lookup), a string hashes once.
        self._checked: LruCache[tuple[str, tuple[type[ASTValidationRule], ...]], list[GraphQLError]] = (
            LruCache(limits.document_cache_size)
        )
        self._costs: LruCache[tuple[str, str | None], int] = LruCache(limits.document_cache_size)
        self.parse = lru_cache(maxsize=limits.document_cache_size)(self._parse)

    def _parse(self, query: str) -> DocumentNode:
        """The document of ``query`` (raises GraphQLError), cached: a batch repeated by a client is parsed
        once, not once per request on the event loop."""
        return parse(query, max_tokens=self.limits.max_tokens)

    def check_document(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
        query: str | None = None,
    ) -> list[GraphQLError]:
        """What depends on the document alone: validation, then the values written in it (cached by
        ``query``, the document's text, when given)."""
        if query is not None:
            cached = self._checked.get((query, rules))
            if cached is not None:
                return cached
        every_rule = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
        errors = validate(schema, document, every_rule, hide_suggestions=not self.limits.suggestions)
        errors = errors or literal_problems(schema, document)
        if query is not None:
            self._checked.put((query, rules), errors)
        return errors

    def cost(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        query: str | None = None,
    ) -> int:
        """The operation's static cost; without variables a function of the text, cached by ``query``."""
        if variables or query is None:
            return operation_cost(schema, document, operation_name, variables, self.limits.cost_model)
        cached = self._costs.get((query, operation_name))
        if cached is None:
            cached = operation_cost(schema, document, operation_name, None, self.limits.cost_model)
            self._costs.put((query, operation_name), cached)
        return cached

    def check(self, execution_context: ExecutionContext) -> list[GraphQLError]:
        schema = execution_context.schema._schema
        document = execution_context.graphql_document
        assert document is not None
        query = execution_context.query
        errors = self.check_document(schema, document, tuple(execution_context.validation_rules), query)
        if errors:
            return errors
        variables = execution_context.variables
        operation = selected_operation(document, execution_context.operation_name)
        errors = variable_problems(schema, operation, variables)
        if errors:
            return errors
        cost = self.cost(schema, document, execution_context.operation_name, variables, query)
        if cost > self.limits.max_query_cost:
            return [too_costly(cost, self.limits.max_query_cost)]
        return []


class GuardedValidation(SchemaExtension):
    """Runs :class:`RequestGuard` in place of strawberry's validation (which has no suggestion switch)."""

    def __init__(self, guard: RequestGuard) -> None:
        super().__init__()
        self.guard = guard

    def on_validate(self) -> Iterator[None]:
        # Set before yielding: strawberry then skips its own validation and stops at these errors.
        self.execution_context.pre_execution_errors = self.guard.check(self.execution_context)
        yield


def _is_unexpected(error: GraphQLError) -> bool:
    """Expected errors are GraphQL errors (validation, ApiError); anything else is a bug to hide."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def _request_id(context: Any) -> str:
    return str(getattr(context, "request_id", "-"))


# graphql-core's words for a variable whose value does not fit its type, and where in the value.
_VARIABLE_ERROR = re.compile(
    r"^Variable '\$(?P<name>\w+)' has invalid (?:default )?value(?: at (?P<path>[^:]*))?:"
)


def request_error_code(error: GraphQLError) -> dict[str, Any]:
    """``extensions`` for an error about the request itself (no code of its own, raised before anything
    executed: a document that does not parse or validate, a variable that does not fit its type): every such
    error is the client's bad input, ``INVALID_INPUT``, with the variable's path when there is one."""
    extensions = dict(error.extensions or {})
    if "code" in extensions or error.path is not None:
        return extensions
    extensions["code"] = INVALID_INPUT
    match = _VARIABLE_ERROR.match(error.message)
    if match:
        extensions["field"] = match["name"] + (match["path"] or "").strip()
    return extensions


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
    guard: RequestGuard

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
                # Here rather than in an extension: strawberry passes every error through this hook, also
                # a syntax error, which leaves the operation before extensions see its result.
                error.extensions = request_error_code(error)
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


def _without_suggestions(base: type[StrawberryGraphQLCoreExecutionContext]) -> type[Any]:
    """An executor that always hides suggestions (bad enum values in variables list the valid ones)."""

    class NoSuggestionsExecutionContext(base):  # type: ignore[valid-type,misc]
        @classmethod
        def build(cls, *args: Any, **kwargs: Any) -> Any:
            kwargs["hide_suggestions"] = True
            return super().build(*args, **kwargs)

    return NoSuggestionsExecutionContext


def build_schema(limits: SchemaLimits | None = None, *, fast_leaves: bool = True) -> BookbagSchema:
    limits = limits or SchemaLimits()
    guard = RequestGuard(limits)
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
        lambda: GuardedValidation(guard),
        MaskUnexpectedErrors,
    ]
    execution_class: type[Any] | None = FastLeafExecutionContext if fast_leaves else None
    if not limits.suggestions:
        execution_class = _without_suggestions(execution_class or StrawberryGraphQLCoreExecutionContext)
    schema = BookbagSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(batching_config={"max_operations": limits.max_batch_operations}),
        execution_context_class=execution_class,
    )
    schema.guard = guard
    if fast_leaves:
        plan_leaf_fields(schema._schema, _plain_attribute)
        plan_object_fields(schema._schema, _plain_attribute)
    return schema
