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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from loaders.rows import COLUMNS

# (the rendering of a global id: url-safe base64 of "Type:id", padding stripped)
_GLOBAL_ID = (
    "rtrim(translate(encode(convert_to({type} || {id}::text, 'UTF8'), 'base64'), '+/', '-_'), '=')"
)
# RFC 3339 in UTC with `Z`, fractions of a second (six digits) only when there are some
_TIMESTAMP = (
    "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN date_trunc('second', {c}) = {c} THEN ''"
    " ELSE to_char({c} AT TIME ZONE 'UTC', '.US') END || 'Z'"
)


def timestamp_sql(column: str) -> str:
    """An expression writing the timestamp `column` as the API's text (no quotes)."""
    return _TIMESTAMP.format(c=column)


@dataclass(frozen=True, slots=True)
class Entry:
    """One member of a rendered object, under `key`:

    column     the row's `column`, as JSON (text, number, boolean, or null)
    timestamp  the row's timestamp `column` in RFC 3339
    constant   the text `value` (a `__typename`)
    global_id  the row's global id, for the type named `value`
    row        the row that the row's `column` points to, rendered as `target`, read by
               `loader` (a `Loaders` property of a by-id loader); null for a null key"""

    key: str
    kind: str
    column: str | None = None
    value: str | None = None
    target: Rendering | None = None
    loader: Any = None


@dataclass(frozen=True, slots=True)
class Rendering:
    """An object written from a row of type `row` (one of loaders/rows.py's), member by
    member. Hashable: a request keeps each rendering's texts by it."""

    row: type
    entries: tuple[Entry, ...]

    def loaders(self) -> list[Any]:
        """The by-id loaders (`Loaders` properties) of the rows it writes inside."""
        found = []
        for entry in self.entries:
            if entry.target is not None:
                found += [entry.loader, *entry.target.loaders()]
        return found


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_key(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '":'


@lru_cache(maxsize=1024)
def json_sql(rendering: Rendering, alias: str, depth: int = 0) -> str:
    """An expression writing the row aliased `alias` as the JSON text of `rendering`."""
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
        else:
            assert entry.kind == "row" and entry.target is not None
            inner = f"r{depth}"
            target = COLUMNS[entry.target.row]
            value = (
                f"(SELECT {json_sql(entry.target, inner, depth + 1)}"
                f" FROM {target.table} {inner} WHERE {inner}.id = {column})"
            )
            nullable = True  # (a row that is gone reads as null, as the loader's None)
        parts.append(f"coalesce({value}, 'null')" if nullable else value)
    if not parts:
        return "'{}'"
    parts.append("'}'")
    return "(" + " || ".join(parts) + ")"
