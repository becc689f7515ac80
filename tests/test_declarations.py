"""Every field is declared once, with the data it needs: the schema walk finds no field the
compiled executor could not plan, and the declarations agree with the rows they read."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLObjectType, GraphQLSchema

from execution.connection import Pages
from execution.fields import Attr, Each, Row, need_of, value
from execution.ids import NODES
from loaders.rows import COLUMNS
from resolvers.schema import schema

# Run by graphql-core alone: their fields are mutations and subscription streams.
ROOTS_OF_WRITES = ("Mutation", "Subscription")


def object_types(graphql_schema: GraphQLSchema) -> list[GraphQLObjectType]:
    return [
        t
        for name, t in graphql_schema.type_map.items()
        if isinstance(t, GraphQLObjectType)
        and not name.startswith("__")
        and name not in ROOTS_OF_WRITES
    ]


def undeclared(graphql_schema: GraphQLSchema) -> list[str]:
    """Fields of object types that have no need the compiled executor can plan."""
    return [
        f"{t.name}.{name}"
        for t in object_types(graphql_schema)
        for name, field in t.fields.items()
        if need_of(field) is None
    ]


def test_every_field_of_the_schema_has_a_compiled_need() -> None:
    assert undeclared(schema._schema) == []


def test_a_field_with_a_resolver_of_its_own_is_reported() -> None:
    @strawberry.type
    class Query:
        declared: int = value(lambda context, root: 1, "Declared once.")

        @strawberry.field
        def hand_written(self) -> int:
            return 2

    assert undeclared(strawberry.Schema(query=Query)._schema) == ["Query.handWritten"]


def test_the_walk_covers_every_node_type_and_connection() -> None:
    names = {t.name for t in object_types(schema._schema)}
    assert set(NODES) <= names
    assert {"IssueConnection", "IssueEdge", "PageInfo", "OrganizationMemberEdge"} <= names


def _needs_of(type_name: str) -> dict[str, Any]:
    graphql_type = schema._schema.type_map[type_name]
    assert isinstance(graphql_type, GraphQLObjectType)
    return {name: need_of(field) for name, field in graphql_type.fields.items()}


def test_node_fields_read_columns_their_rows_have() -> None:
    for name, kind in NODES.items():
        columns = COLUMNS[kind.row]
        for field, need in _needs_of(name).items():
            if isinstance(need, Attr):
                assert need.name in columns.names, f"{name}.{field} reads no column"
            elif isinstance(need, Row):
                assert need.key in columns.names, f"{name}.{field} follows no column"
            elif isinstance(need, Each):
                assert set(need.reads) <= set(columns.optional), f"{name}.{field}"


def test_connections_are_declared_with_their_loaders() -> None:
    issues = _needs_of("Project")["issues"]
    assert isinstance(issues, Pages)
    assert issues.filters is not None and issues.filters.name == "filter_by"
    graphql_type = schema._schema.type_map["Project"]
    assert isinstance(graphql_type, GraphQLObjectType)
    arguments = graphql_type.fields["issues"].args
    assert list(arguments) == ["first", "after", "last", "before", "filterBy", "orderBy"]
