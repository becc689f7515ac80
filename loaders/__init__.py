"""Per-request DataLoaders: every read the API makes goes through one of these.

Loaders return plain rows and know nothing of GraphQL or the viewer; what a request may
see reaches them as a `Scope`, which their SQL applies.
"""

from __future__ import annotations

from aiodataloader import DataLoader

from app.db import Session
from loaders import comments, issues, labels, organizations, projects, users
from loaders._base import CountLoader, PageLoader, RowLoader
from loaders._keyset import BY_ID, PUBLIC, Order, Page, PageRequest, Scope
from loaders.rows import (
    CommentRow,
    IssueRow,
    LabelRow,
    MemberRow,
    OrganizationRow,
    ProjectRow,
    UserRow,
)

__all__ = ["BY_ID", "PUBLIC", "Loaders", "Order", "Page", "PageRequest", "Scope"]


def _id(row: UserRow | OrganizationRow | ProjectRow | IssueRow | LabelRow | CommentRow) -> int:
    return row.id


class Loaders:
    """All loaders of one request, sharing its database session and scope."""

    def __init__(self, session: Session, scope: Scope = PUBLIC) -> None:
        s = session
        self.session = session
        self.scope = scope
        self.user_by_id: RowLoader[int, UserRow] = RowLoader(
            s, users.SELECT_USERS_BY_ID, users.user_row, _id
        )
        self.user_by_login: RowLoader[str, UserRow] = RowLoader(
            s, users.SELECT_USERS_BY_LOGIN, users.user_row, lambda r: r.login.lower()
        )
        self.members_by_organization: PageLoader[MemberRow] = PageLoader(
            s, users.MEMBERS_BY_ORGANIZATION, scope, self.user_by_id, lambda r: r.user
        )
        self.organization_ids_by_user: RowLoader[int, tuple[int, tuple[int, ...]]] = RowLoader(
            s, users.SELECT_ORGANIZATION_IDS_BY_USER, users.organization_ids_row, lambda r: r[0]
        )
        self.member_count = CountLoader(s, users.MEMBERS_BY_ORGANIZATION, scope)

        self.organization_by_id: RowLoader[int, OrganizationRow] = RowLoader(
            s, organizations.SELECT_ORGANIZATIONS_BY_ID, organizations.organization_row, _id
        )
        self.organization_by_slug: RowLoader[str, OrganizationRow] = RowLoader(
            s,
            organizations.SELECT_ORGANIZATIONS_BY_SLUG,
            organizations.organization_row,
            lambda r: r.slug,
        )
        self.organizations: PageLoader[OrganizationRow] = PageLoader(
            s, organizations.ALL_ORGANIZATIONS, scope
        )
        self.organization_count = CountLoader(s, organizations.ALL_ORGANIZATIONS, scope)
        self.organizations_by_user: PageLoader[OrganizationRow] = PageLoader(
            s, organizations.ORGANIZATIONS_BY_USER, scope
        )
        self.organization_count_by_user = CountLoader(s, organizations.ORGANIZATIONS_BY_USER, scope)

        self.project_by_id: RowLoader[int, ProjectRow] = RowLoader(
            s, projects.SELECT_PROJECTS_BY_ID, projects.project_row, _id, scope=scope
        )
        self.project_by_key: RowLoader[str, ProjectRow] = RowLoader(
            s,
            projects.SELECT_PROJECTS_BY_KEY,
            projects.project_row,
            lambda r: projects.project_ref(r.organization_id, r.key),
            scope=scope,
        )
        self.projects_by_organization: PageLoader[ProjectRow] = PageLoader(
            s, projects.PROJECTS_BY_ORGANIZATION, scope, self.project_by_id
        )
        self.project_count_by_organization = CountLoader(
            s, projects.PROJECTS_BY_ORGANIZATION, scope
        )

        self.issue_by_id: RowLoader[int, IssueRow] = RowLoader(
            s, issues.SELECT_ISSUES_BY_ID, issues.issue_row, _id, scope=scope
        )
        self.issue_by_number: RowLoader[tuple[int, int], IssueRow] = RowLoader(
            s,
            issues.SELECT_ISSUES_BY_NUMBER,
            issues.issue_row,
            lambda r: (r.project_id, r.number),
            arguments=lambda keys: ([k[0] for k in keys], [k[1] for k in keys]),
        )
        self.issues_by_project: PageLoader[IssueRow] = PageLoader(
            s, issues.ISSUES_BY_PROJECT, scope, self.issue_by_id
        )
        self.issue_count_by_project = CountLoader(s, issues.ISSUES_BY_PROJECT, scope)
        self.issues_by_author: PageLoader[IssueRow] = PageLoader(
            s, issues.ISSUES_BY_AUTHOR, scope, self.issue_by_id
        )
        self.issue_count_by_author = CountLoader(s, issues.ISSUES_BY_AUTHOR, scope)
        self.issues_by_assignee: PageLoader[IssueRow] = PageLoader(
            s, issues.ISSUES_BY_ASSIGNEE, scope, self.issue_by_id
        )
        self.issue_count_by_assignee = CountLoader(s, issues.ISSUES_BY_ASSIGNEE, scope)

        self.label_by_id: RowLoader[int, LabelRow] = RowLoader(
            s, labels.SELECT_LABELS_BY_ID, labels.label_row, _id, scope=scope
        )
        self.labels_by_project: PageLoader[LabelRow] = PageLoader(
            s, labels.LABELS_BY_PROJECT, scope, self.label_by_id
        )
        self.label_count_by_project = CountLoader(s, labels.LABELS_BY_PROJECT, scope)
        self.labels_by_issue: PageLoader[LabelRow] = PageLoader(
            s, labels.LABELS_BY_ISSUE, scope, self.label_by_id
        )
        self.label_count_by_issue = CountLoader(s, labels.LABELS_BY_ISSUE, scope)

        self.comment_by_id: RowLoader[int, CommentRow] = RowLoader(
            s, comments.SELECT_COMMENTS_BY_ID, comments.comment_row, _id, scope=scope
        )
        self.comments_by_issue: PageLoader[CommentRow] = PageLoader(
            s, comments.COMMENTS_BY_ISSUE, scope, self.comment_by_id
        )
        self.comment_count_by_issue = CountLoader(s, comments.COMMENTS_BY_ISSUE, scope)

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
