"""The node types of the graph. Their objects are loader rows (loaders/rows.py), so that
access decisions see the row, and each field is declared once with the data it needs
(execution/fields.py): both executors resolve it from that declaration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from core.errors import BadUserInput, Forbidden
from domain import markdown, permissions
from domain.context import Context
from execution.connection import (
    Argument,
    Connection,
    PageSource,
    all_edges,
    connection,
    edges,
)
from execution.fields import flag, node, to_one, value
from execution.ids import NAMES, encode_id
from loaders import Loaders
from loaders._base import CountLoader, PageLoader
from loaders.accounts import NEWEST_FIRST
from loaders.comments import BY_CREATED_AT
from loaders.issues import Condition, IssueFilter, order
from loaders.labels import BY_NAME
from loaders.notifications import NEWEST_FIRST as NEWEST_NOTIFICATIONS_FIRST
from loaders.projects import project_ref
from loaders.rows import (
    CommentRow,
    IssueRow,
    LabelRow,
    OrganizationRow,
    ProjectRow,
    UserRow,
)
from loaders.timeline import OLDEST_FIRST
from resolvers.enums import (
    IssueFilters,
    IssueOrder,
    IssueState,
    MembershipRole,
    OrderDirection,
    ProjectVisibility,
)
from resolvers.notifications import (
    Notification,
    SubscriptionState,
    own,
    unread_count,
    unread_only,
    viewer_subscription,
)
from resolvers.reactions import Reactable
from resolvers.sessions import Session, own_sessions
from resolvers.timeline import (
    EVENT_TYPES,
    AssignedEvent,
    ClosedEvent,
    IssueTimelineItemType,
    LabeledEvent,
    MentionedEvent,
    RenamedTitleEvent,
    ReopenedEvent,
    TransferredEvent,
    UnassignedEvent,
    UnlabeledEvent,
    item_types,
)

if TYPE_CHECKING:
    from resolvers.webhooks import Webhook

MAX_LABEL_NAMES = 100
# Webhooks are declared in their own module, which reads the types of this one.
LazyWebhook = Annotated["Webhook", strawberry.lazy("resolvers.webhooks")]


def _global_id(context: Context, row: Any) -> str:
    return encode_id(NAMES[type(row)], row.id)


@strawberry.interface(description="An object with a global id, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID = value(
        _global_id, "The object's opaque global id.", by_viewer=False, rendered="global_id"
    )


def _issue_filter(given: IssueFilters | None, context: Context) -> IssueFilter | None:
    """The loaders' filter of a `filterBy`: the same conditions a search query makes."""
    if given is None:
        return None
    labels = given.labels
    if labels is not None and len(labels) > MAX_LABEL_NAMES:
        raise BadUserInput(
            f"At most {MAX_LABEL_NAMES} label names may be given.", argument="filterBy"
        )
    conditions: list[Condition] = []
    if given.states is not None:
        conditions.append(Condition("state", tuple(sorted({s.value for s in given.states}))))
    if given.assignee is not None:
        conditions.append(Condition("assignee", given.assignee.lower()))
    if given.unassigned is not None:
        conditions.append(Condition("unassigned", None, negated=not given.unassigned))
    if given.author is not None:
        conditions.append(Condition("author", given.author.lower()))
    if given.mentioned is not None:
        conditions.append(Condition("mentions", given.mentioned.lower()))
    conditions += [Condition("label", name) for name in sorted(set(labels or ()))]
    if given.priorities is not None:
        if any(not 0 <= p <= 4 for p in given.priorities):
            raise BadUserInput("`priorities` are 0 to 4.", argument="filterBy")
        conditions.append(Condition("priority", tuple(sorted(set(given.priorities)))))
    for kind, span in (("created", given.created), ("updated", given.updated)):
        if span is not None:
            conditions.append(Condition(kind, (span.since, span.until)))
    return IssueFilter(tuple(conditions))


def _issue_order(given: IssueOrder | None, context: Context) -> Any:
    if given is None:
        return order("CREATED_AT", False)
    return order(given.field.value, given.direction is OrderDirection.DESC)


FILTER_ISSUES = Argument(
    "filter_by", IssueFilters, "Only the issues that meet every condition given.", _issue_filter
)
ORDER_ISSUES = Argument(
    "order_by", IssueOrder, "How to order the issues; oldest first when not given.", _issue_order
)
UNREAD_ONLY = Argument("unread_only", bool, "Only the notifications not marked read.", unread_only)
ITEM_TYPES = Argument(
    "item_types",
    list[IssueTimelineItemType],
    "Only items of these types (all when not given).",
    item_types,
)


def issue_connection(
    pages: Callable[[Loaders], PageLoader[IssueRow]],
    counts: Callable[[Loaders], CountLoader],
    description: str,
) -> Any:
    """A list of issues: every one takes the same `filterBy` and `orderBy`."""
    return connection(pages, counts, description, order=ORDER_ISSUES, filters=FILTER_ISSUES)


def _email(context: Context, row: UserRow) -> Awaitable[str | None]:
    async def checked() -> str | None:
        if not await permissions.on_user(context, row, "read_email"):
            raise Forbidden("You may not read this user's email.")
        return row.email

    return checked()


@node(UserRow, Loaders.user_by_id, "A person with an account.")
class User(Node):
    login: str = strawberry.field(description="The unique handle, case-insensitive.")
    name: str = strawberry.field(description="The display name.")
    bio: str = strawberry.field(description="A short public self-description.")
    is_site_admin: bool = strawberry.field(description="May do everything on this site.")
    created_at: datetime = strawberry.field(description="When the account was created.")
    email: str | None = value(
        _email,
        "The email address: visible to the user, site admins and "
        "the admins of the user's organizations; null with FORBIDDEN otherwise.",
        reads=("email",),
    )
    organizations: Connection[Organization] = connection(
        Loaders.organizations_by_user,
        Loaders.organization_count_by_user,
        "The organizations the user belongs to.",
    )
    authored_issues: Connection[Issue] = issue_connection(
        Loaders.issues_by_author,
        Loaders.issue_count_by_author,
        "Issues the user opened (oldest first by default) that the viewer may see.",
    )
    assigned_issues: Connection[Issue] = issue_connection(
        Loaders.issues_by_assignee,
        Loaders.issue_count_by_assignee,
        "Issues assigned to the user (oldest first by default) that the viewer may see.",
    )
    sessions: Connection[Session] = connection(
        Loaders.sessions_by_user,
        Loaders.session_count_by_user,
        "The user's live sessions, newest first: only the user sees them (for anyone "
        "else, site admins included, the list is empty).",
        order=NEWEST_FIRST,
        parent=own_sessions,
    )
    notifications: Connection[Notification] = connection(
        Loaders.notifications_by_user,
        Loaders.notification_count_by_user,
        "What happened that concerns the user, newest first, of the issues the user may "
        "read: only the user sees them (for anyone else the list is empty).",
        order=NEWEST_NOTIFICATIONS_FIRST,
        filters=UNREAD_ONLY,
        parent=own,
    )
    unread_notification_count: int | None = value(
        unread_count, "How many of the user's notifications are unread; null for anyone else."
    )


@strawberry.type(description="A member of an organization, with the member's role.")
class OrganizationMemberEdge:
    cursor: str = strawberry.field(description="An opaque cursor for `after` or `before`.")
    node: User = strawberry.field(description="The member.")
    role: MembershipRole = value(lambda context, edge: edge.row.role, "The member's role.")


@strawberry.type(description="A page of an organization's members.")
class OrganizationMemberConnection(Connection[User]):
    edges: list[OrganizationMemberEdge] = value(  # type: ignore[assignment]
        edges, "The members of this page, with their roles and cursors.", batch=all_edges
    )


def _role(context: Context, row: OrganizationRow) -> str | None:
    return context.viewer.roles.get(row.id)


def _on_organization(context: Context, row: OrganizationRow, action: str) -> bool:
    return permissions.on_organization(context, row.id, action)


def _project_by_key(context: Context, row: OrganizationRow, key: str) -> Awaitable[Any]:
    return context.loaders.project_by_key.load(project_ref(row.id, key))  # type: ignore[no-any-return]


@node(OrganizationRow, Loaders.organization_by_id, "A team that owns projects.")
class Organization(Node):
    slug: str = strawberry.field(description="The unique, URL-safe handle.")
    name: str = strawberry.field(description="The display name.")
    description: str = strawberry.field(description="What the organization does.")
    created_at: datetime = strawberry.field(description="When it was created.")
    viewer_role: MembershipRole | None = value(
        _role, "The viewer's role in the organization; null if none."
    )
    viewer_can_administer: bool = flag(
        _on_organization, "manage_members", "The viewer may add, remove and change members."
    )
    viewer_can_manage_owners: bool = flag(
        _on_organization, "manage_owners", "The viewer may grant and remove the OWNER role."
    )
    viewer_can_create_projects: bool = flag(
        _on_organization, "create_project", "The viewer may create projects here."
    )
    viewer_can_manage_webhooks: bool = flag(
        _on_organization, "manage_webhooks", "The viewer may see and manage webhooks here."
    )
    project: Project | None = value(
        _project_by_key, "The project with this key, if the viewer may see it."
    )
    projects: Connection[Project] = connection(
        Loaders.projects_by_organization,
        Loaders.project_count_by_organization,
        "The projects the viewer may see, oldest first.",
    )
    issues: Connection[Issue] = issue_connection(
        Loaders.issues_by_organization,
        Loaders.issue_count_by_organization,
        "The issues of every project of the organization the viewer may see, filtered and "
        "ordered (oldest first by default).",
    )
    members: OrganizationMemberConnection = connection(
        Loaders.members_by_organization,
        Loaders.member_count,
        "The members, with their roles.",
        unwrap=lambda member: member.user,
    )
    webhooks: Connection[LazyWebhook] = connection(
        Loaders.webhooks_by_organization,
        Loaders.webhook_count_by_organization,
        "The organization's webhooks, its projects' included, oldest first: for those who "
        "may manage them (for anyone else the list is empty).",
    )


def _issue_by_number(context: Context, row: ProjectRow, number: int) -> Any:
    if not 0 < number < 2**31:
        return None
    return context.loaders.issue_by_number.load((row.id, number))


@node(
    ProjectRow,
    Loaders.project_by_id,
    "A body of work in an organization, holding issues and labels.",
)
class Project(Node):
    key: str = strawberry.field(description="A short code, unique in its organization.")
    name: str = strawberry.field(description="The display name.")
    description: str = strawberry.field(description="What the project is for.")
    visibility: ProjectVisibility = strawberry.field(description="Who may read it.")
    archived_at: datetime | None = strawberry.field(description="When it was archived.")
    created_at: datetime = strawberry.field(description="When it was created.")
    viewer_can_update: bool = flag(
        permissions.on_project, "update", "The viewer may update and archive the project."
    )
    viewer_can_create_issues: bool = flag(
        permissions.on_project, "create_issue", "The viewer may open issues in the project."
    )
    viewer_can_manage_labels: bool = flag(
        permissions.on_project, "manage_labels", "The viewer may create, update and delete labels."
    )
    organization: Organization = to_one(
        Loaders.organization_by_id, "organization_id", "The organization the project belongs to."
    )
    issue: Issue | None = value(_issue_by_number, "The issue with this number, if there is one.")
    issues: Connection[Issue] = issue_connection(
        Loaders.issues_by_project,
        Loaders.issue_count_by_project,
        "The project's issues, filtered and ordered (oldest first by default).",
    )
    labels: Connection[Label] = connection(
        Loaders.labels_by_project,
        Loaders.label_count_by_project,
        "The project's labels, by name.",
        order=BY_NAME,
    )
    webhooks: Connection[LazyWebhook] = connection(
        Loaders.webhooks_by_project,
        Loaders.webhook_count_by_project,
        "The webhooks of this project alone, oldest first: for those who may manage them "
        "(for anyone else the list is empty).",
    )


async def _project_and_slug(context: Context, project_id: int) -> tuple[ProjectRow, str]:
    """A visible row's project and its organization's slug (two batched loads a level)."""
    project = await permissions.project_of(context, project_id)
    organization = await context.loaders.organization_by_id.load(project.organization_id)
    assert organization is not None
    return project, organization.slug


async def _identifier(context: Context, row: IssueRow) -> str:
    project = await permissions.project_of(context, row.project_id)
    return f"{project.key}-{row.number}"


async def _issue_url(context: Context, row: IssueRow) -> str:
    project, slug = await _project_and_slug(context, row.project_id)
    origin = context.services.settings.public_url.rstrip("/")
    return f"{origin}/{slug}/{project.key}/issues/{row.number}"


async def _html(context: Context, kind: str, row: Any, project_id: int) -> str:
    """A row's stored bodyHTML, or (none stored) its body rendered once per process."""
    html = row.body_html
    if html is None:
        project, slug = await _project_and_slug(context, project_id)
        path = f"/{slug}/{project.key}"
        html = markdown.RENDERED.get((kind, row.id, row.updated_at, path), row.body, path)
    return markdown.absolute(html, context.services.settings.public_url)


async def _issue_html(context: Context, row: IssueRow) -> str:
    return await _html(context, "Issue", row, row.project_id)


async def _comment_html(context: Context, row: CommentRow) -> str:
    project_id = 0  # the project matters only where no HTML is stored
    if row.body_html is None:
        issue = await context.loaders.issue_by_id.load(row.issue_id)
        assert issue is not None, "a visible comment's issue is visible"
        project_id = issue.project_id
    return await _html(context, "Comment", row, project_id)


@node(IssueRow, Loaders.issue_by_id, "A task, bug or idea tracked in a project.")
class Issue(Node, Reactable):
    number: int = strawberry.field(description="The issue's number, 1, 2, 3 … per project.")
    title: str = strawberry.field(description="A one-line summary.")
    body: str = strawberry.field(description="The description, in Markdown.")
    body_html: str = value(
        _issue_html,
        "The description rendered to HTML (CommonMark with tables, strikethrough and task "
        "lists), sanitized: no script, no event handler, no javascript: link. `#123` links "
        "to that issue of the project, `@login` to that user.",
        reads=("body", "body_html"),
        name="bodyHTML",
    )
    identifier: str = value(_identifier, "The project's key and the number: WEB-123.")
    url: str = value(_issue_url, "Where people open the issue: PUBLIC_URL/org/KEY/issues/123.")
    state: IssueState = strawberry.field(description="Open or closed.")
    priority: int = strawberry.field(description="0 (none) to 4 (urgent).")
    created_at: datetime = strawberry.field(description="When it was opened.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    closed_at: datetime | None = strawberry.field(description="When it was closed.")
    viewer_can_update: bool = flag(
        permissions.on_issue, "edit", "The viewer may edit the title and body."
    )
    viewer_can_triage: bool = flag(
        permissions.on_issue, "update", "The viewer may change priority, assignee and labels."
    )
    viewer_can_close: bool = flag(
        permissions.on_issue, "close", "The viewer may close and reopen the issue."
    )
    viewer_can_comment: bool = flag(
        permissions.on_issue, "comment", "The viewer may comment on the issue."
    )
    viewer_can_delete: bool = flag(
        permissions.on_issue, "delete", "The viewer may delete the issue."
    )
    viewer_can_transfer: bool = flag(
        permissions.on_issue,
        "transfer",
        "The viewer may move the issue to another project of its organization.",
    )
    viewer_subscription: SubscriptionState | None = value(
        viewer_subscription,
        "Whether the viewer follows the issue (subscribeToIssue; its author and commenters "
        "do unless they mute it); null when anonymous.",
    )
    project: Project = to_one(
        Loaders.project_by_id, "project_id", "The project the issue belongs to."
    )
    author: User = to_one(Loaders.user_by_id, "author_id", "Who opened the issue.")
    assignee: User | None = to_one(
        Loaders.user_by_id, "assignee_id", "Who the issue is assigned to, if anyone."
    )
    labels: Connection[Label] = connection(
        Loaders.labels_by_issue, Loaders.label_count_by_issue, "The issue's labels."
    )
    comments: Connection[Comment] = connection(
        Loaders.comments_by_issue,
        Loaders.comment_count_by_issue,
        "The issue's comments, oldest first.",
        order=BY_CREATED_AT,
    )
    timeline_items: Connection[IssueTimelineItem] = connection(
        Loaders.timeline_by_issue,
        Loaders.timeline_count_by_issue,
        "What happened to the issue, oldest first: its comments and events, read from the "
        "log every change writes.",
        order=OLDEST_FIRST,
        filters=ITEM_TYPES,
        unwrap=lambda entry: entry.node,
    )


@node(LabelRow, Loaders.label_by_id, "A named, colored tag for a project's issues.")
class Label(Node):
    name: str = strawberry.field(description="The name, unique in its project.")
    color: str = strawberry.field(description="The color as #rrggbb.")
    created_at: datetime = strawberry.field(description="When it was created.")
    viewer_can_update: bool = flag(
        permissions.on_label, "manage_labels", "The viewer may update the label."
    )
    viewer_can_delete: bool = flag(
        permissions.on_label, "manage_labels", "The viewer may delete the label."
    )
    project: Project = to_one(
        Loaders.project_by_id, "project_id", "The project the label belongs to."
    )


@node(CommentRow, Loaders.comment_by_id, "A message on an issue.")
class Comment(Node, Reactable):
    body: str = strawberry.field(description="The message, in Markdown.")
    body_html: str = value(
        _comment_html,
        "The message rendered to HTML and sanitized, as Issue.bodyHTML.",
        reads=("body", "body_html", "updated_at"),
        name="bodyHTML",
    )
    created_at: datetime = strawberry.field(description="When it was written.")
    updated_at: datetime = strawberry.field(description="When it was last edited.")
    viewer_can_update: bool = flag(
        permissions.on_comment, "update", "The viewer may edit the comment."
    )
    viewer_can_delete: bool = flag(
        permissions.on_comment, "delete", "The viewer may delete the comment."
    )
    author: User = to_one(Loaders.user_by_id, "author_id", "Who wrote the comment.")
    issue: Issue = to_one(Loaders.issue_by_id, "issue_id", "The issue the comment is on.")


IssueTimelineItem = Annotated[
    Comment
    | ClosedEvent
    | ReopenedEvent
    | RenamedTitleEvent
    | LabeledEvent
    | UnlabeledEvent
    | AssignedEvent
    | UnassignedEvent
    | TransferredEvent
    | MentionedEvent,
    strawberry.union("IssueTimelineItem", description="An item of an issue's timeline."),
]
NODE_TYPES = (User, Organization, Project, Issue, Label, Comment)
OTHER_TYPES = EVENT_TYPES
__all__ = [
    "NODE_TYPES",
    "OTHER_TYPES",
    "Comment",
    "Issue",
    "Label",
    "Node",
    "Organization",
    "PageSource",
    "Project",
    "User",
]
