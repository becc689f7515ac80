"""markNotificationsRead, subscribeToIssue, addReaction and removeReaction: the viewer's
notifications, the issues they follow or mute, their reactions."""

from __future__ import annotations

from typing import Any

import strawberry

from core.errors import BadUserInput
from domain import permissions
from domain.context import Context
from execution.ids import decode_id
from execution.pagination import MAX_NODES
from loaders.rows import CommentRow, IssueRow, UserRow
from loaders.writes import follow
from resolvers.mutations._base import Ctx, committed, find, signed_in
from resolvers.mutations.organizations import CMID
from resolvers.mutations.projects import archived
from resolvers.notifications import NOTIFICATION
from resolvers.payloads import UserError, user_error
from resolvers.reactions import Reactable, ReactionContent
from resolvers.types import Issue, User


@strawberry.input(description="Notifications to mark read: `ids`, or `all: true`.")
class MarkNotificationsReadInput:
    ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description=f"These notifications (at most {MAX_NODES})."
    )
    all: bool = strawberry.field(default=False, description="Every notification of the viewer.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of markNotificationsRead.")
class MarkNotificationsReadPayload:
    marked: int = strawberry.field(description="How many unread notifications were marked.")
    viewer: UserRow | None = strawberry.field(
        graphql_type=User | None, description="The viewer, with the new unread count."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.input(description="Follow or mute an issue.")
class SubscribeToIssueInput:
    issue_id: strawberry.ID = strawberry.field(description="The issue.")
    subscribed: bool = strawberry.field(
        description="true: be notified of its comments and changes; false: mute it (only "
        "mentions and assignments notify)."
    )
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of subscribeToIssue.")
class SubscribeToIssuePayload:
    issue: IssueRow | None = strawberry.field(graphql_type=Issue | None, description="The issue.")
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.input(description="A reaction of the viewer to an issue or a comment.")
class ReactionInput:
    subject_id: strawberry.ID = strawberry.field(description="The issue or the comment.")
    content: ReactionContent = strawberry.field(description="The emoji.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of addReaction or removeReaction.")
class ReactionPayload:
    subject: Any = strawberry.field(
        graphql_type=Reactable | None, description="The issue or comment, with its reactions."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


async def _react(context: Context, input: ReactionInput, adding: bool) -> ReactionPayload:
    me = signed_in(context)
    type_name, _ = decode_id(input.subject_id)
    if type_name not in ("Issue", "Comment"):
        raise BadUserInput("Only issues and comments take reactions.", argument="subjectId")
    subject: IssueRow | CommentRow
    if type_name == "Issue":
        subject = issue = await find(context, input.subject_id, IssueRow)
    else:
        subject = await find(context, input.subject_id, CommentRow)
        found = await context.loaders.issue_by_id.load(subject.issue_id)
        assert found is not None, "a visible comment's issue is visible"
        issue = found
    errors = archived(await permissions.project_of(context, issue.project_id))
    if errors:
        return ReactionPayload(
            subject=None, user_errors=errors, client_mutation_id=input.client_mutation_id
        )
    on_issue = type_name == "Issue"

    async def work() -> None:
        await follow.react(
            context.session,
            subject.id if on_issue else None,
            None if on_issue else subject.id,
            me.id,
            input.content.value,
            adding,
        )

    await committed(context, work)
    return ReactionPayload(
        subject=subject, user_errors=[], client_mutation_id=input.client_mutation_id
    )


def _ids(given: list[strawberry.ID]) -> list[int]:
    if len(given) > MAX_NODES:
        raise BadUserInput(f"At most {MAX_NODES} ids may be given.", argument="ids")
    return sorted({decode_id(i, expected=NOTIFICATION)[1] for i in given})


@strawberry.type
class NotificationMutations:
    @strawberry.mutation(
        description="Mark the viewer's notifications read: the ones given, or all of them."
    )
    async def mark_notifications_read(
        self, info: Ctx, input: MarkNotificationsReadInput
    ) -> MarkNotificationsReadPayload:
        context = info.context
        me = signed_in(context)
        if (input.ids is None) == (not input.all):
            return MarkNotificationsReadPayload(
                marked=0,
                viewer=None,
                user_errors=[user_error("ids", "INVALID", "Give either `ids` or `all: true`.")],
                client_mutation_id=input.client_mutation_id,
            )
        ids = None if input.all else _ids(input.ids or [])

        async def work() -> int:
            return await follow.mark_read(context.session, me.id, ids)

        marked = await committed(context, work)
        return MarkNotificationsReadPayload(
            marked=marked, viewer=me, user_errors=[], client_mutation_id=input.client_mutation_id
        )

    @strawberry.mutation(
        description="Follow an issue (be notified of its comments, closing and reopening) "
        "or mute it (only mentions and assignments notify)."
    )
    async def subscribe_to_issue(
        self, info: Ctx, input: SubscribeToIssueInput
    ) -> SubscribeToIssuePayload:
        context = info.context
        me = signed_in(context)
        issue = await find(context, input.issue_id, IssueRow)

        async def work() -> None:
            await follow.subscribe(context.session, issue.id, me.id, input.subscribed)

        await committed(context, work)
        return SubscribeToIssuePayload(
            issue=issue, user_errors=[], client_mutation_id=input.client_mutation_id
        )

    @strawberry.mutation(
        description="React to an issue or a comment the viewer may read (once per content)."
    )
    async def add_reaction(self, info: Ctx, input: ReactionInput) -> ReactionPayload:
        return await _react(info.context, input, adding=True)

    @strawberry.mutation(description="Take back the viewer's reaction to an issue or a comment.")
    async def remove_reaction(self, info: Ctx, input: ReactionInput) -> ReactionPayload:
        return await _react(info.context, input, adding=False)
