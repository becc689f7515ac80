"""Live updates: issueEvents(projectId:) and issueCommentAdded(issueId:).

Subscribing needs the right to read the project. Each event is checked against the access
rules again when it is delivered (see domain/events.py) and resolved with fresh loaders."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum

import strawberry

from domain import permissions as _access
from domain.events import Delivery, EventRow
from resolvers.mutations._base import find
from resolvers.types import Comment, Ctx, Issue, Label, User


@strawberry.enum(description="What happened to an issue.")
class IssueEventKind(Enum):
    OPENED = "OPENED"
    UPDATED = "UPDATED"
    CLOSED = "CLOSED"
    REOPENED = "REOPENED"
    LABELED = "LABELED"
    UNLABELED = "UNLABELED"
    COMMENTED = "COMMENTED"
    RESYNC = "RESYNC"


@strawberry.type(
    description="A change to an issue, as it happened. RESYNC (with no issue) "
    "means events may have been missed: fetch what you show again."
)
class IssueEvent:
    row: strawberry.Private[EventRow | None]
    kind: IssueEventKind = strawberry.field(description="What happened.")

    @strawberry.field(description="The event's id, increasing in commit order per process.")
    def id(self) -> strawberry.ID | None:
        return strawberry.ID(str(self.row.id)) if self.row else None

    @strawberry.field(description="When it happened.")
    def created_at(self) -> datetime | None:
        return self.row.created_at if self.row else None

    @strawberry.field(description="The issue, as it is now.")
    async def issue(self, info: Ctx) -> Issue | None:
        if self.row is None:
            return None
        row = await info.context.loaders.issue_by_id.load(self.row.issue_id)
        return Issue.from_row(row) if row else None

    @strawberry.field(description="Who did it.")
    async def actor(self, info: Ctx) -> User | None:
        if self.row is None or self.row.actor_id is None:
            return None
        row = await info.context.loaders.user_by_id.load(self.row.actor_id)
        return User.from_row(row) if row else None

    @strawberry.field(description="The comment added (COMMENTED).")
    async def comment(self, info: Ctx) -> Comment | None:
        if self.row is None or self.row.comment_id is None:
            return None
        row = await info.context.loaders.comment_by_id.load(self.row.comment_id)
        return Comment.from_row(row) if row else None

    @strawberry.field(description="The labels added or removed (LABELED, UNLABELED).")
    async def labels(self, info: Ctx) -> list[Label]:
        if self.row is None:
            return []
        rows = await info.context.loaders.label_by_id.load_many(self.row.label_ids)
        return [Label.from_row(r) for r in rows if r is not None]


async def _stream(
    info: Ctx, project_id: int, issue_id: int | None, kinds: set[str] | None
) -> AsyncGenerator[IssueEvent, None]:
    context = info.context
    hub = context.services.hub
    assert hub is not None, "subscriptions need the event hub"
    async with hub.subscribe(project_id, context.viewer, issue_id) as inbox:
        await context.session.close()  # hold no connection while waiting
        delivery: Delivery
        async for delivery in inbox:
            event = delivery.event
            if event is not None and kinds is not None and event.kind not in kinds:
                delivery.done()
                continue
            try:
                await context.renew_for_event(delivery)
                kind = IssueEventKind(event.kind) if event else IssueEventKind.RESYNC
                yield IssueEvent(row=event, kind=kind)
            finally:  # resumed once the event is resolved and sent (or cancelled)
                delivery.done()


@strawberry.type(description="Live updates, over WebSocket (graphql-transport-ws).")
class Subscription:
    @strawberry.subscription(description="Every change to the issues of a project.")
    async def issue_events(
        self, info: Ctx, project_id: strawberry.ID
    ) -> AsyncGenerator[IssueEvent, None]:
        project = await find(
            info.context, project_id, "Project", info.context.loaders.project_by_id
        )
        async for event in _stream(info, project.id, None, None):
            yield event

    @strawberry.subscription(description="Comments added to an issue (and RESYNC).")
    async def issue_comment_added(
        self, info: Ctx, issue_id: strawberry.ID
    ) -> AsyncGenerator[IssueEvent, None]:
        issue = await find(info.context, issue_id, "Issue", info.context.loaders.issue_by_id)
        project = await _access.project_of(info.context, issue.project_id)
        async for event in _stream(info, project.id, issue.id, {"COMMENTED"}):
            yield event
