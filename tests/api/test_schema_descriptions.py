"""Every type, field and argument of the API says what it holds (issue 13, item 6): the descriptions are in
the committed SDL and in introspection, which is what GraphiQL and client generators show."""

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

    @strawberry.field(description="Has one; its argument has none.")  # type: ignore[untyped-decorator]
    def echo(self, value: int) -> int:
        return value


@strawberry.type
class ProbeQuery:
    probe: Probe = strawberry.field(description="The probe.")


def undescribed(schema: GraphQLSchema) -> list[str]:
    """Our types, fields and arguments without a description: ``Type``, ``Type.field``, ``Type.field(arg)``."""
    missing: list[str] = []
    for name, named in schema.type_map.items():
        if name.startswith("__") or name in BUILT_IN:
            continue
        if not (named.description or "").strip():
            missing.append(name)
        if not isinstance(named, GraphQLObjectType | GraphQLInputObjectType | GraphQLInterfaceType):
            continue
        for field_name, field in named.fields.items():
            if not (field.description or "").strip():
                missing.append(f"{name}.{field_name}")
            for arg_name, arg in getattr(field, "args", {}).items():
                if not (arg.description or "").strip():
                    missing.append(f"{name}.{field_name}({arg_name})")
    return missing


def test_every_type_field_and_argument_has_a_description() -> None:
    missing = undescribed(build_schema()._schema)
    assert missing == [], (
        f"{len(missing)} without a description (strawberry.field(description=...), "
        f"Annotated[T, strawberry.argument(description=...)]): {missing}"
    )


def test_an_undescribed_type_field_or_argument_is_found() -> None:
    """The check above can fail: an undescribed type, field and argument are each caught."""
    schema = strawberry.Schema(query=ProbeQuery)._schema
    assert undescribed(schema) == ["ProbeQuery", "Probe.bare", "Probe.echo(value)"]


def test_descriptions_are_in_the_committed_sdl() -> None:
    from bookbag.cli.schema_cmd import default_path

    sdl = default_path().read_text(encoding="utf-8")
    assert "The write operations. Each runs in one transaction" in sdl
    assert "A repeat with the same key answers the stored result" in sdl  # an argument's
