"""The fast leaf-field path answers exactly like graphql-core's standard executor, errors included."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry

from api.build import build_schema
from schema.fast_execution import FastLeafExecutionContext, plan_leaf_fields
from storage.db import Database
from tests.api.conftest import Api, create_ticket
from tests.conftest import MerchantKeys
from workflow.services import WorkflowServices
from workflow.tenancy.merchants import authenticate

PAGE = """query($n: Int!) { tickets(first: $n) { edges { cursor node {
  id channel subject stage priority category categoryConfidence tags needsHuman version createdAt
  alias: subject customer { email vip lifetimeValue } order { id total currency } sla { firstResponseDueAt }
  messages { id body authorType } team { name } __typename } } pageInfo { hasNextPage endCursor } } }"""


# Only plain reads below `edges`: the whole list of edges is built without graphql-core's field machinery.
PLAIN_PAGE = """query($n: Int!, $no: Boolean!) { tickets(first: $n) { edges { cursor node {
  id subject tags version ... on Ticket { priority } sla { resolutionDueAt } c: customer { email }
  order @include(if: $no) { id } } } } }"""


async def _run(schema: strawberry.Schema, context: Any, query: str, variables: dict[str, Any]) -> Any:
    result = await schema.execute(query, variable_values=variables, context_value=context)
    return result.data, [e.formatted for e in result.errors or []]


async def test_fast_and_standard_execution_agree(
    api: Api, database: Database, services: WorkflowServices, merchant: MerchantKeys
) -> None:
    from runtime.context import ApiRuntime, RequestContext

    for i in range(4):
        await create_ticket(
            api,
            merchant.keys["partner"],
            subject=f"Order {i}",
            tags=["a", f"t{i}"],
            customer={"email": f"c{i}@example.com", "vip": i % 2 == 0},
        )
    with database.read_only() as session:
        principal = authenticate(session, merchant.keys["viewer"])
    runtime = ApiRuntime(db=database, services=services)
    fast, standard = build_schema(), build_schema(fast_leaves=False)
    assert fast.execution_context_class is FastLeafExecutionContext
    for query in (PAGE, PLAIN_PAGE):
        variables = {"n": 10, "no": False}
        fast_result = await _run(fast, RequestContext(runtime, "a", principal), query, variables)
        standard_result = await _run(standard, RequestContext(runtime, "b", principal), query, variables)
        assert fast_result == standard_result
        assert fast_result[1] == [] and len(fast_result[0]["tickets"]["edges"]) == 4


@strawberry.type
class Thing:
    name: str
    maybe: str | None
    count: int
    tags: list[str]


@strawberry.type
class Loose:
    count: int | None
    tags: list[str] | None


@strawberry.type
class Q:
    @strawberry.field
    def things(self) -> list[Thing]:
        # A null in a non-null field and a non-int in an Int field must fail exactly as graphql-core fails.
        return [
            Thing(name="ok", maybe=None, count=1, tags=["x"]),
            Thing(name=None, maybe="m", count=2, tags=["y"]),  # type: ignore[arg-type]
            Thing(name="n", maybe="m", count="three", tags=["z", None]),  # type: ignore[arg-type, list-item]
        ]

    @strawberry.field
    def loose(self) -> list[Loose]:
        return [
            Loose(count=1, tags=["a"]),
            Loose(count="three", tags=["b", None]),  # type: ignore[arg-type, list-item]
            Loose(count=2**40, tags=None),
        ]


async def test_fallback_reproduces_standard_errors() -> None:
    from api.build import _plain_attribute

    fast = strawberry.Schema(query=Q, execution_context_class=FastLeafExecutionContext)
    assert plan_leaf_fields(fast._schema, _plain_attribute) == 6
    standard = strawberry.Schema(query=Q)
    query = "{ things { name maybe count tags } }"
    assert await _run(fast, None, query, {}) == await _run(standard, None, query, {})
    data, errors = await _run(fast, None, query, {})
    assert data is None  # non-null list items: the null propagates up, as the spec requires
    assert "Cannot return null for non-nullable field Thing.name." in [e["message"] for e in errors]
    single = "{ things { maybe tags } }"
    assert await _run(fast, None, single, {}) == await _run(standard, None, single, {})
    loose = "{ loose { count tags } }"
    fast_loose, standard_loose = await _run(fast, None, loose, {}), await _run(standard, None, loose, {})
    assert fast_loose == standard_loose
    assert fast_loose[0]["loose"][0] == {"count": 1, "tags": ["a"]}
    assert fast_loose[0]["loose"][1] == {"count": None, "tags": None}  # per-field errors, as standard
    assert len(fast_loose[1]) == 3


@strawberry.type
class Holder:
    thing: Thing
    maybe_thing: Thing | None
    things: list[Thing]


@strawberry.type
class NestedQ:
    @strawberry.field
    def holders(self) -> list[Holder]:
        good = Thing(name="ok", maybe=None, count=1, tags=["x"])
        bad = Thing(name=None, maybe="m", count=2, tags=["y"])  # type: ignore[arg-type]
        odd = Thing(name="n", maybe="m", count="three", tags=["z"])  # type: ignore[arg-type]
        return [
            Holder(thing=good, maybe_thing=None, things=[good, good]),
            Holder(thing=good, maybe_thing=odd, things=[good]),
            Holder(thing=good, maybe_thing=bad, things=[]),
        ]


async def test_inlined_objects_fall_back_to_the_standard_errors() -> None:
    from api.build import _plain_attribute
    from schema.fast_execution import plan_object_fields

    fast = strawberry.Schema(query=NestedQ, execution_context_class=FastLeafExecutionContext)
    plan_leaf_fields(fast._schema, _plain_attribute)
    assert plan_object_fields(fast._schema, _plain_attribute) == 3
    standard = strawberry.Schema(query=NestedQ)
    for query in (
        "{ holders { thing { name count } things { name tags } } }",  # all good: fully inlined
        "{ holders { thing { name } maybeThing { count } } }",  # a non-Int count below a nullable object
        "{ holders { maybeThing { name maybe } } }",  # a null in a non-null field below a nullable object
        "{ holders { thing { __typename name } } }",  # __typename: not inlined, same answer
    ):
        fast_result, standard_result = (
            await _run(fast, None, query, {}),
            await _run(standard, None, query, {}),
        )
        assert fast_result == standard_result, query
    data, errors = await _run(fast, None, "{ holders { maybeThing { name maybe } } }", {})
    assert data == {
        "holders": [{"maybeThing": None}, {"maybeThing": {"name": "n", "maybe": "m"}}, {"maybeThing": None}]
    }
    assert [e["path"] for e in errors] == [["holders", 2, "maybeThing", "name"]]


@strawberry.enum
class Color(Enum):
    RED = "red"
    DARK_BLUE = "dark-blue"


@strawberry.type
class Reading:
    score: float
    maybe_score: float | None
    color: Color
    count: int | None = 1
    at: datetime | None = None


@strawberry.type
class Readings:
    readings: list[Reading]


@strawberry.type
class ReadingsQ:
    @strawberry.field
    def readings(self) -> list[Reading]:
        return [
            Reading(score=1.5, maybe_score=None, color=Color.DARK_BLUE),
            Reading(score=2.0, maybe_score=float("nan"), color=Color.RED),
            Reading(score=float("inf"), maybe_score=3.25, color=Color.RED),
        ]

    @strawberry.field
    def wrapped(self) -> Readings:  # below this resolver, everything is built by the compiled builders
        moment = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
        return Readings(
            readings=[
                Reading(score=1.0, maybe_score=None, color=Color.RED, count=2**40, at=moment),
                Reading(score=2.0, maybe_score=0.5, color=Color.DARK_BLUE, count=-3, at=None),
                Reading(score=float("nan"), maybe_score=1.0, color=Color.RED, count=True),
            ]
        )


async def test_fast_floats_and_enums_match_the_standard_serializers() -> None:
    from api.build import _plain_attribute

    fast = strawberry.Schema(query=ReadingsQ, execution_context_class=FastLeafExecutionContext)
    plan_leaf_fields(fast._schema, _plain_attribute)
    standard = strawberry.Schema(query=ReadingsQ)
    for query in (
        "{ readings { maybeScore color } }",
        "{ readings { score color } }",
        "{ wrapped { readings { maybeScore color count at } } }",
        "{ wrapped { readings { score } } }",
    ):
        fast_result, standard_result = (
            await _run(fast, None, query, {}),
            await _run(standard, None, query, {}),
        )
        assert fast_result == standard_result, query
    data, errors = await _run(fast, None, "{ readings { maybeScore color } }", {})
    assert data["readings"][0] == {"maybeScore": None, "color": "DARK_BLUE"}
    assert data["readings"][1]["maybeScore"] is None and len(errors) == 1  # NaN is not a Float


async def test_ticket_conversion_reads_loaded_and_expired_rows_alike(
    api: Api, database: Database, merchant: MerchantKeys
) -> None:
    from sqlmodel import select

    from schema.tickets import Ticket
    from storage.tables import Ticket as TicketRow

    await create_ticket(api, merchant.keys["partner"], subject="Where is my parcel?")
    with database.read_only() as session:
        row = session.exec(select(TicketRow).where(TicketRow.merchant_id == merchant.merchant_id)).one()
        loaded = Ticket.from_model(row)
        session.expire(row)  # every column unloaded: the conversion must load them, not miss them
        assert "subject" not in row.__dict__
        assert Ticket.from_model(row) == loaded
    assert loaded.subject == "Where is my parcel?"
