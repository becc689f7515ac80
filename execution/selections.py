"""How a document is read, once for everything that reads it: which operation a request
runs (`pick_operation`) and which fields a selection holds for an object type
(`collect_fields`), as graphql-core's executor collects them. The limits (cost, depth …),
the compiled planner and the pipeline all use these, so they cannot disagree about what
a query selects."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    is_abstract_type,
)


def pick_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation `name` names, or the only one when no name is given; None when there
    is no such operation (or several and no name)."""
    found = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return found[0] if len(found) == 1 else None
    return next((d for d in found if d.name is not None and d.name.value == name), None)


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def collect_fields(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    parent: GraphQLObjectType,
    selection_sets: Sequence[SelectionSetNode],
    included: Callable[[SelectionNode], bool],
    visit: Callable[[SelectionNode], Any] | None = None,
) -> dict[str, list[FieldNode]]:
    """The fields selected on `parent`, by response key in selection order: fragments whose
    type condition applies are expanded (a named fragment once per collection), selections
    `included` refuses (@skip, @include) left out. `visit` sees every selection met, included
    or not (the limits count directives and steps with it). A loop, not recursion: fragment
    chains can be long."""
    fields: dict[str, list[FieldNode]] = {}
    visited: set[str] = set()
    pending: list[Iterator[SelectionNode]] = [
        iter([s for set_ in selection_sets for s in set_.selections])
    ]
    while pending:
        selection = next(pending[-1], None)
        if selection is None:
            pending.pop()
            continue
        if visit is not None:
            visit(selection)
        if not included(selection):
            continue
        if isinstance(selection, FieldNode):
            key = (selection.alias or selection.name).value
            fields.setdefault(key, []).append(selection)
            continue
        fragment: InlineFragmentNode | FragmentDefinitionNode | None = None
        if isinstance(selection, InlineFragmentNode):
            fragment = selection
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in visited:
            visited.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
        if fragment is not None and applies(schema, fragment.type_condition, parent):
            pending.append(iter(fragment.selection_set.selections))
    return fields


def applies(
    schema: GraphQLSchema, condition: NamedTypeNode | None, parent: GraphQLObjectType
) -> bool:
    """Whether a fragment's type condition holds for objects of type `parent`."""
    if condition is None:
        return True
    wanted = schema.get_type(condition.name.value)
    if wanted is parent:
        return True
    return is_abstract_type(wanted) and schema.is_sub_type(wanted, parent)
