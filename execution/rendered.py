"""Which objects of a plan PostgreSQL can write as JSON, and the renderings that say how.

An object qualifies when each of its selected fields is one PostgreSQL writes exactly as
the compiled executor would (loaders/rendered.py): `__typename`; a column of its row whose
GraphQL type is a String, Int, Boolean, enum or DateTime (and which is not null where the
field may not be); its global id; the row a column points to, through a by-id loader,
when that object qualifies too; or a connection of a list whose nodes qualify, with
edges, cursors, pageInfo and totalCount. Anything that asks Python (a viewer's permission,
the email rule, rendered Markdown, a list of another kind) keeps the object in Python,
where it always was.

So a whole subtree can be one object's text: an organization with its projects, their
issues and comments and authors, written by the one statement that reads the
organizations. Every qualifying object of a plan keeps its rendering: where a statement
did not write an object's text (its parent's list was read by a by-id loader, a list's
page request was refused, a by-id loader a viewer's scope filters), the executor builds
it from the row as before, and its children's statements write theirs: a rendering is a
faster path, never the only one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import GraphQLEnumType, get_named_type

from execution._shapes import Shape
from execution.connection import Pages
from execution.fields import Attr, Each, Row
from execution.ids import NODES
from execution.pagination import CURSOR_VERSION
from loaders.rendered import Entry, Rendering
from loaders.rows import COLUMNS

if TYPE_CHECKING:
    from execution.compiled import FieldPlan

AS_COLUMNS = frozenset({"String", "Int", "Boolean"})  # written by to_json as orjson does


def rendering(shape: Shape, lists: dict[Entry, FieldPlan]) -> Rendering | None:
    """How PostgreSQL writes `shape`'s objects, if it can (the shapes of its object fields
    already carry theirs). The connection entries it makes go into `lists`, with the field
    whose arguments make each one's page request."""
    kind = NODES.get(shape.type_name)
    if kind is None or kind.row not in COLUMNS:
        return None
    table = COLUMNS[kind.row]
    entries = []
    for plan in shape.fields:
        entry = _entry(plan, shape.type_name, table, lists)
        if entry is None:
            return None
        entries.append(entry)
    return Rendering(kind.row, tuple(entries))


def _entry(
    plan: FieldPlan, type_name: str, table: Any, lists: dict[Entry, FieldPlan]
) -> Entry | None:
    need = plan.need
    if need is None:
        return Entry(plan.key, "constant", value=type_name)
    if type(need) is Pages:
        return _connection(plan, need, lists)
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


def _single(plan: FieldPlan) -> Shape | None:
    """The one shape of an object field's children (None: several types, or a leaf)."""
    if plan.children is None or len(plan.children) != 1:
        return None
    (child,) = plan.children.values()
    return child


# The fields of a pageInfo PostgreSQL writes, each an entry of its attribute's name
_PAGE_INFO = ("has_next_page", "has_previous_page", "start_cursor", "end_cursor")


def _connection(plan: FieldPlan, need: Pages, lists: dict[Entry, FieldPlan]) -> Entry | None:
    """A connection of a page of a list, if its members can be written: the list's rows
    are its page loader's own (no `unwrap`), and every viewer sees the list of the row
    itself (no `parent`)."""
    connection = _single(plan)
    if connection is None or need.unwrap is not None or need.parent is not None:
        return None
    members = []
    for field in connection.fields:
        member = _member(field, connection.type_name)
        if member is None:
            return None
        members.append(member)
    entry = Entry(plan.key, "connection", loader=need.pages, members=tuple(members))
    lists[entry] = plan
    return entry


def _member(plan: FieldPlan, type_name: str) -> Entry | None:
    """A member of a connection object, or of its edges or pageInfo."""
    need = plan.need
    if need is None:
        return Entry(plan.key, "constant", value=type_name)
    kind = need.rendered if type(need) is Each else None
    child = _single(plan)
    if kind == "total_count":
        return Entry(plan.key, kind)
    if kind == "nodes":
        if child is None or child.render is None:
            return None
        return Entry(plan.key, kind, target=child.render)
    if kind in ("edges", "page_info") and child is not None:
        inner = [_part(field, child.type_name, kind) for field in child.fields]
        if None in inner:
            return None
        return Entry(plan.key, kind, members=tuple(m for m in inner if m is not None))
    return None


def _part(plan: FieldPlan, type_name: str, within: str) -> Entry | None:
    """A field of an edge or a pageInfo."""
    need = plan.need
    if need is None:
        return Entry(plan.key, "constant", value=type_name)
    if type(need) is not Attr:
        return None
    version = str(CURSOR_VERSION)
    if within == "page_info":
        if need.name not in _PAGE_INFO:
            return None
        return Entry(plan.key, need.name, value=version if "cursor" in need.name else None)
    if need.name == "cursor":
        return Entry(plan.key, "cursor", value=version)
    child = _single(plan)
    if need.name == "node" and child is not None and child.render is not None:
        return Entry(plan.key, "node", target=child.render)
    return None


def renderings(root: Shape) -> tuple[Rendering, ...]:
    """The renderings of a plan's shapes, in the order met (each is bound to the request
    and written by the statements that read its rows)."""
    found: dict[Rendering, None] = {}

    def visit(shape: Shape) -> None:
        if shape.render is not None:
            found[shape.render] = None
        for plan in shape.fields:
            for child in (plan.children or {}).values():
                visit(child)

    visit(root)
    return tuple(found)
