"""Live updates: issueEvents(projectId:), issueCommentAdded(issueId:) and the viewer's
notificationAdded.

Subscribing needs the right to read the project. Each event is checked against the access
rules again when it is delivered (see domain/events.py) and resolved with fresh loaders."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum

import strawberry

from domain import permissions
from domain.context import Context
from domain.events import Delivery
from execution.fields import to_one, value
from loaders import Loaders
from loaders.events import EventRow
from loaders.rows import IssueRow, LabelRow, NotificationRow, ProjectRow
from resolvers.mutations._base import Ctx, find, signed_in
from resolvers.notifications import Notification
from resolvers.types import Comment, Issue, Label, User


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


class EventSource:
    """An event as IssueEvent's fields read it; RESYNC has no row, so nulls throughout."""

    __slots__ = ("actor_id", "comment_id", "created_at", "id", "issue_id", "kind", "label_ids")

    def __init__(self, row: EventRow | None) -> None:
        self.kind = row.kind if row is not None else IssueEventKind.RESYNC.value
        self.id = str(row.id) if row is not None else None
        self.created_at = row.created_at if row is not None else None
        self.issue_id = row.issue_id if row is not None else None
        self.actor_id = row.actor_id if row is not None else None
        self.comment_id = row.comment_id if row is not None else None
        self.label_ids = row.label_ids if row is not None else []


async def _labels(context: Context, event: EventSource) -> list[LabelRow]:
    rows = await context.loaders.label_by_id.load_many(event.label_ids)
    return [r for r in rows if r is not None]


@strawberry.type(
    description="A change to an issue, as it happened. RESYNC (with no issue) "
    "means events may have been missed: fetch what you show again."
)
class IssueEvent:
    kind: IssueEventKind = strawberry.field(description="What happened.")
    id: strawberry.ID | None = strawberry.field(
        description="The event's id, increasing in commit order per process."
    )
    created_at: datetime | None = strawberry.field(description="When it happened.")
    issue: Issue | None = to_one(Loaders.issue_by_id, "issue_id", "The issue, as it is now.")
    actor: User | None = to_one(Loaders.user_by_id, "actor_id", "Who did it.")
    comment: Comment | None = to_one(
        Loaders.comment_by_id, "comment_id", "The comment added (COMMENTED)."
    )
    labels: list[Label] = value(_labels, "The labels added or removed (LABELED, UNLABELED).")


@strawberry.enum(description="What a notificationAdded message brings.")
class NotificationAddedKind(Enum):
    NOTIFICATION = "NOTIFICATION"
    RESYNC = "RESYNC"


@strawberry.type(
    description="A new notification of the viewer; RESYNC (with no notification) means "
    "some may have been missed: fetch `viewer.notifications` again."
)
class NotificationAdded:
    kind: NotificationAddedKind = strawberry.field(description="What this message brings.")
    notification: NotificationRow | None = strawberry.field(
        graphql_type=Notification | None, description="The notification (NOTIFICATION)."
    )


async def _stream(
    info: Ctx, project_id: int, issue_id: int | None, kinds: set[str] | None
) -> AsyncGenerator[EventSource, None]:
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
                yield EventSource(event)
            finally:  # resumed once the event is resolved and sent (or cancelled)
                delivery.done()


@strawberry.type(description="Live updates, over WebSocket (graphql-transport-ws).")
class Subscription:
    @strawberry.subscription(
        graphql_type=IssueEvent, description="Every change to the issues of a project."
    )
    async def issue_events(
        self, info: Ctx, project_id: strawberry.ID
    ) -> AsyncGenerator[EventSource, None]:
        project = await find(info.context, project_id, ProjectRow)
        async for event in _stream(info, project.id, None, None):
            yield event

    @strawberry.subscription(
        graphql_type=IssueEvent, description="Comments added to an issue (and RESYNC)."
    )
    async def issue_comment_added(
        self, info: Ctx, issue_id: strawberry.ID
    ) -> AsyncGenerator[EventSource, None]:
        issue = await find(info.context, issue_id, IssueRow)
        project = await permissions.project_of(info.context, issue.project_id)
        async for event in _stream(info, project.id, issue.id, {"COMMENTED"}):
            yield event

    @strawberry.subscription(
        graphql_type=NotificationAdded,
        description="The viewer's notifications as they are made (signed-in viewers only); "
        "each is delivered only while the viewer may read its issue.",
    )
    async def notification_added(self, info: Ctx) -> AsyncGenerator[NotificationAdded, None]:
        context = info.context
        signed_in(context)
        hub = context.services.hub
        assert hub is not None, "subscriptions need the event hub"
        async with hub.notifications(context.viewer) as inbox:
            await context.session.close()  # hold no connection while waiting
            async for delivery in inbox:
                try:
                    await context.renew_for_event(delivery)
                    found = delivery.notification
                    yield NotificationAdded(
                        kind=NotificationAddedKind.NOTIFICATION
                        if found is not None
                        else NotificationAddedKind.RESYNC,
                        notification=found,
                    )
                finally:
                    delivery.done()
