"""schema.graphql is the exported SDL: it must equal the code's schema."""

from __future__ import annotations

from pathlib import Path

from resolvers.schema import schema

SDL = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    assert SDL.read_text() == schema.as_str() + "\n", "schema.graphql drifted: run `make schema`"


def test_every_type_and_field_is_described() -> None:
    from graphql import GraphQLInputObjectType, GraphQLObjectType

    missing = []
    for name, graphql_type in schema._schema.type_map.items():
        if name.startswith("__") or not isinstance(
            graphql_type, GraphQLObjectType | GraphQLInputObjectType
        ):
            continue
        if not graphql_type.description:
            missing.append(name)
        missing += [f"{name}.{f}" for f, d in graphql_type.fields.items() if not d.description]
    assert missing == []


def test_breaking_changes_are_recorded_in_the_changelog() -> None:
    from graphql import build_schema, find_breaking_changes

    changelog = (SDL.parent / "CHANGELOG.md").read_text()
    breaking = find_breaking_changes(build_schema(SDL.read_text()), schema._schema)
    unrecorded = [change.description for change in breaking if change.description not in changelog]
    assert unrecorded == [], "record these breaking changes in CHANGELOG.md"
