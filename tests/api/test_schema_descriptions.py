"""Every type and every field of the API says what it holds (issue 13, item 6): the descriptions are in the
committed SDL and in introspection, which is what GraphiQL and client generators show."""

from __future__ import annotations

import strawberry
from graphql import (
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
)

from api.build import build_schema

BUILT_IN = {"String", "Int", "Float", "Boolean", "ID"}


@strawberry.type(description="Described.")
class Probe:
    described: int = strawberry.field(description="Has one.")
    bare: int


@strawberry.type
class ProbeQuery:
    probe: Probe = strawberry.field(description="The probe.")


def undescribed(schema: GraphQLSchema) -> list[str]:
    """Our types and fields without a description, as ``Type`` and ``Type.field``."""
    missing: list[str] = []
    for name, named in schema.type_map.items():
        if name.startswith("__") or name in BUILT_IN:
            continue
        if not (named.description or "").strip():
            missing.append(name)
        if isinstance(named, GraphQLObjectType | GraphQLInputObjectType | GraphQLInterfaceType):
            missing += [
                f"{name}.{f}" for f, field in named.fields.items() if not (field.description or "").strip()
            ]
    return missing


def test_every_type_and_field_has_a_description() -> None:
    missing = undescribed(build_schema()._schema)
    assert missing == [], (
        f"{len(missing)} without a description (strawberry.field(description=...)): {missing}"
    )


def test_a_field_without_a_description_is_found() -> None:
    """The check above can fail: a schema with one undescribed field and one undescribed type is caught."""
    schema = strawberry.Schema(query=ProbeQuery)._schema
    assert undescribed(schema) == ["ProbeQuery", "Probe.bare"]


def test_descriptions_are_in_the_committed_sdl() -> None:
    from bookbag.cli.schema_cmd import default_path

    sdl = default_path().read_text(encoding="utf-8")
    assert '"""The write operations.' in sdl or '"""\nThe write operations.' in sdl
