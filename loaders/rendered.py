"""Rows that PostgreSQL writes as JSON: a response's objects that need no decision in Python.

Most objects of a response are a row's columns under GraphQL names (a comment's body and
time, its author's login). The compiled executor describes such an object as a
`Rendering` (execution/rendered.py decides which ones qualify); the statement that reads
the rows also writes each as the JSON text of that object, which the response embeds as
it is: the row is never made into Python values and encoded again.

The text is what the API's own encoder writes (core/encoding.py), compact, timestamps in
RFC 3339 with `Z`, global ids as execution/ids.py spells them (the differential tests
hold both executors to the same answers). A row another one points to is written inside
it by a scalar subquery on its id, which only rows that every viewer may read by id
qualify for (the loaders bind a rendering only where the by-id loader is `joinable`).

A list is written inside its parent's object too: the connection of a page of it (its
nodes, edges with their cursors, pageInfo, totalCount) by a correlated subquery that pages
the list as its page loader does, with the same conditions (the viewer's scope, the
filters), keyset and order (loaders/_keyset.py). The statement's parameters then carry
each list's page request (a `Writer` adds them as it writes a rendering with lists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from loaders._keyset import Order, PageRequest, PageSpec, Params, Scope, keyset_sql
from loaders.rows import COLUMNS

# (the rendering of a global id: url-safe base64 of "Type:id", padding stripped)
_GLOBAL_ID = (
    "rtrim(translate(encode(convert_to({type} || {id}::text, 'UTF8'), 'base64'), '+/', '-_'), '=')"
)
# RFC 3339 in UTC, fractions of a second (six digits) only when there are some, then
# `zone` (`Z` as the API writes times, `+00:00` as Python's isoformat() in cursors)
_TIMESTAMP = (
    "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN date_trunc('second', {c}) = {c} THEN ''"
    " ELSE to_char({c} AT TIME ZONE 'UTC', '.US') END || '{zone}'"
)
# url-safe base64 without padding (`encode` breaks lines every 76 characters: dropped)
_BASE64URL = "translate(encode(convert_to({text}, 'UTF8'), 'base64'), E'+/=\\n', '-_')"


def timestamp_sql(column: str, zone: str = "Z") -> str:
    """An expression writing the timestamp `column` as the API's text (no quotes)."""
    return _TIMESTAMP.format(c=column, zone=zone)


@dataclass(frozen=True, slots=True, eq=False)
class Entry:
    """One member of a rendered object, under `key`:

    column       the row's `column`, as JSON (text, number, boolean, or null)
    timestamp    the row's timestamp `column` in RFC 3339
    constant     the text `value` (a `__typename`)
    global_id    the row's global id, for the type named `value`
    row          the row that the row's `column` points to, rendered as `target`, read by
                 `loader` (a `Loaders` property of a by-id loader); null for a null key
    connection   a page of the row's list that `loader` (a `Loaders` property of a page
                 loader) reads, as the object of `members`:
      nodes        the page's rows, each as `target`
      edges        the page's edges, each the object of `members`: `cursor` (of the
                   cursor version `value`), `node` (as `target`), `constant`
      page_info    the object of `members`: `has_next_page`, `has_previous_page`,
                   `start_cursor`, `end_cursor` (of the version `value`), `constant`
      total_count  how many rows the whole list holds

    Compared by identity: a request finds each list's page request by its entry."""

    key: str
    kind: str
    column: str | None = None
    value: str | None = None
    target: Rendering | None = None
    loader: Any = None
    members: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Rendering:
    """An object written from a row of type `row` (one of loaders/rows.py's), member by
    member. Compared by identity (a request keeps each rendering's texts by it)."""

    row: type
    entries: tuple[Entry, ...]
    # the by-id loaders (`Loaders` properties) of the rows it writes inside, and its lists
    # with their parents' row types, however deep
    inside: tuple[Any, ...] = field(init=False)
    lists: tuple[tuple[Entry, type], ...] = field(init=False)

    def __post_init__(self) -> None:
        inside: list[Any] = []
        lists: list[tuple[Entry, type]] = []
        for entry in self.entries:
            if entry.kind == "row":
                inside.append(entry.loader)
            elif entry.kind == "connection":
                lists.append((entry, self.row))
            for target in _targets(entry):
                inside += target.inside
                lists += target.lists
        object.__setattr__(self, "inside", tuple(inside))
        object.__setattr__(self, "lists", tuple(lists))

    @property
    def paged(self) -> bool:
        """Whether it writes a list (whose page request the statement's parameters hold)."""
        return bool(self.lists)


def _targets(entry: Entry) -> list[Rendering]:
    found = [] if entry.target is None else [entry.target]
    for member in entry.members:
        found += _targets(member)
    return found


@dataclass(frozen=True, slots=True)
class Writer:
    """What writing a rendering's lists takes: the statement's parameters, the scope of
    the request, and each list's page spec and page request (by its entry)."""

    params: Params
    scope: Scope
    pages: dict[Entry, tuple[PageSpec[Any], PageRequest]]


@lru_cache(maxsize=256)
def writable(spec: PageSpec[Any], order: Order, parent: type) -> bool:
    """Whether a list read by `spec` in `order` can be written inside the object of its
    parent row (of type `parent`): its rows are its table's own (not made in Python), its
    order is one column (not in tiers), the cursor's value is one a cursor can hold, and
    its statement's aliases leave the parent's in sight."""
    if spec.make_row is not None or spec.placeholders or order.tier is not None:
        return False
    if order.attribute is not None and _json_kind(spec, order.attribute) is None:
        return False
    aliases = set(re.findall(r"[a-z_][a-z_0-9]*", spec.source))
    return COLUMNS[parent].alias not in aliases and not any(
        re.fullmatch(r"[rj]\d+", alias) for alias in aliases
    )


# The texts of renderings with lists, and the parameter values they add, by what makes
# them differ: a page statement writes the same text for every request of a document.
_WRITTEN: dict[tuple[Any, ...], tuple[str, tuple[Any, ...]]] = {}
WRITTEN_SIZE = 256


def write_lists(
    rendering: Rendering,
    alias: str,
    params: Params,
    scope: Scope,
    pages: dict[Entry, tuple[PageSpec[Any], PageRequest]],
) -> str:
    """`write` of a rendering with lists (its parameters added to `params`), remembered:
    the same rendering, alias, scope and page requests write the same text."""
    requests = tuple(pages[entry][1] for entry, _parent in rendering.lists)
    key = (rendering, alias, len(params.values), scope, requests)
    found = _WRITTEN.get(key)
    if found is not None:
        params.values.extend(found[1])
        return found[0]
    start = len(params.values)
    text = write(rendering, alias, 0, Writer(params, scope, pages))
    if len(_WRITTEN) >= WRITTEN_SIZE:
        _WRITTEN.clear()
    _WRITTEN[key] = (text, tuple(params.values[start:]))
    return text


def _json_kind(spec: PageSpec[Any], attribute: str) -> str | None:
    kind = spec.table.row.__annotations__.get(attribute)
    text = getattr(kind, "__forward_arg__", kind)  # (a NamedTuple's: ForwardRef("int"))
    if text in (datetime, "datetime"):
        return "timestamp"
    if text in (int, "int"):
        return "number"
    if text in (str, "str"):
        return "text"
    return None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_key(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '":'


@lru_cache(maxsize=1024)
def json_sql(rendering: Rendering, alias: str, depth: int = 0) -> str:
    """An expression writing the row aliased `alias` as the JSON text of `rendering` (one
    that writes no list)."""
    return write(rendering, alias, depth, None)


def write(rendering: Rendering, alias: str, depth: int, writer: Writer | None) -> str:
    """An expression writing the row aliased `alias` as the JSON text of `rendering`; its
    lists take their parameters from `writer`."""
    table = COLUMNS[rendering.row]
    parts: list[str] = []
    for n, entry in enumerate(rendering.entries):
        head = ("{" if n == 0 else ",") + _json_key(entry.key)
        column = f"{alias}.{entry.column}"
        nullable = entry.column in table.nullable
        if entry.kind == "constant":
            assert entry.value is not None
            parts.append(_literal(head + '"' + entry.value + '"'))
            continue
        parts.append(_literal(head))
        if entry.kind == "column":
            value = f"to_json({column})::text"
        elif entry.kind == "timestamp":
            value = "'\"' || " + timestamp_sql(column) + " || '\"'"
        elif entry.kind == "global_id":
            assert entry.value is not None
            text = _GLOBAL_ID.format(type=_literal(entry.value + ":"), id=f"{alias}.id")
            value = f"'\"' || {text} || '\"'"
            nullable = False
        elif entry.kind == "connection":
            assert writer is not None
            value = _connection(entry, alias, depth, writer)
            nullable = False
        else:
            assert entry.kind == "row" and entry.target is not None
            inner = f"r{depth}"
            target = COLUMNS[entry.target.row]
            value = (
                f"(SELECT {write(entry.target, inner, depth + 1, writer)}"
                f" FROM {target.table} {inner} WHERE {inner}.id = {column})"
            )
            nullable = True  # (a row that is gone reads as null, as the loader's None)
        parts.append(f"coalesce({value}, 'null')" if nullable else value)
    if not parts:
        return "'{}'"
    parts.append("'}'")
    return "(" + " || ".join(parts) + ")"


def _connection(entry: Entry, parent: str, depth: int, writer: Writer) -> str:
    """The connection object of a page of the list `entry` names, for the row aliased
    `parent`. The page's rows are read as the page loader reads them, numbered `_n` in
    that order, one more than the page (that row only tells that there is a next one),
    under the alias of their table; aggregates fold them into the object, and write a
    row's object (its subtree included) only for the rows the page shows."""
    spec, request = writer.pages[entry]
    params = writer.params
    keyset, order = keyset_sql(spec, request, params)
    conditions = [
        f"{spec.parent_column} = {parent}.id",
        *spec.conditions(request.filters, writer.scope, params),
        *([keyset] if keyset else []),
    ]
    limit = params.add(request.limit, "int")
    alias = spec.table.alias
    shown = f"FILTER (WHERE {alias}._n <= {limit})"
    as_shown = f"ORDER BY {alias}._n{' DESC' if request.backward else ''}"
    members = [*entry.members, *(m for e in entry.members for m in e.members)]
    cursor = any(m.kind in ("cursor", "start_cursor", "end_cursor") for m in members)
    columns = [f"row_number() OVER (ORDER BY {order}) AS _n"]
    if cursor:
        version = next(str(m.value) for m in members if m.value and "cursor" in m.kind)
        columns.append(f"{_cursor(spec, request, version)} AS _cursor")
    columns.append(f"{alias}.*")

    def listed(text: str) -> str:
        return f"'[' || coalesce(string_agg({text}, ',' {as_shown}) {shown}, '') || ']'"

    def member_text(member: Entry) -> str:
        kind = member.kind
        if kind == "constant":
            return _literal('"' + str(member.value) + '"')
        if kind in ("node", "nodes"):
            assert member.target is not None
            node = write(member.target, alias, depth + 1, writer)
            return listed(node) if kind == "nodes" else node
        if kind == "cursor":
            return f"'\"' || {alias}._cursor || '\"'"
        if kind == "edges":
            return listed(_object([(m.key, member_text(m)) for m in member.members]))
        if kind == "page_info":
            return _object([(m.key, member_text(m)) for m in member.members])
        if kind in ("has_next_page", "has_previous_page"):
            more = f"CASE WHEN count(*) > {limit} THEN 'true' ELSE 'false' END"
            given = "'true'" if request.cursor is not None else "'false'"
            ahead = (kind == "has_next_page") != request.backward
            return more if ahead else given
        if kind in ("start_cursor", "end_cursor"):
            last = (kind == "end_cursor") != request.backward
            by = f"{alias}._n{' DESC' if last else ''}"
            found = f"(array_agg({alias}._cursor ORDER BY {by}) {shown})[1]"
            return f"coalesce('\"' || {found} || '\"', 'null')"
        assert kind == "total_count", kind
        counted = " AND ".join(
            [
                f"{spec.parent_column} = {parent}.id",
                *spec.conditions(request.filters, writer.scope, params),
            ]
        )
        return f"(SELECT count(*) FROM {spec.source} WHERE {counted})::text"

    text = _object([(m.key, member_text(m)) for m in entry.members])
    rows = (
        f"SELECT {', '.join(columns)} FROM {spec.source} WHERE {' AND '.join(conditions)}"
        f" ORDER BY {order} LIMIT {limit} + 1"
    )
    # (GROUP BY (): one row, whether or not the object reads an aggregate)
    return f"(SELECT {text} FROM ({rows}) AS {alias} GROUP BY ())"


def _object(members: list[tuple[str, str]]) -> str:
    """The text of a JSON object of (key, SQL of the value's text) pairs."""
    if not members:
        return "'{}'"
    parts = []
    for n, (key, value) in enumerate(members):
        parts += [_literal(("{" if n == 0 else ",") + _json_key(key)), value]
    return "(" + " || ".join([*parts, "'}'"]) + ")"


def _cursor(spec: PageSpec[Any], request: PageRequest, version: str) -> str:
    """An expression writing a page row's cursor as execution/pagination.py does: the
    JSON [version, order name, sort value, id] in url-safe base64."""
    order = request.order
    head = _literal(f'[{version},"{order.name}",')
    if order.column is None or order.attribute is None:
        value = f"{spec.id_column}::text"
    else:
        kind = _json_kind(spec, order.attribute)
        if kind == "timestamp":
            value = "'\"' || " + timestamp_sql(order.column, "+00:00") + " || '\"'"
        elif kind == "number":
            value = f"{order.column}::text"
        else:
            value = f"to_json({order.column})::text"
    text = f"{head} || {value} || ',' || {spec.id_column}::text || ']'"
    return _BASE64URL.format(text=text)
