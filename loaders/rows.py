"""Rows as the loaders return them: frozen, slotted, built positionally from a record.

Each `*_COLUMNS` string is the select list that matches its row's field order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

USER_COLUMNS = "u.id, u.login, u.name, u.email, u.bio, u.is_site_admin, u.created_at"
ORGANIZATION_COLUMNS = "o.id, o.slug, o.name, o.description, o.created_at"
PROJECT_COLUMNS = (
    "p.id, p.organization_id, p.key, p.name, p.description, p.visibility, p.archived_at,"
    " p.created_at"
)
ISSUE_COLUMNS = (
    "i.id, i.project_id, i.number, i.title, i.body, i.state, i.priority, i.author_id,"
    " i.assignee_id, i.created_at, i.updated_at, i.closed_at"
)
LABEL_COLUMNS = "l.id, l.project_id, l.name, l.color, l.created_at"
COMMENT_COLUMNS = "c.id, c.issue_id, c.author_id, c.body, c.created_at, c.updated_at"


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    login: str
    name: str
    email: str
    bio: str
    is_site_admin: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OrganizationRow:
    id: int
    slug: str
    name: str
    description: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ProjectRow:
    id: int
    organization_id: int
    key: str
    name: str
    description: str
    visibility: str
    archived_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IssueRow:
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


@dataclass(frozen=True, slots=True)
class LabelRow:
    id: int
    project_id: int
    name: str
    color: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CommentRow:
    id: int
    issue_id: int
    author_id: int
    body: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A user as a member of an organization: the edge of `Organization.members`."""

    user: UserRow
    role: str
    organization_id: int

    @property
    def id(self) -> int:
        return self.user.id
