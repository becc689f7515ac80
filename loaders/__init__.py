"""Per-request DataLoaders: every read the API makes goes through one of these.

Loaders return plain rows and know nothing of GraphQL or the viewer; what a request may
see reaches them as a `Scope`, which their SQL applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, TypeVar

from aiodataloader import DataLoader

from core.db import Session
from loaders import (
    accounts,
    comments,
    issues,
    labels,
    notifications,
    organizations,
    projects,
    reactions,
    timeline,
    users,
    webhooks,
)
from loaders._base import CountLoader, PageLoader, RowLoader, by_id
from loaders._keyset import BY_ID, PUBLIC, Order, Page, PageRequest, PageSpec, Scope
from loaders.rendered import Entry, Rendering, json_sql, writable, write_lists
from loaders.rows import (
    COMMENTS,
    ISSUES,
    LABELS,
    ORGANIZATIONS,
    PROJECTS,
    USERS,
    WEBHOOK_DELIVERIES,
    WEBHOOKS,
    CommentRow,
    IssueRow,
    Join,
    LabelRow,
    MemberRow,
    NotificationRow,
    OrganizationRow,
    Projection,
    ProjectRow,
    Rendered,
    SessionRow,
    TimelineEntry,
    UserRow,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookRow,
)

__all__ = ["BY_ID", "PUBLIC", "Loaders", "Order", "Page", "PageRequest", "Scope", "using"]

T = TypeVar("T")


_id = by_id


class Loaders:
    """All loaders of one request, sharing its database session and scope."""

    def __init__(self, session: Session, scope: Scope = PUBLIC, shared: bool = False) -> None:
        """`shared`: several tasks use these loaders at once (loaders/_base.py)."""
        self.session = session
        self.scope = scope
        self.shared = shared
        # Which optional columns the statements read; the compiled executor narrows it
        # to what its operation selects (see `project`).
        self.projection = Projection()
        self._joins: Mapping[type, frozenset[tuple[str, Any]]] = {}
        self._renders: tuple[Rendering, ...] = ()
        self._pages_asked: Mapping[Entry, PageRequest] = {}
        # the texts of each rendering the request's statements write, by row id
        self.rendered: dict[Rendering, dict[int, str]] = {}
        try:  # looked up once for all the request's loaders
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # made outside the event loop: each loader finds it
            self._loop = None

    def share(self) -> None:
        """Let several tasks await the same loads from now on, those already made included:
        each caller then awaits its own shield of a load (see loaders/_base.py)."""
        self.shared = True
        for loader in vars(self).values():
            if isinstance(loader, DataLoader):
                loader.shared = True  # type: ignore[attr-defined]  # each of ours has it

    # Each loader is made when first used: a request uses a few of them.

    def _rows(self, sql: str, rows: Any, key_of: Any, **options: Any) -> RowLoader[Any, Any]:
        loader: RowLoader[Any, Any] = RowLoader(
            self.session, sql, rows, key_of, projection=self.projection, loop=self._loop, **options
        )
        loader.shared = self.shared
        return loader

    def _pages(
        self, spec: PageSpec[Any], primes: Any = None, unwrap: Any = None
    ) -> PageLoader[Any]:
        loader = PageLoader(
            self.session, spec, self.scope, primes, unwrap, self.projection, self._loop
        )
        loader.shared = self.shared
        return loader

    def _count(self, spec: PageSpec[Any]) -> CountLoader:
        loader = CountLoader(self.session, spec, self.scope, self._loop)
        loader.shared = self.shared
        return loader

    @cached_property
    def user_by_id(self) -> RowLoader[int, UserRow]:
        return self._rows(users.SELECT_USERS_BY_ID, USERS, _id)

    @cached_property
    def user_by_login(self) -> RowLoader[str, UserRow]:
        return self._rows(users.SELECT_USERS_BY_LOGIN, USERS, lambda r: r.login.lower())

    @cached_property
    def members_by_organization(self) -> PageLoader[MemberRow]:
        return self._pages(users.MEMBERS_BY_ORGANIZATION, self.user_by_id, lambda r: r.user)

    @cached_property
    def organization_ids_by_user(self) -> RowLoader[int, tuple[int, tuple[int, ...]]]:
        return self._rows(
            users.SELECT_ORGANIZATION_IDS_BY_USER, users.organization_ids_row, lambda r: r[0]
        )

    @cached_property
    def member_count(self) -> CountLoader:
        return self._count(users.MEMBERS_BY_ORGANIZATION)

    @cached_property
    def sessions_by_user(self) -> PageLoader[SessionRow]:
        return self._pages(accounts.SESSIONS_BY_USER)

    @cached_property
    def session_count_by_user(self) -> CountLoader:
        return self._count(accounts.SESSIONS_BY_USER)

    @cached_property
    def organization_by_id(self) -> RowLoader[int, OrganizationRow]:
        return self._rows(organizations.SELECT_ORGANIZATIONS_BY_ID, ORGANIZATIONS, _id)

    @cached_property
    def organization_by_slug(self) -> RowLoader[str, OrganizationRow]:
        return self._rows(
            organizations.SELECT_ORGANIZATIONS_BY_SLUG, ORGANIZATIONS, lambda r: r.slug
        )

    @cached_property
    def organizations(self) -> PageLoader[OrganizationRow]:
        return self._pages(organizations.ALL_ORGANIZATIONS)

    @cached_property
    def organization_count(self) -> CountLoader:
        return self._count(organizations.ALL_ORGANIZATIONS)

    @cached_property
    def organizations_by_user(self) -> PageLoader[OrganizationRow]:
        return self._pages(organizations.ORGANIZATIONS_BY_USER)

    @cached_property
    def organization_count_by_user(self) -> CountLoader:
        return self._count(organizations.ORGANIZATIONS_BY_USER)

    @cached_property
    def project_by_id(self) -> RowLoader[int, ProjectRow]:
        return self._rows(projects.SELECT_PROJECTS_BY_ID, PROJECTS, _id, scope=self.scope)

    @cached_property
    def project_by_key(self) -> RowLoader[str, ProjectRow]:
        return self._rows(
            projects.SELECT_PROJECTS_BY_KEY,
            PROJECTS,
            lambda r: projects.project_ref(r.organization_id, r.key),
            scope=self.scope,
        )

    @cached_property
    def projects_by_organization(self) -> PageLoader[ProjectRow]:
        return self._pages(projects.PROJECTS_BY_ORGANIZATION, self.project_by_id)

    @cached_property
    def project_count_by_organization(self) -> CountLoader:
        return self._count(projects.PROJECTS_BY_ORGANIZATION)

    @cached_property
    def issue_by_id(self) -> RowLoader[int, IssueRow]:
        return self._rows(issues.SELECT_ISSUES_BY_ID, ISSUES, _id, scope=self.scope)

    @cached_property
    def issue_by_number(self) -> RowLoader[tuple[int, int], IssueRow]:
        return self._rows(
            issues.SELECT_ISSUES_BY_NUMBER,
            ISSUES,
            lambda r: (r.project_id, r.number),
            arguments=lambda keys: ([k[0] for k in keys], [k[1] for k in keys]),
        )

    @cached_property
    def issues_by_project(self) -> PageLoader[IssueRow]:
        return self._pages(issues.ISSUES_BY_PROJECT, self.issue_by_id)

    @cached_property
    def issue_count_by_project(self) -> CountLoader:
        return self._count(issues.ISSUES_BY_PROJECT)

    @cached_property
    def issues_by_author(self) -> PageLoader[IssueRow]:
        return self._pages(issues.ISSUES_BY_AUTHOR, self.issue_by_id)

    @cached_property
    def issue_count_by_author(self) -> CountLoader:
        return self._count(issues.ISSUES_BY_AUTHOR)

    @cached_property
    def issues_by_assignee(self) -> PageLoader[IssueRow]:
        return self._pages(issues.ISSUES_BY_ASSIGNEE, self.issue_by_id)

    @cached_property
    def issue_count_by_assignee(self) -> CountLoader:
        return self._count(issues.ISSUES_BY_ASSIGNEE)

    @cached_property
    def issues_by_organization(self) -> PageLoader[IssueRow]:
        return self._pages(issues.ISSUES_BY_ORGANIZATION, self.issue_by_id)

    @cached_property
    def issue_count_by_organization(self) -> CountLoader:
        return self._count(issues.ISSUES_BY_ORGANIZATION)

    @cached_property
    def search_issues(self) -> PageLoader[issues.SearchHit]:
        return self._pages(issues.SEARCH, self.issue_by_id, lambda hit: hit.issue)

    @cached_property
    def search_issue_count(self) -> CountLoader:
        return self._count(issues.SEARCH)

    @cached_property
    def label_by_id(self) -> RowLoader[int, LabelRow]:
        return self._rows(labels.SELECT_LABELS_BY_ID, LABELS, _id, scope=self.scope)

    @cached_property
    def labels_by_project(self) -> PageLoader[LabelRow]:
        return self._pages(labels.LABELS_BY_PROJECT, self.label_by_id)

    @cached_property
    def label_count_by_project(self) -> CountLoader:
        return self._count(labels.LABELS_BY_PROJECT)

    @cached_property
    def labels_by_issue(self) -> PageLoader[LabelRow]:
        return self._pages(labels.LABELS_BY_ISSUE, self.label_by_id)

    @cached_property
    def label_count_by_issue(self) -> CountLoader:
        return self._count(labels.LABELS_BY_ISSUE)

    @cached_property
    def comment_by_id(self) -> RowLoader[int, CommentRow]:
        return self._rows(comments.SELECT_COMMENTS_BY_ID, COMMENTS, _id, scope=self.scope)

    @cached_property
    def comments_by_issue(self) -> PageLoader[CommentRow]:
        return self._pages(comments.COMMENTS_BY_ISSUE, self.comment_by_id)

    @cached_property
    def comment_count_by_issue(self) -> CountLoader:
        return self._count(comments.COMMENTS_BY_ISSUE)

    @cached_property
    def notifications_by_user(self) -> PageLoader[NotificationRow]:
        return self._pages(notifications.NOTIFICATIONS_BY_USER)

    @cached_property
    def notification_count_by_user(self) -> CountLoader:
        return self._count(notifications.NOTIFICATIONS_BY_USER)

    @cached_property
    def unread_notifications_by_user(self) -> RowLoader[int, tuple[int, int]]:
        return self._rows(
            notifications.SELECT_UNREAD_COUNTS, notifications.unread_row, lambda r: r[0]
        )

    @cached_property
    def subscription_by_issue(self) -> RowLoader[tuple[int, int], tuple[int, int, bool]]:
        return self._rows(
            notifications.SELECT_SUBSCRIPTIONS,
            notifications.subscription_row,
            lambda r: (r[0], r[1]),
            arguments=notifications.subscription_arguments,
        )

    @cached_property
    def reactions_by_issue(self) -> RowLoader[tuple[int, int], reactions.ReactionGroupsRow]:
        return self._reactions(reactions.SELECT_ISSUE_GROUPS)

    @cached_property
    def reactions_by_comment(self) -> RowLoader[tuple[int, int], reactions.ReactionGroupsRow]:
        return self._reactions(reactions.SELECT_COMMENT_GROUPS)

    def _reactions(self, sql: str) -> RowLoader[tuple[int, int], reactions.ReactionGroupsRow]:
        return self._rows(
            sql, reactions.groups_row, reactions.groups_key, arguments=reactions.groups_arguments
        )

    @cached_property
    def timeline_by_issue(self) -> PageLoader[TimelineEntry]:
        return self._pages(timeline.TIMELINE_BY_ISSUE)

    @cached_property
    def timeline_count_by_issue(self) -> CountLoader:
        return self._count(timeline.TIMELINE_BY_ISSUE)

    @cached_property
    def webhook_by_id(self) -> RowLoader[int, WebhookRow]:
        return self._rows(
            webhooks.SELECT_WEBHOOKS_BY_ID,
            WEBHOOKS,
            _id,
            arguments=lambda keys: webhooks.arguments(self.scope, list(keys)),
        )

    @cached_property
    def webhooks_by_organization(self) -> PageLoader[WebhookRow]:
        return self._pages(webhooks.WEBHOOKS_BY_ORGANIZATION, self.webhook_by_id)

    @cached_property
    def webhook_count_by_organization(self) -> CountLoader:
        return self._count(webhooks.WEBHOOKS_BY_ORGANIZATION)

    @cached_property
    def webhooks_by_project(self) -> PageLoader[WebhookRow]:
        return self._pages(webhooks.WEBHOOKS_BY_PROJECT, self.webhook_by_id)

    @cached_property
    def webhook_count_by_project(self) -> CountLoader:
        return self._count(webhooks.WEBHOOKS_BY_PROJECT)

    @cached_property
    def webhook_delivery_by_id(self) -> RowLoader[int, WebhookDeliveryRow]:
        return self._rows(
            webhooks.SELECT_DELIVERIES_BY_ID,
            WEBHOOK_DELIVERIES,
            _id,
            arguments=lambda keys: webhooks.arguments(self.scope, list(keys)),
        )

    @cached_property
    def deliveries_by_webhook(self) -> PageLoader[WebhookDeliveryRow]:
        return self._pages(webhooks.DELIVERIES_BY_WEBHOOK, self.webhook_delivery_by_id)

    @cached_property
    def delivery_count_by_webhook(self) -> CountLoader:
        return self._count(webhooks.DELIVERIES_BY_WEBHOOK)

    @cached_property
    def attempts_by_delivery(self) -> PageLoader[WebhookAttemptRow]:
        return self._pages(webhooks.ATTEMPTS_BY_DELIVERY)

    @cached_property
    def attempt_count_by_delivery(self) -> CountLoader:
        return self._count(webhooks.ATTEMPTS_BY_DELIVERY)

    def project(
        self,
        wanted: Mapping[type, frozenset[str]] | None,
        joins: Mapping[type, frozenset[tuple[str, Any]]] | None = None,
        renders: tuple[Rendering, ...] = (),
        pages: Mapping[Entry, PageRequest] | None = None,
    ) -> None:
        """Read only the optional columns in `wanted` from now on (None: all of them), and
        with rows of each type in `joins` the rows their columns point to, for the by-id
        loaders given (a pair (column, the loader's property of this class, such as
        `Loaders.user_by_id`)) that can take them, and write rows as the JSON of each of
        `renders` whose rows inside and lists can be written (`rendered` has their texts;
        `pages` has the page request of each list, by its entry). Rows already loaded
        under another projection are forgotten."""
        joins = joins or {}
        pages = pages or {}
        if (
            wanted != self.projection.wanted
            or joins != self._joins
            or renders != self._renders
            or pages != self._pages_asked
        ):
            self.clear_all()
            self.projection.wanted = wanted
            self._joins = joins
            self.projection.joins = {
                row: bound for row, pairs in joins.items() if (bound := self._bind(pairs))
            }
            self._renders = renders
            self._pages_asked = pages
            self.rendered = {}
            bound_renders: dict[type, list[Rendered]] = {}
            for rendering in renders:
                found = self._render(rendering, pages)
                if found is not None:
                    bound_renders.setdefault(rendering.row, []).append(found)
                    self.rendered[rendering] = found.texts
            self.projection.renders = {row: tuple(r) for row, r in bound_renders.items()}

    def _render(self, rendering: Rendering, asked: Mapping[Entry, PageRequest]) -> Rendered | None:
        """`rendering` bound to this request, if its rows inside and its lists can be
        written (see loaders/rendered.py)."""
        if any(self._joinable(prop) is None for prop in rendering.inside):
            return None
        if not rendering.paged:
            return Rendered(lambda alias, params: json_sql(rendering, alias), {})
        pages = {}
        for entry, parent in rendering.lists:
            request = asked.get(entry)
            loader = using(entry.loader, self)
            if request is None or not isinstance(loader, PageLoader):
                return None
            if not writable(loader.spec, request.order, parent):
                return None
            pages[entry] = (loader.spec, request)

        def sql(alias: str, params: Any) -> str:
            return write_lists(rendering, alias, params, self.scope, pages)

        return Rendered(sql, {}, paged=True)

    def _joinable(self, prop: Any) -> RowLoader[Any, Any] | None:
        """The by-id loader a property of this class names, if other tables' statements may
        read its rows for it (join them, or write them inside their own rows' JSON)."""
        loader = using(prop, self)
        return loader if isinstance(loader, RowLoader) and loader.joinable else None

    def _bind(self, pairs: frozenset[tuple[str, Any]]) -> tuple[Join, ...]:
        found = []
        for key, prop in sorted(pairs, key=lambda pair: pair[0]):
            if (loader := self._joinable(prop)) is not None:
                assert loader.columns is not None
                found.append(Join(key, loader.columns, loader.known))
        return tuple(found)

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
        for texts in self.rendered.values():
            texts.clear()


def using(loader: Callable[[Loaders], T], loaders: Loaders) -> T:
    """The request's loader that a property of `Loaders` names, such as `Loaders.user_by_id`
    (made on first use): declarations refer to loaders by that property, not by name."""
    found: T = loader.__get__(loaders, Loaders)
    return found
