"""Rows as the loaders return them: named tuples, built positionally from a record.

Each row type has a `Columns`: its select list, in the row's field order. Some columns are
*optional*: nothing reads them but the GraphQL field of the same name (no access rule, no
loader key, no sort order), so a query that selects none of those fields need not read
them. A request's `Projection` says which optional columns its statements read; the
others are selected as NULL, so that every row keeps the same layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar, cast

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


class MemberRow(NamedTuple):
    """A user as a member of an organization: the edge of `Organization.members`."""

    user: UserRow
    role: str
    organization_id: int

    @property
    def id(self) -> int:
        return self.user.id


class Columns(Generic[R]):
    """A row type's select list under the table alias `alias`."""

    def __init__(self, row: type[R], alias: str, optional: Iterable[str] = ()) -> None:
        self.row = row
        self.alias = alias
        self.names: tuple[str, ...] = row._fields  # type: ignore[attr-defined]
        self.optional = frozenset(optional)
        assert self.optional <= set(self.names), self.optional - set(self.names)
        self.all = ", ".join(f"{alias}.{name}" for name in self.names)
        # A row from a sequence of values (a record): tuple.__new__ without a Python frame.
        self.make = cast(Callable[[Iterable[Any]], R], partial(tuple.__new__, row))
        self._selects: dict[frozenset[str], str] = {}

    def select(self, wanted: frozenset[str] | None) -> str:
        """The select list reading the optional columns in `wanted` (None: all)."""
        if wanted is None:
            return self.all
        wanted &= self.optional
        found = self._selects.get(wanted)
        if found is None:
            found = ", ".join(
                f"NULL AS {name}"
                if name in self.optional and name not in wanted
                else f"{self.alias}.{name}"
                for name in self.names
            )
            self._selects[wanted] = found
        return found


class Projection:
    """The optional columns a request's statements read, by row type; `wanted` None (the
    default) reads every column. Shared by all the loaders of a request."""

    __slots__ = ("wanted",)

    def __init__(self) -> None:
        self.wanted: Mapping[type, frozenset[str]] | None = None

    def select(self, columns: Columns[Any]) -> str:
        if self.wanted is None:
            return columns.all
        return columns.select(self.wanted.get(columns.row, frozenset()))


USERS = Columns(UserRow, "u", ("name", "email", "bio", "created_at"))
ORGANIZATIONS = Columns(OrganizationRow, "o", ("name", "description", "created_at"))
PROJECTS = Columns(ProjectRow, "p", ("name", "description", "created_at"))
ISSUES = Columns(IssueRow, "i", ("title", "body", "closed_at"))
LABELS = Columns(LabelRow, "l", ("color", "created_at"))
COMMENTS = Columns(CommentRow, "c", ("body", "updated_at"))
COLUMNS: dict[type, Columns[Any]] = {
    c.row: c for c in (USERS, ORGANIZATIONS, PROJECTS, ISSUES, LABELS, COMMENTS)
}

USER_COLUMNS = USERS.all
ORGANIZATION_COLUMNS = ORGANIZATIONS.all
PROJECT_COLUMNS = PROJECTS.all
ISSUE_COLUMNS = ISSUES.all
LABEL_COLUMNS = LABELS.all
COMMENT_COLUMNS = COMMENTS.all
