"""markNotificationsRead and subscribeToIssue: the viewer's notifications and the issues
they follow or mute."""

from __future__ import annotations

import strawberry

from core.errors import BadUserInput
from execution.ids import decode_id
from execution.pagination import MAX_NODES
from loaders.rows import IssueRow, UserRow
from loaders.writes import follow
from resolvers.mutations._base import Ctx, committed, find, signed_in
from resolvers.mutations.organizations import CMID
from resolvers.notifications import NOTIFICATION
from resolvers.payloads import UserError, user_error
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
