"""The node types of the graph. Each wraps a loader row (private `row`), so that access
decisions see the row, and asks the per-request loaders for everything it links to."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from functools import partial
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.types import Info

from core.errors import BadUserInput, Forbidden
from domain import permissions as _access
from domain.context import Context
from execution.connection import Connection, PageInfo, page_info
from execution.ids import encode_id
from execution.pagination import PAGE_ARGUMENTS_DOC, page_request
from loaders import BY_ID, PageRequest
from loaders._base import CountLoader, PageLoader
from loaders.comments import BY_CREATED_AT
from loaders.issues import IssueFilter, order
from loaders.labels import BY_NAME
from loaders.projects import project_ref
from loaders.rows import (
    CommentRow,
    IssueRow,
    LabelRow,
    MemberRow,
    OrganizationRow,
    ProjectRow,
    UserRow,
)
from resolvers.enums import (
    IssueFilters,
    IssueOrder,
    IssueOrderField,
    IssueState,
    MembershipRole,
    OrderDirection,
    ProjectVisibility,
)

T = TypeVar("T")
Ctx = Info[Context, Any]
First = Annotated[int | None, strawberry.argument(description="Page size, from the start.")]
After = Annotated[str | None, strawberry.argument(description="Items after this cursor.")]
Last = Annotated[int | None, strawberry.argument(description="Page size, from the end.")]
Before = Annotated[str | None, strawberry.argument(description="Items before this cursor.")]


async def connect(
    pages: PageLoader[Any],
    counts: CountLoader,
    parent: int,
    request: PageRequest,
    wrap: Callable[[Any], T],
) -> Connection[T]:
    page = await pages.load((parent, request))
    count = partial(counts.load, (parent, request.filters))
    return Connection(page=page, order=request.order, wrap=wrap, count=count)


@strawberry.interface(description="An object with a global id, fetchable with `node(id:)`.")
class Node:
    row: strawberry.Private[Any]

    @strawberry.field(description="The object's opaque global id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(encode_id(type(self).__name__, self.row.id))


@strawberry.type(description="A person with an account.")
class User(Node):
    row: strawberry.Private[UserRow]
    login: str = strawberry.field(description="The unique handle, case-insensitive.")
    name: str = strawberry.field(description="The display name.")
    bio: str = strawberry.field(description="A short public self-description.")
    is_site_admin: bool = strawberry.field(description="May do everything on this site.")
    created_at: datetime = strawberry.field(description="When the account was created.")

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            row=row,
            login=row.login,
            name=row.name,
            bio=row.bio,
            is_site_admin=row.is_site_admin,
            created_at=row.created_at,
        )

    @strawberry.field(
        description="The email address: visible to the user, site admins and "
        "the admins of the user's organizations; null with FORBIDDEN otherwise."
    )
    async def email(self, info: Ctx) -> str | None:
        if not await _access.on_user(info.context, self.row, "read_email"):
            raise Forbidden("You may not read this user's email.")
        return self.row.email

    @strawberry.field(description="The organizations the user belongs to. " + PAGE_ARGUMENTS_DOC)
    async def organizations(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Organization]:
        loaders = info.context.loaders
        request = page_request(BY_ID, first, after, last, before)
        return await connect(
            loaders.organizations_by_user,
            loaders.organization_count_by_user,
            self.row.id,
            request,
            Organization.from_row,
        )

    @strawberry.field(description="Issues the user opened, oldest first. " + PAGE_ARGUMENTS_DOC)
    async def authored_issues(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter_by: IssueFilters | None = None,
    ) -> Connection[Issue]:
        loaders = info.context.loaders
        request = page_request(
            order("CREATED_AT", False), first, after, last, before, issue_filter(filter_by)
        )
        return await connect(
            loaders.issues_by_author,
            loaders.issue_count_by_author,
            self.row.id,
            request,
            Issue.from_row,
        )

    @strawberry.field(
        description="Issues assigned to the user, oldest first. " + PAGE_ARGUMENTS_DOC
    )
    async def assigned_issues(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter_by: IssueFilters | None = None,
    ) -> Connection[Issue]:
        loaders = info.context.loaders
        request = page_request(
            order("CREATED_AT", False), first, after, last, before, issue_filter(filter_by)
        )
        return await connect(
            loaders.issues_by_assignee,
            loaders.issue_count_by_assignee,
            self.row.id,
            request,
            Issue.from_row,
        )


@strawberry.type(description="A member of an organization, with the member's role.")
class OrganizationMemberEdge:
    cursor: str = strawberry.field(description="An opaque cursor for `after` or `before`.")
    node: User = strawberry.field(description="The member.")
    role: MembershipRole = strawberry.field(description="The member's role.")


@strawberry.type(description="A page of an organization's members.")
class OrganizationMemberConnection(Connection[User]):
    @strawberry.field(description="The members of this page, with their roles and cursors.")
    def edges(self) -> list[OrganizationMemberEdge]:
        from execution.pagination import encode_cursor

        return [
            OrganizationMemberEdge(
                cursor=encode_cursor(self.order, key),
                node=User.from_row(row.user),
                role=MembershipRole(row.role),
            )
            for row, key in zip(self.page.rows, self.page.keys, strict=True)
        ]


def _member_user(row: MemberRow) -> User:
    return User.from_row(row.user)


@strawberry.type(description="A team that owns projects.")
class Organization(Node):
    row: strawberry.Private[OrganizationRow]
    slug: str = strawberry.field(description="The unique, URL-safe handle.")
    name: str = strawberry.field(description="The display name.")
    description: str = strawberry.field(description="What the organization does.")
    created_at: datetime = strawberry.field(description="When it was created.")

    @classmethod
    def from_row(cls, row: OrganizationRow) -> Organization:
        return cls(
            row=row,
            slug=row.slug,
            name=row.name,
            description=row.description,
            created_at=row.created_at,
        )

    @strawberry.field(description="The viewer's role in the organization; null if none.")
    def viewer_role(self, info: Ctx) -> MembershipRole | None:
        role = info.context.viewer.roles.get(self.row.id)
        return MembershipRole(role) if role else None

    @strawberry.field(description="The viewer may add, remove and change members.")
    def viewer_can_administer(self, info: Ctx) -> bool:
        return _access.on_organization(info.context, self.row.id, "manage_members")

    @strawberry.field(description="The viewer may grant and remove the OWNER role.")
    def viewer_can_manage_owners(self, info: Ctx) -> bool:
        return _access.on_organization(info.context, self.row.id, "manage_owners")

    @strawberry.field(description="The viewer may create projects here.")
    def viewer_can_create_projects(self, info: Ctx) -> bool:
        return _access.on_organization(info.context, self.row.id, "create_project")

    @strawberry.field(description="The project with this key, if the viewer may see it.")
    async def project(self, info: Ctx, key: str) -> Project | None:
        row = await info.context.loaders.project_by_key.load(project_ref(self.row.id, key))
        return Project.from_row(row) if row else None

    @strawberry.field(
        description="The projects the viewer may see, oldest first. " + PAGE_ARGUMENTS_DOC
    )
    async def projects(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Project]:
        loaders = info.context.loaders
        request = page_request(BY_ID, first, after, last, before)
        return await connect(
            loaders.projects_by_organization,
            loaders.project_count_by_organization,
            self.row.id,
            request,
            Project.from_row,
        )

    @strawberry.field(description="The members, with their roles. " + PAGE_ARGUMENTS_DOC)
    async def members(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> OrganizationMemberConnection:
        loaders = info.context.loaders
        request = page_request(BY_ID, first, after, last, before)
        page = await loaders.members_by_organization.load((self.row.id, request))
        count = partial(loaders.member_count.load, (self.row.id, None))
        return OrganizationMemberConnection(
            page=page, order=request.order, wrap=_member_user, count=count
        )


@strawberry.type(description="A body of work in an organization, holding issues and labels.")
class Project(Node):
    row: strawberry.Private[ProjectRow]
    key: str = strawberry.field(description="A short code, unique in its organization.")
    name: str = strawberry.field(description="The display name.")
    description: str = strawberry.field(description="What the project is for.")
    visibility: ProjectVisibility = strawberry.field(description="Who may read it.")
    archived_at: datetime | None = strawberry.field(description="When it was archived.")
    created_at: datetime = strawberry.field(description="When it was created.")

    @classmethod
    def from_row(cls, row: ProjectRow) -> Project:
        return cls(
            row=row,
            key=row.key,
            name=row.name,
            description=row.description,
            visibility=ProjectVisibility(row.visibility),
            archived_at=row.archived_at,
            created_at=row.created_at,
        )

    @strawberry.field(description="The viewer may update and archive the project.")
    def viewer_can_update(self, info: Ctx) -> bool:
        return _access.on_project(info.context, self.row, "update")

    @strawberry.field(description="The viewer may open issues in the project.")
    def viewer_can_create_issues(self, info: Ctx) -> bool:
        return _access.on_project(info.context, self.row, "create_issue")

    @strawberry.field(description="The viewer may create, update and delete labels.")
    def viewer_can_manage_labels(self, info: Ctx) -> bool:
        return _access.on_project(info.context, self.row, "manage_labels")

    @strawberry.field(description="The organization the project belongs to.")
    async def organization(self, info: Ctx) -> Organization:
        row = await info.context.loaders.organization_by_id.load(self.row.organization_id)
        return Organization.from_row(row)

    @strawberry.field(description="The issue with this number, if there is one.")
    async def issue(self, info: Ctx, number: int) -> Issue | None:
        if not 0 < number < 2**31:
            return None
        row = await info.context.loaders.issue_by_number.load((self.row.id, number))
        return Issue.from_row(row) if row else None

    @strawberry.field(
        description="The project's issues, filtered and ordered (oldest first "
        "by default). " + PAGE_ARGUMENTS_DOC
    )
    async def issues(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter_by: IssueFilters | None = None,
        order_by: IssueOrder | None = None,
    ) -> Connection[Issue]:
        loaders = info.context.loaders
        field = order_by.field if order_by else IssueOrderField.CREATED_AT
        descending = order_by is not None and order_by.direction is OrderDirection.DESC
        request = page_request(
            order(field.value, descending), first, after, last, before, issue_filter(filter_by)
        )
        return await connect(
            loaders.issues_by_project,
            loaders.issue_count_by_project,
            self.row.id,
            request,
            Issue.from_row,
        )

    @strawberry.field(description="The project's labels, by name. " + PAGE_ARGUMENTS_DOC)
    async def labels(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Label]:
        loaders = info.context.loaders
        request = page_request(BY_NAME, first, after, last, before)
        return await connect(
            loaders.labels_by_project,
            loaders.label_count_by_project,
            self.row.id,
            request,
            Label.from_row,
        )


def issue_filter(filters: IssueFilters | None) -> Hashable:
    if filters is None:
        return None
    states = [s.value for s in filters.states] if filters.states is not None else None
    return issue_filter_of(states, filters.assignee, filters.labels)


def issue_filter_of(
    states: list[str] | None, assignee: str | None, labels: list[str] | None
) -> IssueFilter:
    """The loaders' filter from the `filterBy` argument's values (shared by both executors)."""
    if labels is not None and len(labels) > 100:
        raise BadUserInput("At most 100 label names may be given.", argument="filterBy")
    return IssueFilter(
        states=tuple(sorted(set(states))) if states is not None else None,
        assignee_login=assignee,
        label_names=tuple(sorted(set(labels))) if labels is not None else None,
    )


@strawberry.type(description="A task, bug or idea tracked in a project.")
class Issue(Node):
    row: strawberry.Private[IssueRow]
    number: int = strawberry.field(description="The issue's number, 1, 2, 3 … per project.")
    title: str = strawberry.field(description="A one-line summary.")
    body: str = strawberry.field(description="The description, in Markdown.")
    state: IssueState = strawberry.field(description="Open or closed.")
    priority: int = strawberry.field(description="0 (none) to 4 (urgent).")
    created_at: datetime = strawberry.field(description="When it was opened.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    closed_at: datetime | None = strawberry.field(description="When it was closed.")

    @classmethod
    def from_row(cls, row: IssueRow) -> Issue:
        return cls(
            row=row,
            number=row.number,
            title=row.title,
            body=row.body,
            state=IssueState(row.state),
            priority=row.priority,
            created_at=row.created_at,
            updated_at=row.updated_at,
            closed_at=row.closed_at,
        )

    @strawberry.field(description="The viewer may edit the title and body.")
    async def viewer_can_update(self, info: Ctx) -> bool:
        return await _access.on_issue(info.context, self.row, "edit")

    @strawberry.field(description="The viewer may change priority, assignee and labels.")
    async def viewer_can_triage(self, info: Ctx) -> bool:
        return await _access.on_issue(info.context, self.row, "update")

    @strawberry.field(description="The viewer may close and reopen the issue.")
    async def viewer_can_close(self, info: Ctx) -> bool:
        return await _access.on_issue(info.context, self.row, "close")

    @strawberry.field(description="The viewer may comment on the issue.")
    async def viewer_can_comment(self, info: Ctx) -> bool:
        return await _access.on_issue(info.context, self.row, "comment")

    @strawberry.field(description="The project the issue belongs to.")
    async def project(self, info: Ctx) -> Project:
        row = await info.context.loaders.project_by_id.load(self.row.project_id)
        return Project.from_row(row)

    @strawberry.field(description="Who opened the issue.")
    async def author(self, info: Ctx) -> User:
        return User.from_row(await info.context.loaders.user_by_id.load(self.row.author_id))

    @strawberry.field(description="Who the issue is assigned to, if anyone.")
    async def assignee(self, info: Ctx) -> User | None:
        if self.row.assignee_id is None:
            return None
        return User.from_row(await info.context.loaders.user_by_id.load(self.row.assignee_id))

    @strawberry.field(description="The issue's labels. " + PAGE_ARGUMENTS_DOC)
    async def labels(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Label]:
        loaders = info.context.loaders
        request = page_request(BY_ID, first, after, last, before)
        return await connect(
            loaders.labels_by_issue,
            loaders.label_count_by_issue,
            self.row.id,
            request,
            Label.from_row,
        )

    @strawberry.field(description="The issue's comments, oldest first. " + PAGE_ARGUMENTS_DOC)
    async def comments(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Comment]:
        loaders = info.context.loaders
        request = page_request(BY_CREATED_AT, first, after, last, before)
        return await connect(
            loaders.comments_by_issue,
            loaders.comment_count_by_issue,
            self.row.id,
            request,
            Comment.from_row,
        )


@strawberry.type(description="A named, colored tag for a project's issues.")
class Label(Node):
    row: strawberry.Private[LabelRow]
    name: str = strawberry.field(description="The name, unique in its project.")
    color: str = strawberry.field(description="The color as #rrggbb.")
    created_at: datetime = strawberry.field(description="When it was created.")

    @classmethod
    def from_row(cls, row: LabelRow) -> Label:
        return cls(row=row, name=row.name, color=row.color, created_at=row.created_at)

    @strawberry.field(description="The viewer may update the label.")
    async def viewer_can_update(self, info: Ctx) -> bool:
        return await _access.on_label(info.context, self.row, "manage_labels")

    @strawberry.field(description="The viewer may delete the label.")
    async def viewer_can_delete(self, info: Ctx) -> bool:
        return await _access.on_label(info.context, self.row, "manage_labels")

    @strawberry.field(description="The project the label belongs to.")
    async def project(self, info: Ctx) -> Project:
        return Project.from_row(await info.context.loaders.project_by_id.load(self.row.project_id))


@strawberry.type(description="A message on an issue.")
class Comment(Node):
    row: strawberry.Private[CommentRow]
    body: str = strawberry.field(description="The message, in Markdown.")
    created_at: datetime = strawberry.field(description="When it was written.")
    updated_at: datetime = strawberry.field(description="When it was last edited.")

    @classmethod
    def from_row(cls, row: CommentRow) -> Comment:
        return cls(row=row, body=row.body, created_at=row.created_at, updated_at=row.updated_at)

    @strawberry.field(description="The viewer may edit the comment.")
    async def viewer_can_update(self, info: Ctx) -> bool:
        return await _access.on_comment(info.context, self.row, "update")

    @strawberry.field(description="The viewer may delete the comment.")
    async def viewer_can_delete(self, info: Ctx) -> bool:
        return await _access.on_comment(info.context, self.row, "delete")

    @strawberry.field(description="Who wrote the comment.")
    async def author(self, info: Ctx) -> User:
        return User.from_row(await info.context.loaders.user_by_id.load(self.row.author_id))

    @strawberry.field(description="The issue the comment is on.")
    async def issue(self, info: Ctx) -> Issue:
        return Issue.from_row(await info.context.loaders.issue_by_id.load(self.row.issue_id))


NODE_CLASSES: dict[str, Any] = {
    cls.__name__: cls for cls in (User, Organization, Project, Issue, Label, Comment)
}
__all__ = [
    "NODE_CLASSES",
    "Comment",
    "Issue",
    "Label",
    "Node",
    "Organization",
    "PageInfo",
    "Project",
    "User",
    "page_info",
]
