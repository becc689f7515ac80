"""deleteIssue and transferIssue.

An issue moved to another project of its organization keeps its row, so its global id (of
its row's id) still names it; it takes the next number of the project it joins, its labels
become that project's labels of the same names (the others come off), and an
`issue_transferred` event of the project it joined, naming the project it left
(`from_project_id`), is announced to both projects (and replayed to both: see
loaders/events.py). A deleted issue goes with its comments, labels and
earlier events; an `issue_deleted` event, which outlives it, tells its project's
subscribers.
"""

from __future__ import annotations

import strawberry

from domain import markdown
from domain.context import Context
from domain.following import follow_up
from execution.ids import decode_id
from loaders.rows import IssueRow, ProjectRow
from loaders.writes import issues as writes
from resolvers.mutations._base import Ctx, committed, find, signed_in
from resolvers.mutations.issues import IssuePayload, issue_and_project, issue_payload, may
from resolvers.mutations.organizations import CMID
from resolvers.mutations.projects import archived
from resolvers.payloads import UserError, user_error
from resolvers.types import Project

TRANSFERRED = "issue_transferred"
DELETED = "issue_deleted"


@strawberry.input(description="An issue to delete, with its comments.")
class DeleteIssueInput:
    issue_id: strawberry.ID = strawberry.field(description="The issue.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of deleteIssue.")
class DeleteIssuePayload:
    deleted_issue_id: strawberry.ID | None = strawberry.field(
        description="The id of the deleted issue."
    )
    project: ProjectRow | None = strawberry.field(
        graphql_type=Project | None, description="The project it was in."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.input(description="An issue to move to another project of its organization.")
class TransferIssueInput:
    issue_id: strawberry.ID = strawberry.field(description="The issue.")
    project_id: strawberry.ID = strawberry.field(
        description="The project to move it to, in the same organization."
    )
    client_mutation_id: str | None = CMID


async def _path(context: Context, project: ProjectRow) -> str:
    organization = await context.loaders.organization_by_id.load(project.organization_id)
    assert organization is not None
    return f"/{organization.slug}/{project.key}"


def _deleted(
    global_id: str | None,
    project: ProjectRow | None,
    errors: list[UserError],
    cmid: str | None,
) -> DeleteIssuePayload:
    return DeleteIssuePayload(
        deleted_issue_id=strawberry.ID(global_id) if global_id else None,
        project=project,
        user_errors=errors,
        client_mutation_id=cmid,
    )


@strawberry.type
class IssueMoveMutations:
    @strawberry.mutation(
        description="Delete an issue with its comments (organization ADMIN or OWNER)."
    )
    async def delete_issue(self, info: Ctx, input: DeleteIssueInput) -> DeleteIssuePayload | None:
        context = info.context
        me = signed_in(context)
        issue, project = await issue_and_project(context, input.issue_id)
        may(context, project, issue, "delete")
        errors = archived(project)
        if errors:
            return _deleted(None, None, errors, input.client_mutation_id)

        async def work() -> None:
            if await writes.delete(context.session, issue.id) is not None:
                await writes.record_event(context.session, DELETED, issue, me.id)

        await committed(context, work)
        fresh = await context.loaders.project_by_id.load(project.id)
        return _deleted(input.issue_id, fresh, [], input.client_mutation_id)

    @strawberry.mutation(
        description="Move an issue to another project of its organization (organization "
        "ADMIN or OWNER): it takes the next number there, keeps its id, comments and the "
        "labels the project has by name."
    )
    async def transfer_issue(self, info: Ctx, input: TransferIssueInput) -> IssuePayload | None:
        context = info.context
        me = signed_in(context)
        issue, source = await issue_and_project(context, input.issue_id)
        may(context, source, issue, "transfer")
        decode_id(input.project_id, expected="Project")
        target = await find(context, input.project_id, ProjectRow)
        problem = _target_problem(source, target)
        errors = archived(source) or archived(target) or ([problem] if problem else [])
        if errors:
            return issue_payload(None, errors, input.client_mutation_id)
        body_html = markdown.render(issue.body, await _path(context, target))

        async def work() -> IssueRow:
            row = await writes.transfer(context.session, issue.id, target.id, body_html)
            event = await writes.record_event(
                context.session,
                TRANSFERRED,
                row,
                me.id,
                payload={"from_project_id": source.id},
                also_to=[source.id],
            )
            # its author and followers hear of it, if they may read where it went
            await follow_up(context.session, row, me.id, event_id=event, followers=True)
            return row

        return issue_payload(await committed(context, work), [], input.client_mutation_id)


def _target_problem(source: ProjectRow, target: ProjectRow) -> UserError | None:
    if target.organization_id != source.organization_id:
        return user_error(
            "projectId", "INVALID", "An issue moves only to a project of its organization."
        )
    if target.id == source.id:
        return user_error("projectId", "INVALID", "The issue is already in this project.")
    return None
