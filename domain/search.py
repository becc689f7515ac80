"""The query language of `searchIssues`: GitHub's, parsed into the filter every issue list
takes (loaders/issues.py `IssueFilter`) and an order. No SQL here.

A query is a sequence of terms separated by whitespace. A term `name:value` is a qualifier
(`-name:value` negates it; a value with spaces is quoted: `label:"help wanted"`); any
other term is a word, a quoted phrase, `-word` or `OR`, which go to PostgreSQL's
`websearch_to_tsquery` as written. Every qualifier narrows (they are all ANDed; repeat
`label:` for all of several labels). An unknown qualifier or a malformed value is a
BAD_USER_INPUT error naming the qualifier and its position (1-based, in characters).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from core.errors import BadUserInput
from loaders import Order
from loaders.issues import RELEVANCE, Condition, IssueFilter, order

MAX_QUERY_LENGTH = 1_000
MAX_QUALIFIERS = 40
PRIORITIES = range(5)
LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")
PROJECT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]{0,38})/([A-Za-z][A-Za-z0-9]{1,9})$")
QUALIFIER = re.compile(r"^(-?)([A-Za-z]+):(.*)$", re.DOTALL)
COMPARISON = re.compile(r"^(>=|<=|>|<)?(.*)$", re.DOTALL)
SORTS = {
    "relevance": RELEVANCE,
    "created-desc": order("CREATED_AT", True),
    "created-asc": order("CREATED_AT", False),
    "updated-desc": order("UPDATED_AT", True),
    "updated-asc": order("UPDATED_AT", False),
    "priority-desc": order("PRIORITY", True),
    "comments-desc": order("COMMENTS", True),
}
DEFAULT_SORT = "created-desc"  # without words; with words, relevance


@dataclass(frozen=True, slots=True)
class Search:
    """A parsed query: what to find, and in which order."""

    filter: IssueFilter
    order: Order


@dataclass(frozen=True, slots=True)
class Term:
    text: str
    position: int  # 1-based


def _bad(message: str, term: Term, qualifier: str | None = None) -> BadUserInput:
    extensions: dict[str, object] = {"argument": "query", "position": term.position}
    if qualifier is not None:
        extensions["qualifier"] = qualifier
    return BadUserInput(f"{message} (at position {term.position} of the query).", **extensions)


def terms(query: str) -> Iterator[Term]:
    """The whitespace-separated terms of a query; whitespace inside quotes belongs to its
    term. An unterminated quote is an error."""
    n, i = len(query), 0
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        start, quoted = i, False
        while i < n and (quoted or not query[i].isspace()):
            if query[i] == '"':
                quoted = not quoted
            i += 1
        term = Term(query[start:i], start + 1)
        if quoted:
            raise _bad("A quote is not closed", term)
        yield term


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse(query: str, me: str | None = None) -> Search:
    """Parse a search query; `me` is the viewer's login (for `@me`), None when anonymous."""
    if len(query) > MAX_QUERY_LENGTH:
        raise BadUserInput(
            f"A search query has at most {MAX_QUERY_LENGTH} characters.", argument="query"
        )
    if "\x00" in query:
        raise BadUserInput("A search query may not contain NUL characters.", argument="query")
    conditions: list[Condition] = []
    words: list[str] = []
    sort: str | None = None
    for term in terms(query):
        found = QUALIFIER.match(term.text)
        if found is None:
            words.append(term.text)
            continue
        negated, name, raw = found.group(1) == "-", found.group(2).lower(), found.group(3)
        value = _unquote(raw)
        if name not in QUALIFIERS and name != "sort":
            raise _bad(f"Unknown qualifier `{name}:`", term, name)
        if not value.strip():
            raise _bad(f"`{name}:` needs a value", term, name)
        if name == "sort":
            sort = _sort(term, value, negated, sort)
            continue
        made = QUALIFIERS[name](term, value, me)
        if made is not None:
            conditions.append(Condition(made.kind, made.value, negated))
        if len(conditions) > MAX_QUALIFIERS:
            raise _bad(f"A search query has at most {MAX_QUALIFIERS} qualifiers", term, name)
    text = " ".join(words) or None
    if sort is None:
        sort = "relevance" if text is not None else DEFAULT_SORT
    elif sort == "relevance" and text is None:  # nothing to rank by
        sort = DEFAULT_SORT
    return Search(IssueFilter(tuple(conditions), text), SORTS[sort])


def _sort(term: Term, value: str, negated: bool, earlier: str | None) -> str:
    if negated:
        raise _bad("`sort:` cannot be negated", term, "sort")
    if earlier is not None:
        raise _bad("`sort:` may be given once", term, "sort")
    if value.lower() not in SORTS:
        raise _bad(f"`sort:` takes one of {', '.join(SORTS)}", term, "sort")
    return value.lower()


def _is(term: Term, value: str, me: str | None) -> Condition | None:
    if value.lower() == "issue":
        return None  # every result is an issue
    return _state(term, value, me)


def _state(term: Term, value: str, me: str | None) -> Condition:
    state = value.lower()
    if state not in ("open", "closed"):
        name = term.text.lstrip("-").split(":", 1)[0].lower()
        raise _bad(f"`{name}:` takes open or closed", term, name)
    return Condition("state", (state.upper(),))


def _user(kind: str) -> Callable[[Term, str, str | None], Condition]:
    def make(term: Term, value: str, me: str | None) -> Condition:
        login = value
        if value.lower() == "@me":
            if me is None:
                raise _bad(f"`{kind}:@me` needs a signed-in viewer", term, kind)
            login = me
        if not LOGIN.match(login):
            raise _bad(f"`{kind}:` takes a login, got {value!r}", term, kind)
        return Condition(kind, login.lower())

    return make


def _organization(term: Term, value: str, me: str | None) -> Condition:
    if not SLUG.match(value):
        raise _bad(f"`org:` takes an organization's slug, got {value!r}", term, "org")
    return Condition("organization", value.lower())


def _project(term: Term, value: str, me: str | None) -> Condition:
    found = PROJECT.match(value)
    if found is None:
        raise _bad(f"`project:` takes ORGANIZATION/KEY (acme/WEB), got {value!r}", term, "project")
    return Condition("project", (found.group(1).lower(), found.group(2).upper()))


def _label(term: Term, value: str, me: str | None) -> Condition:
    return Condition("label", value)


def _no(term: Term, value: str, me: str | None) -> Condition:
    kinds = {"assignee": "unassigned", "label": "unlabeled"}
    kind = kinds.get(value.lower())
    if kind is None:
        raise _bad("`no:` takes assignee or label", term, "no")
    return Condition(kind)


def _priority(term: Term, value: str, me: str | None) -> Condition:
    def number(text: str) -> int:
        if text.isascii() and text.isdigit() and int(text) in PRIORITIES:
            return int(text)
        raise _bad(f"`priority:` takes 0 to 4, got {text!r}", term, "priority")

    low, high = _bounds(value, number, PRIORITIES[0], PRIORITIES[-1], lambda n, k: n + k)
    return Condition("priority", tuple(p for p in PRIORITIES if low <= p <= high))


def _moment(term: Term, name: str) -> Callable[[str], tuple[datetime, datetime | None]]:
    """A date (a UTC day) or a date and time (an instant): its first moment and the first
    after it (None past the last representable one)."""

    def read(text: str) -> tuple[datetime, datetime | None]:
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                start = datetime.combine(day, time(), UTC)
                step = timedelta(days=1)
            else:
                start = datetime.fromisoformat(text)
                if start.tzinfo is None:
                    start = start.replace(tzinfo=UTC)
                start = start.astimezone(UTC)
                step = timedelta(microseconds=1)
        except (ValueError, OverflowError):
            raise _bad(
                f"`{name}:` takes a date (2026-01-31) or a date and time "
                f"(2026-01-31T12:00:00Z), got {text!r}",
                term,
                name,
            ) from None
        try:
            return start, start + step
        except OverflowError:
            return start, None

    return read


def _dates(name: str) -> Callable[[Term, str, str | None], Condition]:
    def make(term: Term, value: str, me: str | None) -> Condition:
        read = _moment(term, name)
        since: datetime | None
        until: datetime | None
        if ".." in value:
            first, last = value.split("..", 1)
            since = None if first == "*" else read(first)[0]
            until = None if last == "*" else read(last)[1]
        else:
            comparison, rest = COMPARISON.match(value).groups()  # type: ignore[union-attr]
            start, end = read(rest)
            since, until = {
                None: (start, end),
                ">=": (start, None),
                ">": (end, None),
                "<": (None, start),
                "<=": (None, end),
            }[comparison]
        return Condition(name, (since, until))

    return make


def _bounds(
    value: str,
    read: Callable[[str], int],
    lowest: int,
    highest: int,
    step: Callable[[int, int], int],
) -> tuple[int, int]:
    """The inclusive range of N, >N, >=N, <N, <=N, N..M (either side may be *)."""
    if ".." in value:
        first, last = value.split("..", 1)
        return (lowest if first == "*" else read(first)), (highest if last == "*" else read(last))
    comparison, rest = COMPARISON.match(value).groups()  # type: ignore[union-attr]
    n = read(rest)
    return {
        None: (n, n),
        ">=": (n, highest),
        ">": (step(n, 1), highest),
        "<": (lowest, step(n, -1)),
        "<=": (lowest, n),
    }[comparison]


QUALIFIERS: dict[str, Callable[[Term, str, str | None], Condition | None]] = {
    "is": _is,
    "state": _state,
    "org": _organization,
    "project": _project,
    "author": _user("author"),
    "assignee": _user("assignee"),
    "mentions": _user("mentions"),
    "involves": _user("involves"),
    "no": _no,
    "label": _label,
    "priority": _priority,
    "created": _dates("created"),
    "updated": _dates("updated"),
}
