"""Per-request DataLoaders: every read the API makes goes through one of these.

Loaders return plain rows and know nothing of GraphQL or the viewer; what a request may
see reaches them as a `Scope`, which their SQL applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from operator import attrgetter

from aiodataloader import DataLoader

from app.db import Session
from loaders import comments, issues, labels, organizations, projects, users
from loaders._base import CountLoader, PageLoader, RowLoader
from loaders._keyset import BY_ID, PUBLIC, Order, Page, PageRequest, Scope
from loaders.rows import (
    COMMENTS,
    ISSUES,
    LABELS,
    ORGANIZATIONS,
    PROJECTS,
    USERS,
    CommentRow,
    IssueRow,
    LabelRow,
    MemberRow,
    OrganizationRow,
    Projection,
    ProjectRow,
    UserRow,
)

__all__ = ["BY_ID", "PUBLIC", "Loaders", "Order", "Page", "PageRequest", "Scope"]


_id = attrgetter("id")  # the key of a row by id


class Loaders:
    """All loaders of one request, sharing its database session and scope."""

    def __init__(self, session: Session, scope: Scope = PUBLIC) -> None:
        s = session
        self.session = session
        self.scope = scope
        # Which optional columns the statements read; the compiled executor narrows it
        # to what its operation selects (see `project`).
        self.projection = Projection()
        rows = partial(RowLoader, projection=self.projection)
        pages = partial(PageLoader, projection=self.projection)
        self.user_by_id: RowLoader[int, UserRow] = rows(s, users.SELECT_USERS_BY_ID, USERS, _id)
        self.user_by_login: RowLoader[str, UserRow] = rows(
            s, users.SELECT_USERS_BY_LOGIN, USERS, lambda r: r.login.lower()
        )
        self.members_by_organization: PageLoader[MemberRow] = pages(
            s, users.MEMBERS_BY_ORGANIZATION, scope, self.user_by_id, lambda r: r.user
        )
        self.organization_ids_by_user: RowLoader[int, tuple[int, tuple[int, ...]]] = rows(
            s, users.SELECT_ORGANIZATION_IDS_BY_USER, users.organization_ids_row, lambda r: r[0]
        )
        self.member_count = CountLoader(s, users.MEMBERS_BY_ORGANIZATION, scope)

        self.organization_by_id: RowLoader[int, OrganizationRow] = rows(
            s, organizations.SELECT_ORGANIZATIONS_BY_ID, ORGANIZATIONS, _id
        )
        self.organization_by_slug: RowLoader[str, OrganizationRow] = rows(
            s,
            organizations.SELECT_ORGANIZATIONS_BY_SLUG,
            ORGANIZATIONS,
            lambda r: r.slug,
        )
        self.organizations: PageLoader[OrganizationRow] = pages(
            s, organizations.ALL_ORGANIZATIONS, scope
        )
        self.organization_count = CountLoader(s, organizations.ALL_ORGANIZATIONS, scope)
        self.organizations_by_user: PageLoader[OrganizationRow] = pages(
            s, organizations.ORGANIZATIONS_BY_USER, scope
        )
        self.organization_count_by_user = CountLoader(s, organizations.ORGANIZATIONS_BY_USER, scope)

        self.project_by_id: RowLoader[int, ProjectRow] = rows(
            s, projects.SELECT_PROJECTS_BY_ID, PROJECTS, _id, scope=scope
        )
        self.project_by_key: RowLoader[str, ProjectRow] = rows(
            s,
            projects.SELECT_PROJECTS_BY_KEY,
            PROJECTS,
            lambda r: projects.project_ref(r.organization_id, r.key),
            scope=scope,
        )
        self.projects_by_organization: PageLoader[ProjectRow] = pages(
            s, projects.PROJECTS_BY_ORGANIZATION, scope, self.project_by_id
        )
        self.project_count_by_organization = CountLoader(
            s, projects.PROJECTS_BY_ORGANIZATION, scope
        )

        self.issue_by_id: RowLoader[int, IssueRow] = rows(
            s, issues.SELECT_ISSUES_BY_ID, ISSUES, _id, scope=scope
        )
        self.issue_by_number: RowLoader[tuple[int, int], IssueRow] = rows(
            s,
            issues.SELECT_ISSUES_BY_NUMBER,
            ISSUES,
            lambda r: (r.project_id, r.number),
            arguments=lambda keys: ([k[0] for k in keys], [k[1] for k in keys]),
        )
        self.issues_by_project: PageLoader[IssueRow] = pages(
            s, issues.ISSUES_BY_PROJECT, scope, self.issue_by_id
        )
        self.issue_count_by_project = CountLoader(s, issues.ISSUES_BY_PROJECT, scope)
        self.issues_by_author: PageLoader[IssueRow] = pages(
            s, issues.ISSUES_BY_AUTHOR, scope, self.issue_by_id
        )
        self.issue_count_by_author = CountLoader(s, issues.ISSUES_BY_AUTHOR, scope)
        self.issues_by_assignee: PageLoader[IssueRow] = pages(
            s, issues.ISSUES_BY_ASSIGNEE, scope, self.issue_by_id
        )
        self.issue_count_by_assignee = CountLoader(s, issues.ISSUES_BY_ASSIGNEE, scope)

        self.label_by_id: RowLoader[int, LabelRow] = rows(
            s, labels.SELECT_LABELS_BY_ID, LABELS, _id, scope=scope
        )
        self.labels_by_project: PageLoader[LabelRow] = pages(
            s, labels.LABELS_BY_PROJECT, scope, self.label_by_id
        )
        self.label_count_by_project = CountLoader(s, labels.LABELS_BY_PROJECT, scope)
        self.labels_by_issue: PageLoader[LabelRow] = pages(
            s, labels.LABELS_BY_ISSUE, scope, self.label_by_id
        )
        self.label_count_by_issue = CountLoader(s, labels.LABELS_BY_ISSUE, scope)

        self.comment_by_id: RowLoader[int, CommentRow] = rows(
            s, comments.SELECT_COMMENTS_BY_ID, COMMENTS, _id, scope=scope
        )
        self.comments_by_issue: PageLoader[CommentRow] = pages(
            s, comments.COMMENTS_BY_ISSUE, scope, self.comment_by_id
        )
        self.comment_count_by_issue = CountLoader(s, comments.COMMENTS_BY_ISSUE, scope)

    def project(self, wanted: Mapping[type, frozenset[str]] | None) -> None:
        """Read only the optional columns in `wanted` from now on (None: all of them).
        Rows already loaded under another projection are forgotten."""
        if wanted != self.projection.wanted:
            self.clear_all()
            self.projection.wanted = wanted

    def clear_all(self, scope: Scope | None = None) -> None:
        """Forget everything loaded so far: after a write, reads must see it. A new scope
        applies when the write changed what the viewer may see (their memberships)."""
        if scope is not None:
            self.scope = scope
        for loader in vars(self).values():
            if isinstance(loader, DataLoader):
                loader.clear_all()
                if scope is not None and getattr(loader, "_scope", None) is not None:
                    setattr(loader, "_scope", scope)  # noqa: B010  # every scoped loader has it
