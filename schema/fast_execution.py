"""A faster path through graphql-core for the commonest fields: plain attribute reads.

A 50-ticket page is ~2,000 fields; graphql-core builds a resolve-info object, calls the resolver and
completes the value for each one. Here, fields that strawberry marks as basic (no resolver, no arguments,
no extensions) are read directly:

* leaves (a scalar, an enum, or a list of them) are coerced with the same ``coerce_output_value``
  graphql-core would use;
* objects (or lists of objects) whose selected sub-fields are all such plain reads, recursively, are
  built in one pass without graphql-core's per-field machinery (the sub-selection is collected once per
  document by graphql-core itself, so fragments, aliases, ``@skip``/``@include`` mean what they always do).

Anything unusual (a null in a non-null field, a value that does not coerce, a resolver or ``__typename``
anywhere below, ``@defer``, a type with ``is_type_of``, middleware being present) falls back to
graphql-core's own path for that field, so errors and results are exactly what the standard executor
produces.
"""

from __future__ import annotations

import datetime as dt
import keyword
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    Undefined,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.types.base_scalars import isoformat as strawberry_isoformat

LEAF_PLAN = "bookbag-leaf-plan"
OBJECT_PLAN = "bookbag-object-plan"

# (attribute name, coerce function, non-null, is list, list items non-null, fast type, fast output): a
# non-list value whose exact type is the fast type has its output without the serializer call chain, the
# same output the serializer gives: itself (String/ID: str, Boolean: bool; Float: a finite float) or, for
# a strawberry enum, its member's GraphQL name
LeafPlan = tuple[str, Callable[[Any], Any], bool, bool, bool, type | None, Any]
# (attribute name, object type, non-null, is list, list items non-null)
ObjectPlan = tuple[str, GraphQLObjectType, bool, bool, bool]


_STANDARD = {t.name: t for t in (GraphQLString, GraphQLID, GraphQLBoolean, GraphQLFloat)}
_PASSTHROUGH: dict[str, type] = {"String": str, "ID": str, "Boolean": bool, "Float": float}
_ITSELF = object()  # fast output: the value itself
_FINITE = object()  # fast output: the value itself when finite (graphql-core refuses NaN and infinities)
_INT32 = object()  # fast output: the value itself when it fits GraphQL's 32-bit Int
_ISOFORMAT = object()  # fast output: value.isoformat(), strawberry's serializer for its date/time scalars
_MISS = object()
_ISO_TYPES = {"DateTime": dt.datetime, "Date": dt.date, "Time": dt.time}


def _fast_leaf(type_: Any, is_list: bool) -> tuple[type | None, Any]:
    if is_list:
        return None, None
    standard = _STANDARD.get(type_.name)
    if standard is not None and type_ is standard:
        return _PASSTHROUGH[standard.name], _FINITE if standard is GraphQLFloat else _ITSELF
    if type_ is GraphQLInt:
        return int, _INT32
    if type_.name in _ISO_TYPES and type_.serialize is strawberry_isoformat:
        return _ISO_TYPES[type_.name], _ISOFORMAT
    wrapped = getattr(type_, "wrapped_cls", None)  # strawberry's enum type: members → names
    if isinstance(type_, GraphQLEnumType) and isinstance(wrapped, type) and issubclass(wrapped, Enum):
        names = {}
        for member in wrapped:
            name = next((n for n, v in type_.values.items() if member.value == v.value), None)
            if name is None:
                return None, None
            names[member] = name
        return wrapped, names
    return None, None


def _fast_output(leaf: LeafPlan, value: Any) -> Any:
    """The serializer's output for ``value`` when the plan knows it without calling it, else ``_MISS``."""
    if type(value) is not leaf[5]:
        return _MISS
    out = leaf[6]
    if out is _ITSELF:
        return value
    number: Any = value
    if out is _FINITE:
        return number if number - number == 0.0 else _MISS
    if out is _INT32:
        return number if -(2**31) <= number < 2**31 else _MISS
    if out is _ISOFORMAT:
        return number.isoformat()
    return out[value]


class _Fallback(Exception):
    pass


def _unwrap(type_: Any) -> tuple[Any, bool, bool, bool]:
    """(named type, non-null, is list, list items non-null) for T, T!, [T], [T!], [T]!, [T!]!."""
    non_null = isinstance(type_, GraphQLNonNull)
    if non_null:
        type_ = type_.of_type
    is_list = isinstance(type_, GraphQLList)
    items_non_null = False
    if is_list:
        type_ = type_.of_type
        items_non_null = isinstance(type_, GraphQLNonNull)
        if items_non_null:
            type_ = type_.of_type
    return type_, non_null, is_list, items_non_null


def _plain_fields(
    schema: GraphQLSchema, attribute_of: Callable[[Any], str | None]
) -> list[tuple[Any, str, Any, bool, bool, bool]]:
    found = []
    for gql_type in schema.type_map.values():
        if not isinstance(gql_type, GraphQLObjectType) or gql_type.name.startswith("__"):
            continue
        for gql_field in gql_type.fields.values():
            if gql_field.args:
                continue
            attribute = attribute_of(gql_field)
            if attribute is not None:
                found.append((gql_field, attribute, *_unwrap(gql_field.type)))
    return found


def _attach(gql_field: Any, key: str, plan: Any) -> None:
    gql_field.extensions = {**(gql_field.extensions or {}), key: plan}


def plan_leaf_fields(schema: GraphQLSchema, attribute_of: Callable[[Any], str | None]) -> int:
    """Attach a leaf plan to every plain-attribute leaf field; ``attribute_of(field)`` names the attribute
    (or ``None`` when the field is not a plain attribute read)."""
    planned = 0
    for gql_field, attribute, type_, non_null, is_list, items_non_null in _plain_fields(schema, attribute_of):
        if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
            fast_type, fast_out = _fast_leaf(type_, is_list)
            leaf: LeafPlan = (
                attribute,
                type_.coerce_output_value,
                non_null,
                is_list,
                items_non_null,
                fast_type,
                fast_out,
            )
            _attach(gql_field, LEAF_PLAN, leaf)
            planned += 1
    return planned


def plan_object_fields(schema: GraphQLSchema, attribute_of: Callable[[Any], str | None]) -> int:
    """Attach an object plan to every plain-attribute field of an object type without ``is_type_of``."""
    planned = 0
    for gql_field, attribute, type_, non_null, is_list, items_non_null in _plain_fields(schema, attribute_of):
        if isinstance(type_, GraphQLObjectType) and type_.is_type_of is None:
            plan: ObjectPlan = (attribute, type_, non_null, is_list, items_non_null)
            _attach(gql_field, OBJECT_PLAN, plan)
            planned += 1
    return planned


def _coerce(coerce: Callable[[Any], Any], value: Any) -> Any:
    coerced = coerce(value)
    if coerced is Undefined or coerced is None:
        raise _Fallback
    return coerced


# (attribute name, non-null, is list, list items non-null, the steps of the sub-selection, their builder)
_Inline = tuple[str, bool, bool, bool, list["_Step"], Callable[[Any], dict[str, Any]]]
# (response name, field details, leaf plan, inline object plan); neither plan: the standard path
_Step = tuple[str, Any, LeafPlan | None, _Inline | None]


def _leaf_value(leaf: LeafPlan, value: Any) -> Any:
    """A leaf's output (what graphql-core's completion gives); raises ``_Fallback`` on anything unusual."""
    fast = _fast_output(leaf, value)
    if fast is not _MISS:
        return fast
    if value is None:
        if leaf[2]:
            raise _Fallback
        return None
    if leaf[3]:
        return _complete_list(leaf, value)
    return _coerce(leaf[1], value)


def _complete_list(plan: LeafPlan, value: Any) -> list[Any]:
    coerce, items_non_null = plan[1], plan[4]
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise _Fallback
    out: list[Any] = []
    for item in value:
        if item is None:
            if items_non_null:
                raise _Fallback
            out.append(None)
        else:
            out.append(_coerce(coerce, item))
    return out


def _null(non_null: bool) -> None:
    if non_null:
        raise _Fallback


def _object_list(build: Callable[[Any], dict[str, Any]], value: Any, items_non_null: bool) -> list[Any]:
    if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
        raise _Fallback
    items: list[Any] = []
    for item in value:
        if item is None:
            _null(items_non_null)
            items.append(None)
        else:
            items.append(build(item))
    return items


# Builders compiled from a selection's plan, shared across requests. The key names each leaf plan by id;
# the cached entry keeps the steps (and so those plans) alive, so an id cannot be reused while cached.
_BUILDERS: OrderedDict[tuple[Any, ...], tuple[list[_Step], Callable[[Any], dict[str, Any]]]] = OrderedDict()
_MAX_BUILDERS = 512


def _plan_key(steps: list[_Step]) -> tuple[Any, ...]:
    key: list[Any] = []
    for response_name, _details, leaf, inline in steps:
        if leaf is not None:
            key.append((response_name, id(leaf)))
        else:
            assert inline is not None
            key.append((response_name, *inline[:4], _plan_key(inline[4])))
    return tuple(key)


def _builder(steps: list[_Step]) -> Callable[[Any], dict[str, Any]]:
    """A function building the result of ``steps`` from a source object, compiled once per plan: one dict
    display with the fast path of each leaf written out, instead of interpreting the plan per object."""
    key = _plan_key(steps)
    hit = _BUILDERS.get(key)
    if hit is not None:
        return hit[1]
    build = _compile(steps)
    _BUILDERS[key] = (steps, build)
    while len(_BUILDERS) > _MAX_BUILDERS:
        _BUILDERS.popitem(last=False)
    return build


def _compile(steps: list[_Step]) -> Callable[[Any], dict[str, Any]]:
    names: dict[str, Any] = {
        "_leaf_value": _leaf_value,
        "_null": _null,
        "_object_list": _object_list,
    }
    entries: list[str] = []
    for i, (response_name, _details, leaf, inline) in enumerate(steps):
        attribute = leaf[0] if leaf is not None else inline[0]  # type: ignore[index]
        read = (
            f"src.{attribute}"
            if attribute.isidentifier() and not keyword.iskeyword(attribute)
            else f"getattr(src, {attribute!r})"
        )
        if leaf is not None:
            names[f"P{i}"], names[f"T{i}"], names[f"N{i}"] = leaf, leaf[5], leaf[6]
            # a null in a nullable field is null; anything else unusual goes the general way
            fallback = (
                f"_leaf_value(P{i}, v)" if leaf[2] else f"(None if v is None else _leaf_value(P{i}, v))"
            )
            kind = leaf[6]
            if kind is _ITSELF:
                value = f"(v if type(v := {read}) is T{i} else {fallback})"
            elif kind is _FINITE:
                value = f"(v if type(v := {read}) is T{i} and v - v == 0.0 else {fallback})"
            elif kind is _INT32:
                value = f"(v if type(v := {read}) is T{i} and -2147483648 <= v <= 2147483647 else {fallback})"
            elif kind is _ISOFORMAT:
                value = f"(v.isoformat() if type(v := {read}) is T{i} else {fallback})"
            elif isinstance(kind, dict):
                value = f"(N{i}[v] if type(v := {read}) is T{i} else {fallback})"
            else:
                value = f"_leaf_value(P{i}, {read})"
        else:
            assert inline is not None
            _, non_null, is_list, items_non_null, _, names[f"B{i}"] = inline
            built = f"_object_list(B{i}, v, {items_non_null})" if is_list else f"B{i}(v)"
            value = f"({built} if (v := {read}) is not None else _null({non_null}))"
        entries.append(f"{response_name!r}: {value}")
    source = "def build(src):\n    return {" + ", ".join(entries) + "}\n"
    exec(compile(source, "<bookbag fast builder>", "exec"), names)  # the source is built above, from the plan
    build: Callable[[Any], dict[str, Any]] = names["build"]
    return build


def _inline_value(inline: _Inline, value: Any) -> Any:
    """An inlined object field's output (what its builder's entry gives); raises to fall back."""
    _, non_null, is_list, items_non_null, _, build = inline
    if value is None:
        _null(non_null)
        return None
    return _object_list(build, value, items_non_null) if is_list else build(value)


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def _steps(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[_Step]:
        # graphql-core memoizes grouped field sets per (type, field group) for the whole execution, so the
        # plan is computed once per selection, not once per object; the set is kept alive with its plan so
        # its id cannot be reused while this execution runs.
        cache: dict[tuple[str, int], tuple[Any, list[_Step]]] = self.__dict__.setdefault("_bookbag_steps", {})
        key = (parent_type.name, id(grouped_field_set))
        hit = cache.get(key)
        if hit is not None:
            return hit[1]
        fields = parent_type.fields
        steps: list[_Step] = []
        for response_name, details in grouped_field_set.items():
            field = fields.get(details[0].node.name.value)
            extensions = field.extensions if field is not None and field.extensions else {}
            steps.append(
                (response_name, details, extensions.get(LEAF_PLAN), self._inline(extensions, details))
            )
        cache[key] = (grouped_field_set, steps)
        return steps

    def _inline(self, extensions: dict[str, Any], details: Any) -> _Inline | None:
        plan: ObjectPlan | None = extensions.get(OBJECT_PLAN)
        if plan is None:
            return None
        attribute, object_type, non_null, is_list, items_non_null = plan
        grouped, new_defer_usages, _ = self.collect_subfields(object_type, details)
        if new_defer_usages:
            return None
        sub_steps = self._steps(object_type, grouped)
        if any(leaf is None and inline is None for _, _, leaf, inline in sub_steps):
            return None
        return attribute, non_null, is_list, items_non_null, sub_steps, _builder(sub_steps)

    def build_response(self, data: dict[str, Any] | None) -> Any:
        response = super().build_response(data)
        if (
            isinstance(response, ExecutionResult)
            and not self.background_futures
            and not self.pending_incremental_futures
        ):
            # graphql-core's context refers to itself (``async_helpers`` holds bound methods of it), so each
            # finished request would leave the context and everything it cached (~180 objects) for the cyclic
            # garbage collector. Nothing uses them once the response is built and no work is pending.
            self.async_helpers = None  # type: ignore[assignment]
            self.__dict__.pop("_bookbag_steps", None)
        return response

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        middleware = self.middleware_manager
        if source_value is None or (middleware is not None and middleware._middleware_resolvers is not None):
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        fast: dict[str, Any] = {}
        slow: dict[str, Any] = {}
        for response_name, details, plan, inline in self._steps(parent_type, grouped_field_set):
            if inline is not None:
                try:
                    fast[response_name] = _inline_value(inline, getattr(source_value, inline[0]))
                except Exception:  # _Fallback, or a coercion error: graphql-core reports it with a path
                    slow[response_name] = details
                continue
            if plan is None:
                slow[response_name] = details
                continue
            value = getattr(source_value, plan[0])
            try:
                fast[response_name] = _leaf_value(plan, value)
            except Exception:  # _Fallback, or a coercion error: graphql-core reports it with a path
                slow[response_name] = details
        if not slow:
            return fast
        rest = super().execute_fields(parent_type, source_value, path, slow, position_context)
        order = list(grouped_field_set)

        def merge(done: dict[str, Any]) -> dict[str, Any]:
            merged = {**fast, **done}
            return {name: merged[name] for name in order if name in merged}

        if self.is_awaitable(rest):

            async def later() -> dict[str, Any]:
                return merge(await rest)

            return later()
        return merge(rest)  # type: ignore[arg-type]
