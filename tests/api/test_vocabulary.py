"""One vocabulary: the GraphQL enums are the domain's own enums, and no field that names a stage, priority,
actor, action, effect, channel, role or severity is a free string (issue #13 item 3)."""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLObjectType, build_schema, get_named_type

import policy
from schema import enums
from workflow import errors, stages
from workflow.tenancy import principal

SDL = (Path(__file__).resolve().parents[2] / "schema" / "schema.graphql").read_text()

# GraphQL field name -> the enum its values must come from.
ENUM_FIELDS = {
    "stage": "Stage",
    "fromStage": "Stage",
    "toStage": "Stage",
    "to": "Stage",
    "priority": "Priority",
    "actor": "Actor",
    "effect": "Effect",
    "channel": "Channel",
    "role": "Role",
    "severity": "Severity",
    "authorType": "MessageAuthor",
}


def test_graphql_enums_are_the_domain_enums() -> None:
    assert enums.Stage is stages.Stage
    assert enums.Channel is stages.Channel
    assert enums.MessageAuthor is stages.MessageAuthor
    assert enums.Priority is policy.Priority
    assert enums.Actor is policy.Actor
    assert enums.ActionType is policy.Action
    assert enums.Effect is policy.Effect
    assert enums.Severity is policy.Severity
    assert enums.Role is principal.Role
    assert enums.ErrorCode is errors.ErrorCode
    # The tuples validation and the workflow use are the enums' values, in order.
    assert tuple(s.value for s in stages.Stage) == stages.STAGES
    assert tuple(a.value for a in policy.Action) == policy.ACTIONS
    assert tuple(a.value for a in policy.Actor) == policy.ACTORS
    assert tuple(p.value for p in policy.Priority) == policy.PRIORITIES
    assert tuple(e.value for e in policy.Effect) == policy.EFFECTS


def test_the_committed_schema_has_each_enum_once_with_the_domain_values() -> None:
    schema = build_schema(SDL)
    for name, domain in {
        "Stage": stages.Stage,
        "Priority": policy.Priority,
        "Actor": policy.Actor,
        "ActionType": policy.Action,
        "Effect": policy.Effect,
        "Severity": policy.Severity,
        "Role": principal.Role,
        "Channel": stages.Channel,
        "MessageAuthor": stages.MessageAuthor,
        "ErrorCode": errors.ErrorCode,
    }.items():
        graphql_enum = schema.type_map[name]
        assert isinstance(graphql_enum, GraphQLEnumType), name
        assert list(graphql_enum.values) == [member.name for member in domain], name


def test_no_field_naming_a_vocabulary_term_is_a_free_string() -> None:
    schema = build_schema(SDL)
    offenders = []
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(
            graphql_type, GraphQLObjectType | GraphQLInputObjectType
        ):
            continue
        for field_name, field in graphql_type.fields.items():
            wanted = ENUM_FIELDS.get(field_name)
            if wanted is None:
                continue
            if field_name == "to" and type_name != "StageEdges":
                continue  # `to` is a stage only on the ruleset's graph edges
            named = get_named_type(field.type)
            if named.name != wanted:
                offenders.append(f"{type_name}.{field_name}: {named.name}")
    assert offenders == []
