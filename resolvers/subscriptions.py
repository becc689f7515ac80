"""Live updates: issueEvents(projectId:), issueCommentAdded(issueId:) and the viewer's
notificationAdded.

Subscribing needs the right to read the project. Each event is checked against the access
rules again when it is delivered (see domain/events.py) and resolved with fresh loaders.
Every event carries a cursor: subscribing again with `after:` it replays what came after
from the log, then goes live (RESYNC first when the log no longer keeps that far back)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any

import strawberry

from domain import permissions
from domain.context import Context
from domain.events import Delivery, SharedReads
from execution.fields import to_one, value
from execution.ids import encode_id
from execution.pagination import decode_event_cursor, encode_event_cursor
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
    TRANSFERRED = "issue_transferred"
    DELETED = "issue_deleted"
    RESYNC = "RESYNC"


REPLAYED_KINDS = tuple(k.value for k in IssueEventKind if k is not IssueEventKind.RESYNC)


class EventSource:
    """An event as IssueEvent's fields read it; RESYNC has no row, so nulls throughout.
    `shared` and `shared_key` let the subscribers it goes to share its execution
    (execution/fanout.py)."""

    __slots__ = (
        "actor_id",
        "comment_id",
        "created_at",
        "id",
        "issue_id",
        "kind",
        "label_ids",
        "shared",
        "shared_key",
    )

    def __init__(self, row: EventRow | None, shared: SharedReads | None = None) -> None:
        self.kind = row.kind if row is not None else IssueEventKind.RESYNC.value
        self.id = str(row.id) if row is not None else None
        self.created_at = row.created_at if row is not None else None
        self.issue_id = row.issue_id if row is not None else None
        self.actor_id = row.actor_id if row is not None else None
        self.comment_id = row.comment_id if row is not None else None
        self.label_ids = row.label_ids if row is not None else []
        self.shared = shared.results if shared is not None and row is not None else None
        self.shared_key = row.id if row is not None else None

    @property
    def cursor(self) -> str | None:
        """Made when a selection reads it: once for every subscriber who shares it."""
        if self.shared_key is None or self.created_at is None:
            return None
        return encode_event_cursor(self.shared_key, self.created_at)


def _issue_id(context: Context, event: EventSource) -> str | None:
    return encode_id("Issue", event.issue_id) if event.issue_id is not None else None


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
        description="The event's id, increasing in commit order within its project."
    )
    created_at: datetime | None = strawberry.field(description="When it happened.")
    cursor: str | None = strawberry.field(
        description="Its place in the log: subscribe with `after:` it to resume after it."
    )
    issue: Issue | None = to_one(
        Loaders.issue_by_id,
        "issue_id",
        "The issue, as it is now (null once DELETED, or when it moved where the viewer may "
        "not see it).",
    )
    issue_id: strawberry.ID | None = value(
        _issue_id, "The issue's global id, also when `issue` is null (DELETED).", by_viewer=False
    )
    actor: User | None = to_one(Loaders.user_by_id, "actor_id", "Who did it.")
    comment: Comment | None = to_one(
        Loaders.comment_by_id, "comment_id", "The comment added (COMMENTED)."
    )
    labels: list[Label] = value(
        _labels, "The labels added or removed (LABELED, UNLABELED).", by_viewer=False
    )


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


class NotificationSource:
    """A notificationAdded message as NotificationAdded's fields read it, shared as an
    EventSource is."""

    __slots__ = ("kind", "notification", "shared", "shared_key")

    def __init__(self, delivery: Delivery) -> None:
        found = delivery.notification
        self.notification = found
        self.kind = (
            NotificationAddedKind.RESYNC if found is None else NotificationAddedKind.NOTIFICATION
        )
        shared = delivery.shared
        self.shared = shared.results if shared is not None and found is not None else None
        self.shared_key = found.id if found is not None else None


def _source(delivery: Delivery) -> EventSource:
    return EventSource(delivery.event, delivery.shared)


async def _stream(
    info: Ctx,
    project_id: int,
    issue_id: int | None,
    kinds: Sequence[str] | None,
    after: str | None,
    *,
    live: bool,
) -> AsyncGenerator[EventSource, None]:
    """The events; `live` when the subscriber's later events may be written without this
    generator (execution/fanout.py, Live), as an open-ended stream's may."""
    context = info.context
    hub = context.services.hub
    assert hub is not None, "subscriptions need the event hub"
    position = decode_event_cursor(after) if after is not None else None
    kept_since = datetime.now(UTC) - timedelta(seconds=context.services.settings.event_retention)
    sink = context.live.sink(_source) if live and context.live is not None else None
    stream: Any
    if position is not None and position[1] >= kept_since:
        replayed = kinds or REPLAYED_KINDS
        stream = hub.resume(project_id, context.viewer, position[0], replayed, issue_id, sink)
    else:
        stream = hub.subscribe(project_id, context.viewer, issue_id, kinds, sink)
    async with stream as deliveries:
        await context.session.close()  # hold no connection while waiting
        if position is not None and position[1] < kept_since:
            yield EventSource(None)  # the log no longer reaches back there
        delivery: Delivery
        async for delivery in deliveries:
            try:
                await context.renew_for_event(delivery)
                yield _source(delivery)
            finally:  # resumed once the event is resolved and sent (or cancelled)
                delivery.done()


AFTER = "Resume after this event's `cursor`: first the events since, from the log, then live."


@strawberry.type(description="Live updates, over WebSocket (graphql-transport-ws).")
class Subscription:
    @strawberry.subscription(
        graphql_type=IssueEvent, description="Every change to the issues of a project."
    )
    async def issue_events(
        self,
        info: Ctx,
        project_id: strawberry.ID,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
    ) -> AsyncGenerator[EventSource, None]:
        project = await find(info.context, project_id, ProjectRow)
        async for event in _stream(info, project.id, None, None, after, live=True):
            yield event

    @strawberry.subscription(
        graphql_type=IssueEvent,
        description="Comments added to an issue (and RESYNC). The issue's deletion "
        "(DELETED) or move to another project (TRANSFERRED) is delivered last: subscribe "
        "again to follow a moved issue.",
    )
    async def issue_comment_added(
        self,
        info: Ctx,
        issue_id: strawberry.ID,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
    ) -> AsyncGenerator[EventSource, None]:
        issue = await find(info.context, issue_id, IssueRow)
        project = await permissions.project_of(info.context, issue.project_id)
        last = (IssueEventKind.DELETED.value, IssueEventKind.TRANSFERRED.value)
        kinds = ("COMMENTED", *last)
        async for event in _stream(info, project.id, issue.id, kinds, after, live=False):
            yield event
            if event.kind in last:
                return

    @strawberry.subscription(
        graphql_type=NotificationAdded,
        description="The viewer's notifications as they are made (signed-in viewers only); "
        "each is delivered only while the viewer may read its issue.",
    )
    async def notification_added(self, info: Ctx) -> AsyncGenerator[NotificationSource, None]:
        context = info.context
        signed_in(context)
        hub = context.services.hub
        assert hub is not None, "subscriptions need the event hub"
        async with hub.notifications(context.viewer) as inbox:
            await context.session.close()  # hold no connection while waiting
            async for delivery in inbox:
                try:
                    await context.renew_for_event(delivery)
                    yield NotificationSource(delivery)
                finally:
                    delivery.done()
