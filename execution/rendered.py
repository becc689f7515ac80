"""Which objects of a plan PostgreSQL can write as JSON, and the renderings that say how.

An object qualifies when each of its selected fields is one PostgreSQL writes exactly as
the compiled executor would (loaders/rendered.py): `__typename`; a column of its row whose
GraphQL type is a String, Int, Boolean, enum or DateTime (and which is not null where the
field may not be); its global id; or the row a column points to, through a by-id loader,
when that object qualifies too. Anything that asks Python (a viewer's permission, the
email rule, rendered Markdown, a list) keeps the object in Python, where it always was.

A plan renders only the outermost qualifying objects: an author written inside its comment
needs no text of its own. Where a statement did not write an object's text (a list whose
loader makes its own rows, a by-id loader a viewer's scope filters), the executor builds
it as before, from the row: a rendering is a faster path, never the only one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import GraphQLEnumType, get_named_type

from execution._shapes import Shape
from execution.fields import Attr, Each, Row
from execution.ids import NODES
from loaders.rendered import Entry, Rendering
from loaders.rows import COLUMNS

if TYPE_CHECKING:
    from execution.compiled import FieldPlan

AS_COLUMNS = frozenset({"String", "Int", "Boolean"})  # written by to_json as orjson does


def rendering(shape: Shape) -> Rendering | None:
    """How PostgreSQL writes `shape`'s objects, if it can (the shapes of its object fields
    already carry theirs)."""
    kind = NODES.get(shape.type_name)
    if kind is None or kind.row not in COLUMNS:
        return None
    table = COLUMNS[kind.row]
    entries = []
    for plan in shape.fields:
        entry = _entry(plan, shape.type_name, table)
        if entry is None:
            return None
        entries.append(entry)
    return Rendering(kind.row, tuple(entries))


def _entry(plan: FieldPlan, type_name: str, table: Any) -> Entry | None:
    need = plan.need
    if need is None:
        return Entry(plan.key, "constant", value=type_name)
    if plan.is_list:
        return None
    if type(need) is Each:
        return Entry(plan.key, need.rendered, value=type_name) if need.rendered else None
    column = need.name if type(need) is Attr else need.key if type(need) is Row else None
    if column is None or column not in table.names:
        return None
    if not plan.nullable and column in table.nullable:  # a null to report: Python's job
        return None
    if type(need) is Row:
        if plan.children is None or len(plan.children) != 1:
            return None
        (child,) = plan.children.values()
        if child.render is None:
            return None
        return Entry(plan.key, "row", column, target=child.render, loader=need.loader)
    if plan.children is not None:
        return None
    named = get_named_type(plan.definition.type)
    if isinstance(named, GraphQLEnumType) or named.name in AS_COLUMNS:
        return Entry(plan.key, "column", column)
    if named.name == "DateTime":
        return Entry(plan.key, "timestamp", column)
    return None


def outermost(root: Shape) -> tuple[Rendering, ...]:
    """The renderings of the shapes no rendered shape holds, in the order met; the others
    lose theirs (nothing will look for their texts)."""
    found: dict[Rendering, None] = {}

    def visit(shape: Shape, inside: bool) -> None:
        if shape.render is not None:
            if inside:
                shape.render = None
            else:
                found[shape.render] = None
                inside = True
        for plan in shape.fields:
            for child in (plan.children or {}).values():
                visit(child, inside)

    visit(root, False)
    return tuple(found)
