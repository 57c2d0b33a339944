"""The static cost of a GraphQL operation, computed from the parsed document before anything executes.

The cost estimates how many objects an operation can make the server produce, so that one request cannot
ask for millions of rows through aliases, nested lists and fragments while passing the depth, alias and
token limits:

- a field returning an object costs 1;
- a field returning a list of objects costs ``size × (1 + the cost of its selection)``, so nested lists
  multiply; ``size`` is the field's ``first`` argument (from the literal, the request's variables, the
  variable's default or the argument's default, else ``default_page_size``), else ``default_list_size``
  for lists without a page size (a ticket's messages, a merchant's teams);
- a connection field with ``first`` (``tickets``) passes its page size to the lists directly under it
  (``edges``);
- scalars and lists of scalars cost nothing (they come with their object); aliases count once each;
  fragments are followed (each fragment's cost is computed once, so a document cannot make this walk
  exponential); a batch of operations costs the sum of its operations.

Page sizes are clamped to ``max_page_size``: a larger ``first`` is refused by its resolver before it reads
anything, with its own ``INVALID_INPUT`` error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

PAGE_ARGUMENT = "first"


@dataclass(frozen=True)
class CostModel:
    default_page_size: int = 20  # a paginated field without `first` (resolvers.tickets)
    default_list_size: int = 10  # a list without a page size argument
    max_page_size: int = 500  # the largest `first` any field accepts (auditLog)


def selected_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation that would run: the named one, or the only one."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        return next((op for op in operations if op.name and op.name.value == operation_name), None)
    return operations[0] if len(operations) == 1 else None


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    model: CostModel | None = None,
) -> int:
    """The cost of the operation that would run (0 when none would). The document may be unvalidated:
    unknown fields and fragments cost nothing, a fragment cycle is not followed."""
    operation = selected_operation(document, operation_name)
    if operation is None:
        return 0
    root = _root_type(schema, operation.operation)
    if root is None:
        return 0
    return _CostWalk(schema, document, operation, variables or {}, model or CostModel()).selection_cost(
        root, operation.selection_set
    )


def _root_type(schema: GraphQLSchema, operation: OperationType) -> GraphQLObjectType | None:
    if operation == OperationType.QUERY:
        return schema.query_type
    if operation == OperationType.MUTATION:
        return schema.mutation_type
    return schema.subscription_type


def _unwrap(type_: GraphQLOutputType) -> tuple[Any, bool]:
    """The named type under NonNull/List wrappers, and whether a list was among them."""
    is_list = False
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(type_, GraphQLList)
        type_ = type_.of_type
    return type_, is_list


class _CostWalk:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
        model: CostModel,
    ) -> None:
        self.schema = schema
        self.model = model
        self.variables = variables
        self.variable_defaults = {
            d.variable.name.value: d.default_value for d in operation.variable_definitions or ()
        }
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        # A fragment's cost does not depend on where it is spread (its type condition is fixed); computed
        # once each, with None marking one being computed (a cycle, which validation refuses anyway).
        self.fragment_costs: dict[str, int | None] = {}

    def selection_cost(
        self, parent: Any, selection_set: SelectionSetNode | None, page: int | None = None
    ) -> int:
        """``page``: the page size a connection field passes down to the lists directly under it."""
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field_cost(parent, selection, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_cost(target, selection.selection_set, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment_cost(selection.name.value)
        return total

    def fragment_cost(self, name: str) -> int:
        if name in self.fragment_costs:
            return self.fragment_costs[name] or 0
        fragment = self.fragments.get(name)
        if fragment is None:
            return 0
        self.fragment_costs[name] = None
        target = self.schema.get_type(fragment.type_condition.name.value)
        cost = self.selection_cost(target, fragment.selection_set)
        self.fragment_costs[name] = cost
        return cost

    def field_cost(self, parent: Any, node: FieldNode, page: int | None) -> int:
        field = self._field(parent, node.name.value)
        if field is None:
            return 0
        named, is_list = _unwrap(field.type)
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            return 0  # scalars and enums, alone or in lists
        own_page = self.page_size(field, node)
        if is_list:
            size = (
                own_page
                if own_page is not None
                else page
                if page is not None
                else self.model.default_list_size
            )
            return size * (1 + self.selection_cost(named, node.selection_set))
        # An object with a page size (a connection) hands it to the lists under it.
        return 1 + self.selection_cost(named, node.selection_set, own_page)

    def _field(self, parent: Any, name: str) -> GraphQLField | None:
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return None  # union members are reached through inline fragments
        field: GraphQLField | None = parent.fields.get(name)
        return field

    def page_size(self, field: GraphQLField, node: FieldNode) -> int | None:
        if PAGE_ARGUMENT not in field.args:
            return None
        value: Any = None
        for argument in node.arguments or ():
            if argument.name.value != PAGE_ARGUMENT:
                continue
            if isinstance(argument.value, VariableNode):
                name = argument.value.name.value
                value = self.variables.get(name)
                default = self.variable_defaults.get(name)
                if value is None and isinstance(default, IntValueNode):
                    value = int(default.value)
            elif isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
        if value is None:
            value = field.args[PAGE_ARGUMENT].default_value
        if not isinstance(value, int) or isinstance(value, bool):
            return self.model.default_page_size
        return max(0, min(value, self.model.max_page_size))
