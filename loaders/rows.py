"""Rows as the loaders return them: named tuples, built positionally from a record.

Each row type has a `Columns`: its select list, in the row's field order. Some columns are
*optional*: nothing reads them but the GraphQL field of the same name (no access rule, no
loader key, no sort order), so a query that selects none of those fields need not read
them. A request's `Projection` says which optional columns its statements read; the
others are selected as NULL, so that every row keeps the same layout.

A projection may also *join*: a statement that reads rows of one table then reads, in the
same statement, the row each of them points to in another (an issue's author), and hands
those rows to the by-id loader of the other table, so that resolving the pointer costs no
statement of its own. And it may *render*: the statement also writes each row as the JSON
text of a response's object (loaders/rendered.py), kept by row id in `Rendered.texts`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar, cast
from uuid import UUID

R = TypeVar("R")


class UserRow(NamedTuple):
    id: int
    login: str
    name: str
    email: str
    bio: str
    is_site_admin: bool
    created_at: datetime


class OrganizationRow(NamedTuple):
    id: int
    slug: str
    name: str
    description: str
    created_at: datetime


class ProjectRow(NamedTuple):
    id: int
    organization_id: int
    key: str
    name: str
    description: str
    visibility: str
    archived_at: datetime | None
    created_at: datetime


class IssueRow(NamedTuple):
    id: int
    project_id: int
    number: int
    title: str
    body: str
    state: str
    priority: int
    author_id: int
    assignee_id: int | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    body_html: str | None  # the body rendered when written (None: not yet)


class LabelRow(NamedTuple):
    id: int
    project_id: int
    name: str
    color: str
    created_at: datetime


class CommentRow(NamedTuple):
    id: int
    issue_id: int
    author_id: int
    body: str
    created_at: datetime
    updated_at: datetime
    body_html: str | None  # the body rendered when written (None: not yet)


class SessionRow(NamedTuple):
    """A live session, as its user lists it (loaders/accounts.py)."""

    id: int
    user_id: int
    created_at: datetime
    last_used_at: datetime
    client: str
    address: str | None


class WebhookRow(NamedTuple):
    """A webhook as the API shows it: never its secret (loaders/webhooks.py)."""

    id: int
    organization_id: int
    project_id: int | None
    url: str
    events: list[str]
    active: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class WebhookDeliveryRow(NamedTuple):
    id: int
    webhook_id: int
    event_id: int | None
    kind: str
    guid: UUID
    state: str
    attempts: int
    next_attempt_at: datetime
    body: str | None
    redelivery: bool
    created_at: datetime
    finished_at: datetime | None


class WebhookAttemptRow(NamedTuple):
    id: int
    delivery_id: int
    started_at: datetime
    duration_ms: int | None
    status_code: int | None
    error: str | None


class MemberRow(NamedTuple):
    """A user as a member of an organization: the edge of `Organization.members`."""

    user: UserRow
    role: str
    organization_id: int

    @property
    def id(self) -> int:
        return self.user.id


class NotificationRow(NamedTuple):
    """Something that happened that its user should know of (loaders/notifications.py)."""

    id: int
    user_id: int
    issue_id: int
    comment_id: int | None
    actor_id: int | None
    reason: str
    event_id: int | None
    read_at: datetime | None
    created_at: datetime


class TimelineEventRow(NamedTuple):
    """An event as an issue's timeline shows it (loaders/timeline.py has a subclass per
    kind of item, so that the item's GraphQL type is known by its class)."""

    id: int  # the event's
    issue_id: int
    actor_id: int | None
    created_at: datetime
    ref_id: int | None  # the label, assignee, project or user the item names
    previous_title: str | None
    current_title: str | None
    comment_id: int | None


class TimelineEntry(NamedTuple):
    """A timeline item with its place: the event, then the item's rank in it (an event
    that assigns and renames at once shows two items)."""

    id: int  # the rank, 1, 2 …
    event_id: int
    node: Any  # a CommentRow or a TimelineEventRow


class Columns(Generic[R]):
    """A row type's select list: the columns of `table` under the alias `alias`."""

    def __init__(self, row: type[R], table: str, alias: str, optional: Iterable[str] = ()) -> None:
        self.row = row
        self.table = table
        self.alias = alias
        self.names: tuple[str, ...] = row._fields  # type: ignore[attr-defined]
        self.optional = frozenset(optional)
        assert self.optional <= set(self.names), self.optional - set(self.names)
        # The columns that may hold NULL: those the row type annotates `… | None` (a test
        # holds the annotations to the tables' NOT NULL constraints).
        self.nullable = frozenset(
            name for name, kind in row.__annotations__.items() if "None" in str(kind)
        )
        self.all = ", ".join(f"{alias}.{name}" for name in self.names)
        # A row from a sequence of values (a record): tuple.__new__ without a Python frame.
        self.make = cast(Callable[[Iterable[Any]], R], partial(tuple.__new__, row))
        self._selects: dict[tuple[frozenset[str], str | None], str] = {}

    def select(self, wanted: frozenset[str] | None, alias: str | None = None) -> str:
        """The select list reading the optional columns in `wanted` (None: all), of the
        table under `alias` (by default its own)."""
        if wanted is None and alias is None:
            return self.all
        wanted = self.optional if wanted is None else wanted & self.optional
        found = self._selects.get((wanted, alias))
        if found is None:
            found = ", ".join(
                f"NULL AS {name}"
                if name in self.optional and name not in wanted
                else f"{alias or self.alias}.{name}"
                for name in self.names
            )
            self._selects[wanted, alias] = found
        return found


@dataclass(frozen=True, slots=True, eq=False)
class Join:
    """Rows of `target` that a row points to by its column `key`, read with it by a LEFT
    JOIN on the target's id and put into `known` (the target's by-id loader's rows)."""

    key: str
    target: Columns[Any]
    known: dict[Any, Any]


@dataclass(frozen=True, slots=True, eq=False)
class Rendered:
    """A rendering bound to a request: `sql(alias, params)` writes a row under that alias
    (a `paged` rendering's lists add their values to `params`, the statement's parameters),
    and `texts` keeps what the request's statements wrote, by row id."""

    sql: Callable[[str, Any], str]
    texts: dict[int, str]
    paged: bool = False


class _Part(NamedTuple):
    """A row a record holds: its columns from `first` to `last`, then its texts."""

    first: int
    last: int
    make: Callable[[Iterable[Any]], Any]
    known: dict[Any, Any]  # the by-id loader's rows (unused for the record's own row)
    texts: tuple[dict[int, str], ...]


class Projection:
    """The optional columns a request's statements read, by row type (`wanted` None, the
    default, reads every column), the rows they join, and the renderings they write of
    both, by row type. Shared by all the loaders of a request."""

    __slots__ = ("joins", "renders", "wanted")

    def __init__(self) -> None:
        self.wanted: Mapping[type, frozenset[str]] | None = None
        self.joins: Mapping[type, tuple[Join, ...]] = {}
        self.renders: Mapping[type, tuple[Rendered, ...]] = {}

    def _wanted(self, columns: Columns[Any]) -> frozenset[str] | None:
        return None if self.wanted is None else self.wanted.get(columns.row, frozenset())

    def _written(self, columns: Columns[Any], alias: str, params: Any, shown: str | None) -> str:
        """The renderings' texts of a statement's rows; those with lists only where
        `shown` holds, when given (a page's rows but its extra one, which only tells that
        there is a next page: its subtree would be written for nothing)."""
        found = ""
        for r in self.renders.get(columns.row, ()):
            text = r.sql(alias, params)
            found += f", CASE WHEN {shown} THEN {text} END" if r.paged and shown else ", " + text
        return found

    def select_own(self, columns: Columns[Any]) -> str:
        """The select list of `columns`'s rows alone."""
        return columns.select(self._wanted(columns))

    def select(self, columns: Columns[Any], params: Any, shown: str | None = None) -> str:
        """The select list of `columns`'s rows and their renderings, then of each row they
        join and its renderings (`params`: the statement's, loaders/_keyset.py's `Params`;
        those with lists only for the rows where `shown` holds, when given)."""
        if self.wanted is None and not self.joins and not self.renders:
            return columns.all
        found = columns.select(self._wanted(columns))
        found += self._written(columns, columns.alias, params, shown)
        for n, join in enumerate(self.joins.get(columns.row, ())):
            found += ", " + join.target.select(self._wanted(join.target), f"j{n}")
            found += self._written(join.target, f"j{n}", params, shown)
        return found

    def joined(self, columns: Columns[Any]) -> str:
        """The LEFT JOINs the select list of `columns` reads (or nothing)."""
        return "".join(
            f" LEFT JOIN {join.target.table} j{n} ON j{n}.id = {columns.alias}.{join.key}"
            for n, join in enumerate(self.joins.get(columns.row, ()))
        )

    def _parts(self, columns: Columns[Any], skip: int) -> list[_Part]:
        """Where a record of `select(columns)` holds each of its rows (after `skip` values)."""
        parts: list[_Part] = []
        start = skip
        joins = self.joins.get(columns.row, ())
        targets = [(columns, {}), *((j.target, j.known) for j in joins)]
        for table, known in targets:
            texts = tuple(r.texts for r in self.renders.get(table.row, ()))
            last = start + len(table.names)
            parts.append(_Part(start, last, table.make, known, texts))
            start = last + len(texts)
        return parts

    def reader(self, columns: Columns[Any], skip: int = 0) -> Callable[[Any], Any] | None:
        """What makes a row of a record whose first `skip` values are not the row's and
        hands the rows the record joins to their loaders, and the texts it holds to their
        renderings; None where it holds neither (`columns.make` of the record after
        `skip` makes the row)."""
        own, *joined = self._parts(columns, skip)
        if not joined and not own.texts:
            return None

        def read(record: Any) -> Any:
            for first, last, make_joined, known, texts in joined:
                key = record[first]
                if key is not None:
                    if key not in known:
                        known[key] = make_joined(record[first:last])
                    for n, written in enumerate(texts):
                        if (text := record[last + n]) is not None:
                            written[key] = text
            for n, written in enumerate(own.texts):
                if (text := record[own.last + n]) is not None:
                    written[record[own.first]] = text
            return own.make(record[own.first : own.last])

        return read

    def read_all(self, columns: Columns[Any], records: Sequence[Any], skip: int = 0) -> list[Any]:
        """The rows of many records (as `reader` makes them, one by one): the rows they
        join and their texts handed over once per key, with no call per record."""
        own, *joined = self._parts(columns, skip)
        for first, last, make_joined, known, texts in joined:
            latest = {record[first]: record for record in records}  # one record per key
            latest.pop(None, None)
            for key in latest.keys() - known.keys():
                known[key] = make_joined(latest[key][first:last])
            for n, written in enumerate(texts):
                position = last + n
                written.update(
                    [(k, r[position]) for k, r in latest.items() if r[position] is not None]
                )
        first = own.first  # (a row's id is its first column)
        for n, written in enumerate(own.texts):
            position = own.last + n
            written.update([(r[first], r[position]) for r in records if r[position] is not None])
        make, last = own.make, own.last
        return [make(record[first:last]) for record in records]


USERS = Columns(UserRow, "users", "u", ("name", "email", "bio", "created_at"))
ORGANIZATIONS = Columns(
    OrganizationRow, "organizations", "o", ("name", "description", "created_at")
)
PROJECTS = Columns(ProjectRow, "projects", "p", ("name", "description", "created_at"))
ISSUES = Columns(IssueRow, "issues", "i", ("title", "body", "closed_at", "body_html"))
LABELS = Columns(LabelRow, "labels", "l", ("color", "created_at"))
COMMENTS = Columns(CommentRow, "comments", "c", ("body", "updated_at", "body_html"))
SESSIONS = Columns(SessionRow, "sessions", "s")
NOTIFICATIONS = Columns(NotificationRow, "notifications", "n")
WEBHOOKS = Columns(WebhookRow, "webhooks", "w")
WEBHOOK_DELIVERIES = Columns(WebhookDeliveryRow, "webhook_deliveries", "d", ("body",))
WEBHOOK_ATTEMPTS = Columns(WebhookAttemptRow, "webhook_attempts", "a")
COLUMNS: dict[type, Columns[Any]] = {
    c.row: c
    for c in (
        *(USERS, ORGANIZATIONS, PROJECTS, ISSUES, LABELS, COMMENTS, SESSIONS, NOTIFICATIONS),
        *(WEBHOOKS, WEBHOOK_DELIVERIES, WEBHOOK_ATTEMPTS),
    )
}

USER_COLUMNS = USERS.all
ORGANIZATION_COLUMNS = ORGANIZATIONS.all
PROJECT_COLUMNS = PROJECTS.all
ISSUE_COLUMNS = ISSUES.all
LABEL_COLUMNS = LABELS.all
COMMENT_COLUMNS = COMMENTS.all
NOTIFICATION_COLUMNS = NOTIFICATIONS.all
