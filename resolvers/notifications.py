"""Notifications as their user sees them (`viewer.notifications`); the mutations are in
resolvers/mutations/follow.py."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from domain.context import Context
from execution.fields import to_one, typed, value
from execution.ids import encode_id
from loaders import Loaders
from loaders.rows import IssueRow, NotificationRow, UserRow

if TYPE_CHECKING:
    from resolvers.types import Comment, Issue, User

NOTIFICATION = "Notification"  # the type name in a notification's global id (not a Node)
_User = Annotated["User", strawberry.lazy("resolvers.types")]
_Issue = Annotated["Issue", strawberry.lazy("resolvers.types")]
_Comment = Annotated["Comment", strawberry.lazy("resolvers.types")]


@strawberry.enum(description="Why the user was notified.")
class NotificationReason(Enum):
    MENTIONED = "MENTIONED"
    ASSIGNED = "ASSIGNED"
    AUTHOR = "AUTHOR"
    SUBSCRIBED = "SUBSCRIBED"


def own(context: Context, row: UserRow) -> int:
    """Whose notifications a user's fields show: the user's own to the user, none (0) to
    anyone else, site admins included."""
    user = context.viewer.user
    return row.id if user is not None and user.id == row.id else 0


async def unread_count(context: Context, row: UserRow) -> int | None:
    if own(context, row) == 0:
        return None
    found = await context.loaders.unread_notifications_by_user.load(row.id)
    return found[1] if found is not None else 0


@strawberry.enum(description="Whether the viewer hears of an issue's news.")
class SubscriptionState(Enum):
    SUBSCRIBED = "SUBSCRIBED"  # notified of its comments, closing and reopening
    UNSUBSCRIBED = "UNSUBSCRIBED"  # notified only when mentioned or assigned
    IGNORED = "IGNORED"  # muted: as UNSUBSCRIBED, even for the issue's author


async def viewer_subscription(context: Context, row: IssueRow) -> SubscriptionState | None:
    user = context.viewer.user
    if user is None:
        return None
    found = await context.loaders.subscription_by_issue.load((row.id, user.id))
    if found is not None:
        return SubscriptionState.SUBSCRIBED if found[2] else SubscriptionState.IGNORED
    if row.author_id == user.id:  # an author hears of their issue unless they mute it
        return SubscriptionState.SUBSCRIBED
    return SubscriptionState.UNSUBSCRIBED


@typed(NotificationRow, "Something that happened that concerns the user.")
class Notification:
    id: strawberry.ID = value(
        lambda context, row: encode_id(NOTIFICATION, row.id),
        "The notification's opaque id, for markNotificationsRead.",
        by_viewer=False,
    )
    reason: NotificationReason = strawberry.field(description="Why it concerns the user.")
    issue: _Issue | None = to_one(
        Loaders.issue_by_id, "issue_id", "The issue; null if the viewer may no longer read it."
    )
    comment: _Comment | None = to_one(
        Loaders.comment_by_id, "comment_id", "The comment it is about, if any (and not deleted)."
    )
    actor: _User | None = to_one(Loaders.user_by_id, "actor_id", "Who did it.")
    is_unread: bool = value(
        lambda context, row: row.read_at is None, "Not marked read yet.", by_viewer=False
    )
    created_at: datetime = strawberry.field(description="When it happened.")


def unread_only(given: Any, context: Context) -> bool:
    return bool(given)
