"""Access decisions on rows, as the resolvers ask them: each finds the rows a decision
needs (an issue's project, a comment's issue) through the loaders, then asks the
request's policy, which caches the answer per set of traits."""

from __future__ import annotations

from typing import Any

from domain.context import Context
from loaders.rows import CommentRow, IssueRow, LabelRow, ProjectRow, UserRow


async def project_of(context: Context, project_id: int) -> ProjectRow:
    row: ProjectRow | None = await context.loaders.project_by_id.load(project_id)
    assert row is not None, "a visible object's project is visible"
    return row


def on_organization(context: Context, organization_id: int, action: str) -> bool:
    policy = context.policy
    return policy.allows(policy.organization_traits(organization_id), "organization", action)


def on_project(context: Context, project: ProjectRow, action: str) -> bool:
    policy = context.policy
    return policy.allows(policy.project_traits(project), "project", action)


async def on_issue(context: Context, issue: IssueRow, action: str) -> bool:
    project = await project_of(context, issue.project_id)
    policy = context.policy
    return policy.allows(policy.issue_traits(project, issue), "issue", action)


async def on_comment(context: Context, comment: CommentRow, action: str) -> bool:
    issue = await context.loaders.issue_by_id.load(comment.issue_id)
    assert issue is not None
    project = await project_of(context, issue.project_id)
    policy = context.policy
    return policy.allows(policy.comment_traits(project, comment), "comment", action)


async def on_label(context: Context, label: LabelRow, action: str) -> bool:
    return on_project(context, await project_of(context, label.project_id), action)


async def on_user(context: Context, user: UserRow, action: str) -> bool:
    policy = context.policy
    organizations: Any = ()
    if policy.administers_any_organization():
        found = await context.loaders.organization_ids_by_user.load(user.id)
        organizations = found[1] if found is not None else ()
    return policy.allows(policy.user_traits(user, organizations), "user", action)
