"""Keyset pagination of many parents' children in one statement.

A page request is hashable so that it can be part of a DataLoader key: the loader groups
the keys of one batch by request and runs one LATERAL query per distinct request (in
practice one per level, since siblings ask for the same page). Each parent's page reads an
index on (parent, sort value, id) from the cursor onwards and stops after `limit + 1` rows;
the extra row says whether there is a next page. Never OFFSET.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from core.db import Record, Session
from loaders.rows import Columns, Projection

R = TypeVar("R")
SortKey = tuple[Any, int]

PAGE_TEMPLATE = """
SELECT page.* FROM unnest($1::bigint[]) AS parent(id)
CROSS JOIN LATERAL (
    SELECT {parent_column} AS parent_id, {columns}
    FROM {source}
    WHERE {parent_column} = parent.id{conditions}
    ORDER BY {order}
    LIMIT $2
) AS page
"""

# An order in two tiers (`Order.tier`), for one parent. A tier's page is first looked for
# by a walk of the sort column's index from the cursor that reads at most `PageSpec.walk`
# rows (`walk_N`, over CAPPED_TEMPLATE: it finds the page unless the tier's rows are rare
# there). Where the first tier's walk finds less than a page, the second tier's walk is
# run too; where that one finds a page, the first tier's rows come from its conditions'
# own indexes (a search's GIN index), else both tiers' rows do, in one pass (FOUND_TEMPLATE;
# `OFFSET 0` keeps the sort column's index from being walked without a bound). Each
# part is gated on the walks' counts, so PostgreSQL runs only the parts it needs.
TIERED_TEMPLATE = """
WITH {walks}
SELECT * FROM (
    {tiers}
) AS tiers
ORDER BY {order}
LIMIT $2
"""
WALK_TEMPLATE = """{name} AS (
    SELECT {parent_column} AS parent_id, {columns}
    FROM {source}
    WHERE {parent_column} = ANY($1::bigint[]){conditions}
    ORDER BY {order}
    LIMIT $2
)"""
CAPPED_TEMPLATE = "(SELECT * FROM {table} {alias}{seek} ORDER BY {order} LIMIT {walk}) AS {alias}"
FOUND_TEMPLATE = """(
        SELECT * FROM (
            SELECT {parent_column} AS parent_id, {columns}
            FROM {source}
            WHERE {parent_column} = ANY($1::bigint[]){conditions}
            OFFSET 0
        ) AS found
        WHERE {gate}
        ORDER BY {order}
        LIMIT $2
    )"""

COUNT_TEMPLATE = """
SELECT {parent_column} AS parent_id, count(*) AS total
FROM {source}
WHERE {parent_column} = ANY($1::bigint[]){conditions}
GROUP BY 1
"""


@dataclass(frozen=True, slots=True)
class Order:
    """A sort order: a SQL column and the row attribute holding it (None: the id alone).

    With a `tier`, the rows where a condition holds come before the others (after them in
    an ascending order), each tier in the column's order: `tier` names the condition, a
    piece of SQL the conditions write (`Params.named`) and the column of the select list
    that holds its value. The row attribute then holds (in the first tier, column value).
    A tier's page is a bounded walk of the column's index from the cursor where that
    finds one, so that a page seldom sorts every row of a tier (TIERED_TEMPLATE)."""

    name: str = "ID"
    column: str | None = None
    attribute: str | None = None
    descending: bool = False
    tier: str | None = None

    def key(self, row: Any) -> SortKey:
        return (getattr(row, self.attribute) if self.attribute else row.id, row.id)


BY_ID = Order()


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    order: Order
    backward: bool = False
    cursor: SortKey | None = None
    filters: Hashable = None


class Page(NamedTuple, Generic[R]):
    """One parent's page (a tuple: made for every parent of a level, it costs a fifth of
    a frozen dataclass)."""

    rows: Sequence[R]
    order: Order
    has_next_page: bool
    has_previous_page: bool

    @property
    def keys(self) -> list[SortKey]:
        """Each row's position in the order (for cursors): computed only when asked."""
        key = self.order.key
        return [key(row) for row in self.rows]


class Params:
    """Collects positional parameters while a statement is being written, and `named`
    pieces of SQL that conditions write for the rest of the statement (whether a search's
    words match an issue's title, which its select list and order read as
    `{title_match}`)."""

    def __init__(self, *initial: Any) -> None:
        self.values: list[Any] = list(initial)
        self.named: dict[str, str] = {}

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which projects a request may read: every one, public ones, and its organizations'."""

    all_projects: bool = False
    public: bool = True
    organization_ids: tuple[int, ...] = ()
    # whose webhooks it may see and manage: every organization's, or those listed
    all_webhooks: bool = False
    webhook_organization_ids: tuple[int, ...] = ()

    def visible(self, params: Params, project: str = "p") -> str:
        """A condition on the projects aliased `project`; the one visibility rule in SQL."""
        if self.all_projects:
            return "TRUE"
        parts = [f"{project}.visibility = 'PUBLIC'"] if self.public else []
        if self.organization_ids:
            orgs = params.add(list(self.organization_ids), "bigint[]")
            parts.append(f"{project}.organization_id = ANY({orgs})")
        return f"({' OR '.join(parts)})" if parts else "FALSE"

    def webhooks_visible(self, params: Params, hook: str = "w") -> str:
        """A condition on the webhooks aliased `hook`: those the request may manage."""
        if self.all_webhooks:
            return "TRUE"
        if not self.webhook_organization_ids:
            return "FALSE"
        organizations = params.add(list(self.webhook_organization_ids), "bigint[]")
        return f"{hook}.organization_id = ANY({organizations})"

    def arguments(self) -> list[object]:
        """The values of the $2, $3, $4 of a statement written with `VISIBLE`."""
        return [self.all_projects, self.public, list(self.organization_ids)]


PUBLIC = Scope()
ALL_COLUMNS = Projection()  # never given a `wanted`: every column

Conditions = Callable[[Hashable, Scope, Params], list[str]]


def no_conditions(filters: Hashable, scope: Scope, params: Params) -> list[str]:
    return []


@dataclass(frozen=True, slots=True)
class PageSpec(Generic[R]):
    """How one kind of child is paged under its parent: the rows are `table`'s columns
    (as the request's projection selects them), then `extra` ones, made into a row by
    `make_row` (by default `table`'s row)."""

    source: str
    parent_column: str
    id_column: str
    table: Columns[Any]
    conditions: Conditions = no_conditions
    extra: str = ""
    make_row: Callable[[Sequence[Any]], R] | None = None
    # The sort column alone bounds a page too: where the id column is no column of an
    # index (an expression), the row comparison cannot seek, the sort column can.
    seek: bool = False
    # `{name}` pieces of `extra` and of the order's column, with the SQL they stand for
    # when the conditions write none (see `Params.named`)
    placeholders: tuple[tuple[str, str], ...] = ()
    # For an order in tiers (TIERED_TEMPLATE): `source` with `{walk}` where `table` is,
    # and how many rows of the order's index a walk reads at most
    walk_source: str = ""
    walk: int = 0

    def fill(self, sql: str, params: Params) -> str:
        for name, default in self.placeholders:
            sql = sql.replace("{" + name + "}", params.named.get(name, default))
        return sql

    def columns(self, projection: Projection, params: Params, shown: str | None = None) -> str:
        """The select list (`shown`: where the rows' subtrees are written, see
        `Projection.select`)."""
        if self.make_row is not None:  # rows of its own making: no joins
            return projection.select_own(self.table) + self.extra
        return projection.select(self.table, params, shown) + self.extra

    def joins(self, projection: Projection) -> str:
        return "" if self.make_row is not None else projection.joined(self.table)

    def reader(self, projection: Projection) -> Callable[[Any], R] | None:
        """What makes a row of a whole page record, where it joins other rows (None: the
        maker of the record after its parent id, `make_row` or the table's)."""
        if self.make_row is not None:
            return None
        return projection.reader(self.table, skip=1)


def keyset_sql(spec: PageSpec[Any], request: PageRequest, params: Params) -> tuple[str, str]:
    descending = request.order.descending != request.backward
    direction = " DESC" if descending else ""
    sort = request.order.column
    if sort is None:
        order = f"{spec.id_column}{direction}"
    else:
        order = f"{sort}{direction}, {spec.id_column}{direction}"
    if request.cursor is None:
        return "", order
    op = "<" if descending else ">"
    value, last_id = request.cursor
    if sort is None:
        return f"{spec.id_column} {op} {params.add(last_id, 'bigint')}", order
    return _seek(spec, sort, op, (value, last_id), params), order


def _seek(spec: PageSpec[Any], sort: str, op: str, key: SortKey, params: Params) -> str:
    """The rows past `key` in the order `op` reads (< descending, > ascending)."""
    value, last_id = key
    bound = params.add(value, _cast(value))
    row_cmp = f"({sort}, {spec.id_column}) {op} ({bound}, {params.add(last_id, 'bigint')})"
    if spec.seek:
        row_cmp += f" AND {sort} {op}= {bound}"
    return row_cmp


def _cast(value: Any) -> str:
    if isinstance(value, datetime):
        return "timestamptz"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float):
        return "real"
    if isinstance(value, int):
        return "bigint"
    return "text"


def page_statement(
    spec: PageSpec[Any],
    request: PageRequest,
    scope: Scope,
    parent_ids: Sequence[int],
    projection: Projection = ALL_COLUMNS,
) -> tuple[str, list[Any]]:
    if request.order.tier is not None:
        return _tiered_statement(spec, request, scope, parent_ids, projection)
    params = Params(list(parent_ids), request.limit + 1)
    keyset, order = keyset_sql(spec, request, params)
    conditions = spec.conditions(request.filters, scope, params)
    if keyset:
        conditions.append(keyset)
    shown = f"row_number() OVER (ORDER BY {order}) < $2"  # (not the extra row)
    sql = PAGE_TEMPLATE.format(
        parent_column=spec.parent_column,
        columns=spec.columns(projection, params, shown),
        source=spec.source + spec.joins(projection),
        conditions="".join(f"\n      AND {c}" for c in conditions),
        order=order,
    )
    return spec.fill(sql, params), params.values


def _tiered_statement(
    spec: PageSpec[Any],
    request: PageRequest,
    scope: Scope,
    parent_ids: Sequence[int],
    projection: Projection,
) -> tuple[str, list[Any]]:
    """A page of an order in tiers (`Order.tier`, TIERED_TEMPLATE), from the cursor on
    (the tier before the cursor's is left out)."""
    if len(parent_ids) != 1:
        raise ValueError("an order in tiers pages one parent's rows at a time")
    order = request.order
    params = Params(list(parent_ids), request.limit + 1)
    descending = order.descending != request.backward
    direction = " DESC" if descending else ""
    tiers: tuple[bool, ...] = (True, False) if descending else (False, True)  # as read
    seek, in_tier = "", None
    if request.cursor is not None:
        (in_tier, value), last_id = request.cursor
        op = "<" if descending else ">"
        seek = _seek(spec, str(order.column), op, (value, last_id), params)
        tiers = tiers[tiers.index(in_tier) :]
    conditions = spec.conditions(request.filters, scope, params)
    held = "{" + str(order.tier) + "}"
    own = [
        [held if first else f"({held}) IS NOT TRUE", *([seek] if first == in_tier else [])]
        for first in tiers
    ]  # each tier's conditions
    column = str(order.column)
    names = (str(order.tier), _output_name(column), _output_name(spec.id_column))
    by = ", ".join(name + direction for name in names)
    walks = [
        _walk(
            spec,
            projection,
            params,
            f"walk_{n}",
            [*conditions, *mine],
            mine[1:],
            f"{column}{direction}",
        )
        for n, mine in enumerate(own)
    ]
    count = [f"(SELECT count(*) FROM walk_{n})" for n in range(len(tiers))]
    parts = [f"SELECT * FROM walk_0 WHERE {count[0]} = $2"]
    if len(tiers) == 1:
        parts.append(
            _found(spec, projection, params, [*conditions, *own[0]], f"{count[0]} < $2", by)
        )
    else:  # the second tier only where the first falls short of a page
        second = f"{count[0]} < $2 AND {count[1]} = $2"
        parts.append(f"SELECT * FROM walk_1 WHERE {second}")
        parts.append(_found(spec, projection, params, [*conditions, *own[0]], second, by))
        either = " OR ".join("(" + " AND ".join(mine) + ")" for mine in own)
        neither = f"{count[0]} < $2 AND {count[1]} < $2"
        parts.append(_found(spec, projection, params, [*conditions, f"({either})"], neither, by))
    sql = TIERED_TEMPLATE.format(
        walks=", ".join(walks), tiers="\n    UNION ALL\n    ".join(parts), order=by
    )
    return spec.fill(sql, params), params.values


def _walk(
    spec: PageSpec[Any],
    projection: Projection,
    params: Params,
    name: str,
    conditions: list[str],
    seek: list[str],
    order: str,
) -> str:
    """A tier's page as a walk of at most `spec.walk` rows of the index of `order` (the
    column and the direction, e.g. `i.updated_at DESC`) from the cursor (`seek`) on."""
    direction = order.partition(" ")[2]
    by = f"{order}, {spec.id_column} {direction}".rstrip()
    capped = CAPPED_TEMPLATE.format(
        table=spec.table.table,
        alias=spec.table.alias,
        seek="".join(f" WHERE {c}" for c in seek),
        order=by,
        walk=spec.walk,
    )
    return WALK_TEMPLATE.format(
        name=name,
        parent_column=spec.parent_column,
        columns=spec.columns(projection, params),
        source=spec.walk_source.format(walk=capped) + spec.joins(projection),
        conditions="".join(f"\n      AND {c}" for c in conditions),
        order=by,
    )


def _found(
    spec: PageSpec[Any],
    projection: Projection,
    params: Params,
    conditions: list[str],
    gate: str,
    by: str,
) -> str:
    """The first rows of every row the conditions find (where `gate` holds), sorted."""
    return FOUND_TEMPLATE.format(
        parent_column=spec.parent_column,
        columns=spec.columns(projection, params),
        source=spec.source + spec.joins(projection),
        conditions="".join(f"\n              AND {c}" for c in conditions),
        gate=gate,
        order=by,
    )


def _output_name(column: str) -> str:
    """The name a select list gives a column (`i.updated_at`: updated_at)."""
    return column.rsplit(".", 1)[-1]


def count_statement(
    spec: PageSpec[Any], filters: Hashable, scope: Scope, parent_ids: Sequence[int]
) -> tuple[str, list[Any]]:
    params = Params(list(parent_ids))
    conditions = spec.conditions(filters, scope, params)
    sql = COUNT_TEMPLATE.format(
        parent_column=spec.parent_column,
        source=spec.source,
        conditions="".join(f"\n  AND {c}" for c in conditions),
    )
    return spec.fill(sql, params), params.values


def split_pages(
    spec: PageSpec[R],
    request: PageRequest,
    records: Sequence[Record],
    projection: Projection = ALL_COLUMNS,
) -> dict[int, Page[R]]:
    """Each parent's page of a statement's records (parent id first, then the row)."""
    grouped: dict[int, list[R]] = defaultdict(list)
    if spec.reader(projection) is None:
        make_row = spec.make_row or spec.table.make
        for record in records:
            grouped[record[0]].append(make_row(record[1:]))
    else:
        rows = projection.read_all(spec.table, records, skip=1)
        for record, row in zip(records, rows, strict=True):
            grouped[record[0]].append(row)
    return {parent: _page(request, rows) for parent, rows in grouped.items()}


def _page(request: PageRequest, rows: list[R]) -> Page[R]:
    limit = request.limit
    more = len(rows) > limit
    if more:
        del rows[limit:]
    if request.backward:
        rows.reverse()
        return Page(rows, request.order, request.cursor is not None, more)
    return Page(rows, request.order, more, request.cursor is not None)


async def load_pages(
    session: Session,
    spec: PageSpec[R],
    scope: Scope,
    keys: Sequence[tuple[int, PageRequest]],
    projection: Projection = ALL_COLUMNS,
) -> list[Page[R]]:
    """One statement per distinct page request among `keys`; results in key order."""
    by_request: dict[PageRequest, list[int]] = defaultdict(list)
    for parent, request in keys:
        by_request[request].append(parent)
    found: dict[PageRequest, dict[int, Page[R]]] = {}
    for request, parents in by_request.items():
        found[request] = await load_request(session, spec, scope, request, parents, projection)
    return [found[request][parent] for parent, request in keys]


async def load_request(
    session: Session,
    spec: PageSpec[R],
    scope: Scope,
    request: PageRequest,
    parents: Sequence[int],
    projection: Projection = ALL_COLUMNS,
) -> dict[int, Page[R]]:
    """Each parent's page for one request, in one statement."""
    sql, args = page_statement(spec, request, scope, parents, projection)
    pages = split_pages(spec, request, await session.fetch(sql, *args), projection)
    if len(pages) < len(parents):
        empty: Page[R] = _page(request, [])
        for parent in parents:
            pages.setdefault(parent, empty)
    return pages


async def load_counts(
    session: Session, spec: PageSpec[Any], scope: Scope, keys: Sequence[tuple[int, Hashable]]
) -> list[int]:
    by_filters: dict[Hashable, list[int]] = defaultdict(list)
    for parent, filters in keys:
        by_filters[filters].append(parent)
    found: dict[tuple[int, Hashable], int] = {}
    for filters, parents in by_filters.items():
        sql, args = count_statement(spec, filters, scope, parents)
        for record in await session.fetch(sql, *args):
            found[record[0], filters] = record[1]
    return [found.get(key, 0) for key in keys]
