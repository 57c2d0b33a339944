"""Checks on every input value of a request, before anything executes (HTTP and websockets alike).

GraphQL's own coercion accepts values that no back-end can store or that crash the code reading them:
NUL characters (PostgreSQL refuses them, SQLite stores them), unpaired surrogates (not encodable as UTF-8),
integers beyond 64 bits inside JSON values (``float()`` overflows), non-finite numbers, and date-times
without a time zone (compared with stored aware times they raise). Each is refused here with
``INVALID_INPUT`` naming the offending input: ``input.order.createdAt`` for a variable's value (the path
starts with the variable's name), ``filter.createdAfter`` for a literal in the document (the path starts
with the argument's name).

The walks are iterative: a value's nesting depth cannot exhaust the stack (the HTTP edge caps JSON depth
separately).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FloatValueNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValueNode,
    Visitor,
    type_from_ast,
    visit,
)

INVALID_INPUT = "INVALID_INPUT"
DATETIME_SCALAR = "DateTime"
MAX_INTEGER = 2**63 - 1
MAX_PROBLEMS = 10  # enough to fix a request; a hostile one does not get a long answer


def bad_input(field: str, message: str) -> GraphQLError:
    return GraphQLError(f"{field}: {message}", extensions={"code": INVALID_INPUT, "field": field})


def string_problem(value: str) -> str | None:
    if "\x00" in value:
        return "text must not contain NUL characters (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text must not contain unpaired surrogates (it is not valid Unicode)"
    return None


def number_problem(value: int | float) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -MAX_INTEGER - 1 <= value <= MAX_INTEGER else "integers must fit in 64 bits"
    return None if math.isfinite(value) else "numbers must be finite"


def datetime_problem(value: str) -> str | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None  # not a date-time at all: the DateTime scalar answers that itself
    if parsed.tzinfo is None:
        return "date-times need a time zone offset, e.g. 2026-05-01T12:00:00Z"
    return None


def _named(type_: GraphQLInputType | None) -> GraphQLInputType | None:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return type_


def _value_problems(value: Any, type_: GraphQLInputType | None, path: str) -> Iterator[GraphQLError]:
    """Problems in a variable's JSON value; ``type_`` is None inside JSON scalars (untyped)."""
    stack: list[tuple[Any, GraphQLInputType | None, str]] = [(value, type_, path)]
    while stack:
        value, type_, path = stack.pop()
        type_ = _named(type_)
        if isinstance(value, dict):
            fields = type_.fields if isinstance(type_, GraphQLInputObjectType) else {}
            for key, item in value.items():
                field = fields.get(key)
                stack.append((item, field.type if field else None, f"{path}.{key}"))
        elif isinstance(value, list):
            item_type = type_.of_type if isinstance(type_, GraphQLList) else None
            stack.extend((item, item_type, f"{path}[{i}]") for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, str):
            problem = string_problem(value)
            if problem is None and isinstance(type_, GraphQLScalarType) and type_.name == DATETIME_SCALAR:
                problem = datetime_problem(value)
            if problem:
                yield bad_input(path, problem)
        elif isinstance(value, int | float):
            problem = number_problem(value)
            if problem:
                yield bad_input(path, problem)


def _literal_problems(node: ValueNode, type_: GraphQLInputType | None, path: str) -> Iterator[GraphQLError]:
    """Problems in a literal written in the document (variables inside it are checked with the variables)."""
    stack: list[tuple[ValueNode, GraphQLInputType | None, str]] = [(node, type_, path)]
    while stack:
        node, type_, path = stack.pop()
        type_ = _named(type_)
        if isinstance(node, ObjectValueNode):
            fields = type_.fields if isinstance(type_, GraphQLInputObjectType) else {}
            for field_node in node.fields:
                name = field_node.name.value
                field = fields.get(name)
                stack.append((field_node.value, field.type if field else None, f"{path}.{name}"))
        elif isinstance(node, ListValueNode):
            item_type = type_.of_type if isinstance(type_, GraphQLList) else None
            stack.extend(
                (item, item_type, f"{path}[{i}]") for i, item in reversed(list(enumerate(node.values)))
            )
        elif isinstance(node, StringValueNode):
            problem = string_problem(node.value)
            if problem is None and isinstance(type_, GraphQLScalarType) and type_.name == DATETIME_SCALAR:
                problem = datetime_problem(node.value)
            if problem:
                yield bad_input(path, problem)
        elif isinstance(node, IntValueNode):
            problem = number_problem(int(node.value))
            if problem:
                yield bad_input(path, problem)
        elif isinstance(node, FloatValueNode):
            problem = number_problem(float(node.value))
            if problem:
                yield bad_input(path, problem)


class _ArgumentLiterals(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.errors: list[GraphQLError] = []

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> Any:
        argument = self.type_info.get_argument()
        for error in _literal_problems(node.value, argument.type if argument else None, node.name.value):
            self.errors.append(error)
            if len(self.errors) >= MAX_PROBLEMS:
                return self.BREAK
        return self.SKIP  # the value's nodes were walked above


def literal_problems(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
    """Problems in the values written in the document (the same for every request sending it: cacheable)."""
    type_info = TypeInfo(schema)
    literals = _ArgumentLiterals(type_info)
    visit(document, TypeInfoVisitor(type_info, literals))
    return literals.errors[:MAX_PROBLEMS]


def variable_problems(
    schema: GraphQLSchema, operation: OperationDefinitionNode | None, variables: Mapping[str, Any] | None
) -> list[GraphQLError]:
    """Problems in the request's variables for the operation that runs."""
    errors: list[GraphQLError] = []
    if operation is None or not variables:
        return errors
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in variables:
            continue
        var_type = type_from_ast(schema, definition.type)
        for error in _value_problems(variables[name], var_type, name):  # type: ignore[arg-type]
            errors.append(error)
            if len(errors) >= MAX_PROBLEMS:
                return errors
    return errors
