"""createIssue, updateIssue, closeIssue, reopenIssue, addLabelsToIssue,
removeLabelsFromIssue, addComment, updateComment, deleteComment.

Each change to an issue also writes an event to the outbox in the same transaction; the
subscriptions deliver it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from core.errors import BadUserInput
from domain import markdown
from domain import permissions as _access
from domain.context import Context
from domain.following import follow_up
from execution.ids import decode_id
from loaders.rows import CommentRow, IssueRow, ProjectRow, UserRow
from loaders.writes import issues as writes
from resolvers.mutations._base import (
    MAX_BODY,
    MAX_TITLE,
    Ctx,
    allow,
    committed,
    create_once,
    find,
    problems,
    signed_in,
    text,
)
from resolvers.mutations.organizations import CMID
from resolvers.mutations.projects import archived
from resolvers.payloads import UserError, user_error
from resolvers.types import Comment, Issue

MAX_LABELS = 100
CONFLICT = "It was changed since `expectedUpdatedAt`: reload it and apply the change again."


@strawberry.input(description="A new issue.")
class CreateIssueInput:
    project_id: strawberry.ID = strawberry.field(description="The project.")
    title: str = strawberry.field(description="A one-line summary.")
    body: str = strawberry.field(default="", description="The description, in Markdown.")
    priority: int = strawberry.field(default=2, description="0 (none) to 4 (urgent).")
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Who to assign (a member of the organization); needs triage rights.",
    )
    label_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Labels of the project to attach; needs triage rights."
    )
    client_mutation_id: str | None = CMID


@strawberry.input(description="Changes to an issue; omitted fields stay as they are.")
class UpdateIssueInput:
    issue_id: strawberry.ID = strawberry.field(description="The issue.")
    title: str | None = strawberry.field(default=None, description="A new title.")
    body: str | None = strawberry.field(default=None, description="A new body.")
    priority: int | None = strawberry.field(default=None, description="A new priority, 0–4.")
    assignee_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="A new assignee; null unassigns."
    )
    expected_updated_at: datetime | None = strawberry.field(
        default=None,
        description="The updatedAt you last read: if the issue changed since, "
        "nothing is written and a CONFLICT user error says so.",
    )
    client_mutation_id: str | None = CMID


@strawberry.input(description="An issue to close or reopen.")
class IssueStateInput:
    issue_id: strawberry.ID = strawberry.field(description="The issue.")
    client_mutation_id: str | None = CMID


@strawberry.input(description="Labels to attach to or take off an issue.")
class IssueLabelsInput:
    issue_id: strawberry.ID = strawberry.field(description="The issue.")
    label_ids: list[strawberry.ID] = strawberry.field(description="Labels of its project.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of a change to an issue.")
class IssuePayload:
    issue: IssueRow | None = strawberry.field(
        graphql_type=Issue | None, description="The issue as it is now."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.input(description="A new comment.")
class AddCommentInput:
    issue_id: strawberry.ID = strawberry.field(description="The issue.")
    body: str = strawberry.field(description="The message, in Markdown.")
    client_mutation_id: str | None = CMID


@strawberry.input(description="A new body for a comment.")
class UpdateCommentInput:
    comment_id: strawberry.ID = strawberry.field(description="The comment.")
    body: str = strawberry.field(description="The new message.")
    expected_updated_at: datetime | None = strawberry.field(
        default=None, description="The updatedAt you last read; see updateIssue."
    )
    client_mutation_id: str | None = CMID


@strawberry.input(description="A comment to delete.")
class DeleteCommentInput:
    comment_id: strawberry.ID = strawberry.field(description="The comment.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of a change to a comment.")
class CommentPayload:
    comment: CommentRow | None = strawberry.field(
        graphql_type=Comment | None, description="The comment as it is now."
    )
    issue: IssueRow | None = strawberry.field(
        graphql_type=Issue | None, description="The issue it is on."
    )
    deleted_comment_id: strawberry.ID | None = strawberry.field(
        description="The id of the deleted comment (deleteComment)."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


def issue_payload(row: IssueRow | None, errors: list[UserError], cmid: str | None) -> IssuePayload:
    return IssuePayload(issue=row, user_errors=errors, client_mutation_id=cmid)


def _comment_payload(
    comment: CommentRow | None,
    issue: IssueRow | None,
    errors: list[UserError],
    cmid: str | None,
    deleted: str | None = None,
) -> CommentPayload:
    return CommentPayload(
        comment=comment,
        issue=issue,
        deleted_comment_id=strawberry.ID(deleted) if deleted else None,
        user_errors=errors,
        client_mutation_id=cmid,
    )


def _priority(value: int | None) -> UserError | None:
    if value is None or 0 <= value <= 4:
        return None
    return user_error("priority", "INVALID", "`priority` is 0 (none) to 4 (urgent).")


def _label_pks(ids: list[strawberry.ID]) -> list[int]:
    if len(ids) > MAX_LABELS:
        raise BadUserInput(f"At most {MAX_LABELS} labels at once.", argument="labelIds")
    return sorted({decode_id(i, expected="Label")[1] for i in ids})


async def _assignee(
    context: Context, global_id: str | None, project: ProjectRow
) -> tuple[int | None, UserError | None]:
    if global_id is None:
        return None, None
    user = await find(context, global_id, UserRow)
    found = await context.loaders.organization_ids_by_user.load(user.id)
    if found is None or project.organization_id not in found[1]:
        return None, user_error(
            "assigneeId",
            "NOT_MEMBER",
            "The assignee must be a member of the project's organization.",
        )
    return user.id, None


async def issue_and_project(context: Context, global_id: str) -> tuple[IssueRow, ProjectRow]:
    issue = await find(context, global_id, IssueRow)
    return issue, await _access.project_of(context, issue.project_id)


async def _rendered(context: Context, body: str, project: ProjectRow) -> str:
    """A body's HTML as stored beside it (see domain/markdown.py)."""
    organization = await context.loaders.organization_by_id.load(project.organization_id)
    assert organization is not None
    return markdown.render(body, f"/{organization.slug}/{project.key}")


def may(context: Context, project: ProjectRow, issue: IssueRow, action: str) -> None:
    policy = context.policy
    allow(
        policy.allows(policy.issue_traits(project, issue), "issue", action),
        f"You may not {action} this issue.",
    )


@strawberry.type
class IssueMutations:
    @strawberry.mutation(description="Open an issue in a project.")
    async def create_issue(self, info: Ctx, input: CreateIssueInput) -> IssuePayload | None:
        context = info.context
        me = signed_in(context)
        project = await find(context, input.project_id, ProjectRow)
        allow(
            _access.on_project(context, project, "create_issue"),
            "You may not open issues in this project.",
        )
        labels = _label_pks(input.label_ids or [])
        if input.assignee_id is not None or labels:
            draft = IssueRow(
                0,
                project.id,
                0,
                "",
                "",
                "OPEN",
                2,
                me.id,
                None,
                datetime.now(),
                datetime.now(),
                None,
                None,
            )
            may(context, project, draft, "update")
        assignee, not_member = await _assignee(context, input.assignee_id, project)
        errors = archived(project) or problems(
            text("title", input.title, minimum=1, maximum=MAX_TITLE),
            text("body", input.body, maximum=MAX_BODY),
            _priority(input.priority),
            not_member,
        )
        if errors:
            return issue_payload(None, errors, input.client_mutation_id)
        body_html = await _rendered(context, input.body, project)

        async def create() -> IssueRow:
            session = context.session
            if labels and len(await writes.labels_in_project(session, labels, project.id)) != len(
                labels
            ):
                raise BadUserInput(
                    "Every label must belong to the issue's project.", argument="labelIds"
                )
            issue = await writes.create(
                session,
                project.id,
                me.id,
                input.title.strip(),
                input.body,
                input.priority,
                assignee,
                body_html,
            )
            await writes.add_labels(session, issue.id, project.id, labels)
            event = await writes.record_event(
                session,
                "OPENED",
                issue,
                me.id,
                label_ids=labels,
                payload={"assignee_id": assignee} if assignee is not None else None,
            )
            await follow_up(
                session, issue, me.id, event_id=event, body=issue.body, assignee_id=assignee
            )
            return issue

        row = await create_once(context, "createIssue", input, create, context.loaders.issue_by_id)
        if isinstance(row, UserError):
            return issue_payload(None, [row], input.client_mutation_id)
        return issue_payload(row, [], input.client_mutation_id)

    @strawberry.mutation(
        description="Change an issue's title, body (its author or an admin), "
        "priority or assignee (an admin)."
    )
    async def update_issue(self, info: Ctx, input: UpdateIssueInput) -> IssuePayload | None:
        context = info.context
        me = signed_in(context)
        issue, project = await issue_and_project(context, input.issue_id)
        changes: dict[str, Any] = {}
        if input.title is not None:
            changes["title"] = input.title.strip()
        if input.body is not None:
            changes["body"] = input.body
        if changes:
            may(context, project, issue, "edit")
        assignee_given = input.assignee_id is not strawberry.UNSET
        if input.priority is not None or assignee_given:
            may(context, project, issue, "update")
        assignee, not_member = await _assignee(
            context, input.assignee_id if assignee_given else None, project
        )
        errors = archived(project) or problems(
            text("title", input.title, minimum=1, maximum=MAX_TITLE)
            if input.title is not None
            else None,
            text("body", input.body, maximum=MAX_BODY) if input.body is not None else None,
            _priority(input.priority),
            not_member,
        )
        if errors:
            return issue_payload(None, errors, input.client_mutation_id)
        if input.body is not None:
            changes["body_html"] = await _rendered(context, input.body, project)
        if input.priority is not None:
            changes["priority"] = input.priority
        if assignee_given:
            changes["assignee_id"] = assignee

        async def work() -> IssueRow | None:
            found = await writes.update(
                context.session, issue.id, changes, input.expected_updated_at
            )
            if found is None:
                return None
            row, title, assignee_id = found
            event = await writes.record_event(
                context.session, "UPDATED", row, me.id, payload=_changed(row, title, assignee_id)
            )
            await follow_up(
                context.session,
                row,
                me.id,
                event_id=event,
                body=input.body,
                assignee_id=row.assignee_id if row.assignee_id != assignee_id else None,
            )
            return row

        row = await committed(context, work)
        if row is None:
            return issue_payload(
                None,
                [user_error("expectedUpdatedAt", "CONFLICT", CONFLICT)],
                input.client_mutation_id,
            )
        return issue_payload(row, [], input.client_mutation_id)

    @strawberry.mutation(description="Close an issue (its author, assignee or an admin).")
    async def close_issue(self, info: Ctx, input: IssueStateInput) -> IssuePayload | None:
        return await _set_state(info.context, input, "CLOSED", "CLOSED")

    @strawberry.mutation(description="Reopen an issue (its author, assignee or an admin).")
    async def reopen_issue(self, info: Ctx, input: IssueStateInput) -> IssuePayload | None:
        return await _set_state(info.context, input, "OPEN", "REOPENED")

    @strawberry.mutation(description="Attach labels of its project to an issue.")
    async def add_labels_to_issue(self, info: Ctx, input: IssueLabelsInput) -> IssuePayload | None:
        return await _change_labels(info.context, input, adding=True)

    @strawberry.mutation(description="Take labels off an issue.")
    async def remove_labels_from_issue(
        self, info: Ctx, input: IssueLabelsInput
    ) -> IssuePayload | None:
        return await _change_labels(info.context, input, adding=False)

    @strawberry.mutation(description="Comment on an issue.")
    async def add_comment(self, info: Ctx, input: AddCommentInput) -> CommentPayload | None:
        context = info.context
        me = signed_in(context)
        issue, project = await issue_and_project(context, input.issue_id)
        may(context, project, issue, "comment")
        errors = archived(project) or problems(
            text("body", input.body, minimum=1, maximum=MAX_BODY)
        )
        if errors:
            return _comment_payload(None, None, errors, input.client_mutation_id)
        body_html = await _rendered(context, input.body, project)

        async def create() -> CommentRow:
            comment = await writes.create_comment(
                context.session, issue.id, me.id, input.body, body_html
            )
            session = context.session
            touched = await writes.touch(session, issue.id)
            event = await writes.record_event(
                session, "COMMENTED", touched, me.id, comment_id=comment.id
            )
            await follow_up(
                session,
                touched,
                me.id,
                event_id=event,
                comment_id=comment.id,
                body=comment.body,
                followers=True,
                participates=True,
            )
            return comment

        row = await create_once(context, "addComment", input, create, context.loaders.comment_by_id)
        if isinstance(row, UserError):
            return _comment_payload(None, None, [row], input.client_mutation_id)
        fresh = await context.loaders.issue_by_id.load(issue.id)
        return _comment_payload(row, fresh, [], input.client_mutation_id)

    @strawberry.mutation(description="Edit a comment (its author).")
    async def update_comment(self, info: Ctx, input: UpdateCommentInput) -> CommentPayload | None:
        context = info.context
        me = context.viewer.user
        comment = await find(context, input.comment_id, CommentRow)
        allow(
            await _access.on_comment(context, comment, "update"), "You may not edit this comment."
        )
        issue, project = await _issue_of(context, comment)
        errors = archived(project) or problems(
            text("body", input.body, minimum=1, maximum=MAX_BODY)
        )
        if errors:
            return _comment_payload(None, None, errors, input.client_mutation_id)
        body_html = await _rendered(context, input.body, project)

        async def work() -> CommentRow | None:
            row = await writes.update_comment(
                context.session, comment.id, input.body, input.expected_updated_at, body_html
            )
            if row is not None:  # new mentions in the edit notify those mentioned
                assert me is not None
                await follow_up(context.session, issue, me.id, comment_id=row.id, body=row.body)
            return row

        row = await committed(context, work)
        if row is None:
            return _comment_payload(
                None,
                None,
                [user_error("expectedUpdatedAt", "CONFLICT", CONFLICT)],
                input.client_mutation_id,
            )
        return _comment_payload(row, issue, [], input.client_mutation_id)

    @strawberry.mutation(description="Delete a comment (its author or an admin).")
    async def delete_comment(self, info: Ctx, input: DeleteCommentInput) -> CommentPayload | None:
        context = info.context
        comment = await find(context, input.comment_id, CommentRow)
        allow(
            await _access.on_comment(context, comment, "delete"), "You may not delete this comment."
        )
        issue, project = await _issue_of(context, comment)
        errors = archived(project)
        if errors:
            return _comment_payload(None, None, errors, input.client_mutation_id)

        async def work() -> None:
            await writes.delete_comment(context.session, comment.id)

        await committed(context, work)
        return _comment_payload(None, issue, [], input.client_mutation_id, deleted=input.comment_id)


def _changed(row: IssueRow, title: str, assignee_id: int | None) -> dict[str, Any]:
    """What an UPDATED event records for the timeline: the title and the assignee, before
    and after, where they changed."""
    payload: dict[str, Any] = {}
    if row.title != title:
        payload |= {"previous_title": title, "title": row.title}
    if row.assignee_id != assignee_id:
        payload |= {"previous_assignee_id": assignee_id, "assignee_id": row.assignee_id}
    return payload


async def _issue_of(context: Context, comment: CommentRow) -> tuple[IssueRow, ProjectRow]:
    issue = await context.loaders.issue_by_id.load(comment.issue_id)
    assert issue is not None, "a visible comment's issue is visible"
    return issue, await _access.project_of(context, issue.project_id)


async def _set_state(
    context: Context, input: IssueStateInput, state: str, event: str
) -> IssuePayload:
    me = signed_in(context)
    issue, project = await issue_and_project(context, input.issue_id)
    may(context, project, issue, "close")
    errors = archived(project)
    if errors:
        return issue_payload(None, errors, input.client_mutation_id)

    async def work() -> IssueRow:
        row = await writes.set_state(context.session, issue.id, state)
        if row is None:  # already in that state: nothing to do, nothing to announce
            return await writes.get(context.session, issue.id)
        found = await writes.record_event(context.session, event, row, me.id)
        await follow_up(context.session, row, me.id, event_id=found, followers=True)
        return row

    return issue_payload(await committed(context, work), [], input.client_mutation_id)


async def _change_labels(context: Context, input: IssueLabelsInput, adding: bool) -> IssuePayload:
    me = signed_in(context)
    issue, project = await issue_and_project(context, input.issue_id)
    may(context, project, issue, "update")
    labels = _label_pks(input.label_ids)
    errors = archived(project)
    if errors:
        return issue_payload(None, errors, input.client_mutation_id)

    async def work() -> IssueRow | list[UserError]:
        session = context.session
        if len(await writes.labels_in_project(session, labels, project.id)) != len(labels):
            return [
                user_error(
                    "labelIds", "NOT_FOUND", "Every label must belong to the issue's project."
                )
            ]
        changed = (
            await writes.add_labels(session, issue.id, project.id, labels)
            if adding
            else await writes.remove_labels(session, issue.id, labels)
        )
        if not changed:
            return await writes.get(session, issue.id)
        row = await writes.touch(session, issue.id)
        await writes.record_event(
            session, "LABELED" if adding else "UNLABELED", row, me.id, label_ids=changed
        )
        return row

    result = await committed(context, work)
    if isinstance(result, list):
        return issue_payload(None, result, input.client_mutation_id)
    return issue_payload(result, [], input.client_mutation_id)
