"""The events of an issue's timeline (`Issue.timelineItems`, with its comments): each a type
of its own, as on GitHub, made of the event log's rows (loaders/timeline.py)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from domain.context import Context
from execution.fields import to_one, typed
from loaders import Loaders
from loaders import timeline as rows

if TYPE_CHECKING:
    from resolvers.types import Comment, Label, Project, User

_User = Annotated["User", strawberry.lazy("resolvers.types")]
_Label = Annotated["Label", strawberry.lazy("resolvers.types")]
_Project = Annotated["Project", strawberry.lazy("resolvers.types")]
_Comment = Annotated["Comment", strawberry.lazy("resolvers.types")]


@strawberry.enum(description="The kinds of items of an issue's timeline.")
class IssueTimelineItemType(Enum):
    ISSUE_COMMENT = "ISSUE_COMMENT"
    CLOSED_EVENT = "CLOSED_EVENT"
    REOPENED_EVENT = "REOPENED_EVENT"
    RENAMED_TITLE_EVENT = "RENAMED_TITLE_EVENT"
    LABELED_EVENT = "LABELED_EVENT"
    UNLABELED_EVENT = "UNLABELED_EVENT"
    ASSIGNED_EVENT = "ASSIGNED_EVENT"
    UNASSIGNED_EVENT = "UNASSIGNED_EVENT"
    TRANSFERRED_EVENT = "TRANSFERRED_EVENT"
    MENTIONED_EVENT = "MENTIONED_EVENT"


assert {t.value for t in IssueTimelineItemType} == set(rows.ITEM_TYPES)


def item_types(
    given: list[IssueTimelineItemType] | None, context: Context
) -> tuple[str, ...] | None:
    """The loaders' filter of `itemTypes` (None: every type)."""
    return None if given is None else tuple(sorted({t.value for t in given}))


@strawberry.type(description="The fields every timeline event has.")
class _Event:
    actor: _User | None = to_one(
        Loaders.user_by_id, "actor_id", "Who did it; null if the account is gone."
    )
    created_at: datetime = strawberry.field(description="When it happened.")


@typed(rows.ClosedEventRow, "The issue was closed.")
class ClosedEvent(_Event):
    pass


@typed(rows.ReopenedEventRow, "The issue was reopened.")
class ReopenedEvent(_Event):
    pass


@typed(rows.RenamedTitleEventRow, "The issue's title was changed.")
class RenamedTitleEvent(_Event):
    previous_title: str = strawberry.field(description="The title before.")
    current_title: str = strawberry.field(description="The title after.")


@typed(rows.LabeledEventRow, "A label was attached to the issue.")
class LabeledEvent(_Event):
    label: _Label | None = to_one(
        Loaders.label_by_id, "ref_id", "The label; null if it was deleted since."
    )


@typed(rows.UnlabeledEventRow, "A label was taken off the issue.")
class UnlabeledEvent(_Event):
    label: _Label | None = to_one(
        Loaders.label_by_id, "ref_id", "The label; null if it was deleted since."
    )


@typed(rows.AssignedEventRow, "The issue was assigned to someone.")
class AssignedEvent(_Event):
    assignee: _User | None = to_one(
        Loaders.user_by_id, "ref_id", "Who it was assigned to; null if the account is gone."
    )


@typed(rows.UnassignedEventRow, "Someone was unassigned from the issue.")
class UnassignedEvent(_Event):
    assignee: _User | None = to_one(
        Loaders.user_by_id, "ref_id", "Who was unassigned; null if the account is gone."
    )


@typed(rows.TransferredEventRow, "The issue was moved here from another project.")
class TransferredEvent(_Event):
    from_project: _Project | None = to_one(
        Loaders.project_by_id,
        "ref_id",
        "The project it came from; null if it is gone or the viewer may not see it.",
    )


@typed(rows.MentionedEventRow, "Someone was mentioned (@login) in the issue or a comment.")
class MentionedEvent(_Event):
    user: _User | None = to_one(
        Loaders.user_by_id, "ref_id", "Who was mentioned; null if the account is gone."
    )
    comment: _Comment | None = to_one(
        Loaders.comment_by_id, "comment_id", "The comment with the mention; null: the body."
    )


EVENT_TYPES = (
    ClosedEvent,
    ReopenedEvent,
    RenamedTitleEvent,
    LabeledEvent,
    UnlabeledEvent,
    AssignedEvent,
    UnassignedEvent,
    TransferredEvent,
    MentionedEvent,
)
