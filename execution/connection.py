"""Relay cursor connections over keyset pages, declared once by `connection(…)`.

`connection(pages, counts, description, order=…, filters=…)` is the one place a list field's
arguments are made (`first`/`after`/`last`/`before` for every connection, plus `orderBy`
and `filterBy` where the list takes them), with the page limits of execution/pagination.py,
the loaders that read it, and its cost (limits.py prices any field whose need is `Pages`).
As with execution/fields.py, the field carries its need for the compiled executor and a
resolver derived from it for graphql-core.

`Connection[T]` becomes `TConnection` in the schema, its edges `TEdge`. Both executors give
its fields a `PageSource`: one loaded page and a way to count; `totalCount` runs its
(batched) count only when asked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Generic, NamedTuple, TypeVar, cast

import strawberry
from strawberry.types import Info

from domain.context import Context
from execution.fields import declared, value
from execution.pagination import PAGE_ARGUMENTS_DOC, encode_cursors, page_request
from loaders import BY_ID, Loaders, Order, Page, PageRequest, using
from loaders._base import CountLoader, PageLoader

T = TypeVar("T")
Arguments = dict[str, Any]

PAGE_PARAMETERS = [
    inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[kind | None, strawberry.argument(description=text)],
    )
    for name, kind, text in (
        ("first", int, "Page size, from the start."),
        ("after", str, "Items after this cursor."),
        ("last", int, "Page size, from the end."),
        ("before", str, "Items before this cursor."),
    )
]


@dataclass(frozen=True, slots=True)
class Argument:
    """An argument a list takes besides the page arguments (`orderBy`, `filterBy`, a
    search's `query`): its Python name, input type and description, and `convert`, which
    makes the loaders' order or filter of its value (None when it is not given) for the
    request's context. A `required` argument may not be null."""

    name: str
    type: Any
    description: str
    convert: Callable[[Any, Context], Any]
    required: bool = False

    def parameter(self) -> inspect.Parameter:
        kind = self.type if self.required else self.type | None
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if self.required else None,
            annotation=Annotated[kind, strawberry.argument(description=self.description)],
        )


@dataclass(frozen=True, slots=True)
class Ordered:
    """What a filter argument converts to when it also sets the order (a search query's
    `sort:`): the loaders' filter and order."""

    filters: Hashable
    order: Order


@dataclass(frozen=True, slots=True)
class Pages:
    """A page of a list per parent: `pages` and `counts` are the `Loaders` properties that
    read and count it; `order` and `filters` the fixed order or the argument that sets it;
    `unwrap` the node a page row holds (a member row holds its user); `parent` the key of
    the list the loaders read for a parent row (by default its id; 0 is an empty list)."""

    pages: Callable[[Loaders], PageLoader[Any]]
    counts: Callable[[Loaders], CountLoader]
    order: Order | Argument = BY_ID
    filters: Argument | None = None
    unwrap: Callable[[Any], Any] | None = None
    parent: Callable[[Context, Any], int] | None = None

    def request(self, arguments: Arguments, context: Context) -> PageRequest:
        order = self.order
        if isinstance(order, Argument):
            order = order.convert(arguments.get(order.name), context)
        filters = self.filters
        converted = filters.convert(arguments.get(filters.name), context) if filters else None
        if isinstance(converted, Ordered):
            order, converted = converted.order, converted.filters
        return page_request(
            order,
            arguments.get("first"),
            arguments.get("after"),
            arguments.get("last"),
            arguments.get("before"),
            converted,
        )

    def loaders(self, loaders: Loaders) -> tuple[PageLoader[Any], CountLoader]:
        return using(self.pages, loaders), using(self.counts, loaders)

    def key(self, context: Context, row: Any) -> int:
        return row.id if self.parent is None else self.parent(context, row)


class PageSource(NamedTuple):
    """A connection's page, as its fields read it in both executors: made for every parent
    of a level, a tuple built in C (whose equality is a tuple's: the compiled executor's
    whole-column checks, `None in column`, cost no call per object)."""

    page: Page[Any]
    unwrap: Callable[[Any], Any] | None
    counts: CountLoader
    key: tuple[int, Hashable]

    @property
    def order(self) -> Order:
        return self.page.order

    def nodes(self) -> Sequence[Any]:
        rows = self.page.rows
        return rows if self.unwrap is None else list(map(self.unwrap, rows))

    def total(self) -> Any:
        """The whole list's count, through the (batched) count loader."""
        return self.counts.load(self.key)


_page_source = cast(
    Callable[[tuple[Page[Any], Any, CountLoader, tuple[int, Hashable]]], PageSource],
    partial(tuple.__new__, PageSource),
)


def connection(
    pages: Callable[[Loaders], PageLoader[Any]],
    counts: Callable[[Loaders], CountLoader],
    description: str,
    *,
    order: Order | Argument = BY_ID,
    filters: Argument | None = None,
    unwrap: Callable[[Any], Any] | None = None,
    parent: Callable[[Context, Any], int] | None = None,
) -> Any:
    """A connection field: its arguments, limits, loaders, order and filters, declared once.
    `parent(context, row)` chooses whose list a row shows (see `Pages`): a list only some
    viewers may see gives the others 0, an empty list, as if it had no items."""
    need = Pages(pages, counts, order, filters, unwrap, parent)
    parameters = list(PAGE_PARAMETERS)
    parameters += [a.parameter() for a in (filters, order) if isinstance(a, Argument)]

    async def resolve(root: Any, info: Info[Context, Any], **arguments: Any) -> PageSource:
        request = need.request(arguments, info.context)
        page_loader, count_loader = need.loaders(info.context.loaders)
        key = need.key(info.context, root)
        page = await page_loader.load((key, request))
        return PageSource(page, unwrap, count_loader, (key, request.filters))

    return declared(need, resolve, f"{description} {PAGE_ARGUMENTS_DOC}", parameters)


async def resolve_pages(
    need: Pages, context: Context, parents: Sequence[Any], arguments: Arguments
) -> list[PageSource]:
    """The pages of a whole level of parents, in one statement (the compiled executor)."""
    request = need.request(arguments, context)
    page_loader, count_loader = need.loaders(context.loaders)
    ids = (
        [p.id for p in parents] if need.parent is None else [need.key(context, p) for p in parents]
    )
    loaded = await page_loader.load_all(ids, request)
    unwrap, filters = need.unwrap, request.filters
    return [
        _page_source((page, unwrap, count_loader, (i, filters)))
        for i, page in zip(ids, loaded, strict=True)
    ]


@strawberry.type(description="Where a page sits in its connection.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(description="Items precede this page.")
    start_cursor: str | None = strawberry.field(description="The cursor of the first item.")
    end_cursor: str | None = strawberry.field(description="The cursor of the last item.")


class PageInfoSource(NamedTuple):
    """A page's `PageInfo`, as both executors read its fields."""

    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


class EdgeSource(NamedTuple):
    """An edge: its cursor, its node, and the page row it came from (a member's role)."""

    cursor: str
    node: Any
    row: Any


# Made from a tuple of the fields, in C (no __new__ frame per edge).
_edge = cast(Callable[[tuple[str, Any, Any]], EdgeSource], partial(tuple.__new__, EdgeSource))


def page_info(context: Context, source: PageSource) -> PageInfoSource:
    return page_infos(context, [source])[0]


def page_infos(context: Context, sources: Sequence[PageSource]) -> list[PageInfoSource]:
    """The pageInfo of each page of a level: the cursors of their first and last rows,
    encoded together."""
    ends = [row for s in sources for row in _ends(s.page.rows)]
    cursors = iter(_cursors(sources, ends, lambda s: len(_ends(s.page.rows))))
    found = []
    for source in sources:
        page = source.page
        first: str | None = None
        last: str | None = None
        if page.rows:
            first = next(cursors)
            last = first if len(page.rows) == 1 else next(cursors)
        found.append(PageInfoSource(page.has_next_page, page.has_previous_page, first, last))
    return found


def edges(context: Context, source: PageSource) -> list[EdgeSource]:
    return all_edges(context, [source])[0]


def all_edges(context: Context, sources: Sequence[PageSource]) -> list[list[EdgeSource]]:
    """The edges of each page of a level: every cursor encoded at once, and each edge made
    in C from its cursor, node and row."""
    rows = [row for s in sources for row in s.page.rows]
    cursors = _cursors(sources, rows, lambda s: len(s.page.rows))
    unwrap = sources[0].unwrap if sources else None
    nodes: Iterable[Any] = rows if unwrap is None else map(unwrap, rows)
    made = list(map(_edge, zip(cursors, nodes, rows, strict=True)))
    found, start = [], 0
    for source in sources:
        end = start + len(source.page.rows)
        found.append(made[start:end])
        start = end
    return found


def _ends(rows: Sequence[Any]) -> Sequence[Any]:
    return rows if len(rows) < 2 else (rows[0], rows[-1])


def _cursors(
    sources: Sequence[PageSource], rows: list[Any], count: Callable[[PageSource], int]
) -> list[str]:
    """The cursors of `rows`, which hold `count(source)` rows of each source in turn:
    in one call where the pages share their order (the pages of one field do)."""
    orders = {s.order for s in sources}
    if len(orders) == 1:
        return encode_cursors(orders.pop(), rows)
    found: list[str] = []
    start = 0
    for source in sources:
        end = start + count(source)
        found += encode_cursors(source.order, rows[start:end])
        start = end
    return found


@strawberry.type(description="An item of a connection, with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="An opaque cursor for `after` or `before`.")
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list, with cursors to fetch the pages around it.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = value(
        edges, "The items of this page, with their cursors.", batch=all_edges, rendered="edges"
    )
    nodes: list[T] = value(
        lambda context, source: source.nodes(), "The items of this page.", rendered="nodes"
    )
    page_info: PageInfo = value(
        page_info, "Where this page sits.", batch=page_infos, rendered="page_info"
    )
    total_count: int = value(
        lambda context, source: source.total(),
        "How many items the whole list holds (for this viewer).",
        rendered="total_count",
    )
