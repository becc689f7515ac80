"""createProject, updateProject, archiveProject, createLabel, updateLabel, deleteLabel."""

from __future__ import annotations

import strawberry

from core.db import UniqueViolation
from domain import permissions as _access
from domain.context import Context
from loaders.rows import LabelRow, OrganizationRow, ProjectRow
from loaders.writes import projects as writes
from resolvers.enums import ProjectVisibility
from resolvers.mutations._base import (
    COLOR,
    MAX_DESCRIPTION,
    MAX_NAME,
    PROJECT_KEY,
    Ctx,
    allow,
    committed,
    create_once,
    find,
    pattern,
    problems,
    text,
)
from resolvers.mutations.organizations import CMID
from resolvers.payloads import UserError, user_error
from resolvers.types import Label, Project

MAX_LABEL = 50


@strawberry.input(description="A new project in an organization.")
class CreateProjectInput:
    organization_id: strawberry.ID = strawberry.field(description="The organization.")
    key: str = strawberry.field(description="2–10 capitals and digits, unique in the org.")
    name: str = strawberry.field(description="The display name.")
    description: str = strawberry.field(default="", description="What it is for.")
    visibility: ProjectVisibility = strawberry.field(
        default=ProjectVisibility.PRIVATE, description="Who may read it."
    )
    client_mutation_id: str | None = CMID


@strawberry.input(description="Changes to a project; omitted fields stay as they are.")
class UpdateProjectInput:
    project_id: strawberry.ID = strawberry.field(description="The project.")
    name: str | None = strawberry.field(default=None, description="A new name.")
    description: str | None = strawberry.field(default=None, description="A new description.")
    visibility: ProjectVisibility | None = strawberry.field(
        default=None, description="New visibility."
    )
    client_mutation_id: str | None = CMID


@strawberry.input(description="A project to archive: it stays readable, and takes no writes.")
class ArchiveProjectInput:
    project_id: strawberry.ID = strawberry.field(description="The project.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of a change to a project.")
class ProjectPayload:
    project: ProjectRow | None = strawberry.field(
        graphql_type=Project | None, description="The project as it is now."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.input(description="A new label in a project.")
class CreateLabelInput:
    project_id: strawberry.ID = strawberry.field(description="The project.")
    name: str = strawberry.field(description="The name, unique in the project.")
    color: str = strawberry.field(description="The color as #rrggbb.")
    client_mutation_id: str | None = CMID


@strawberry.input(description="Changes to a label; omitted fields stay as they are.")
class UpdateLabelInput:
    label_id: strawberry.ID = strawberry.field(description="The label.")
    name: str | None = strawberry.field(default=None, description="A new name.")
    color: str | None = strawberry.field(default=None, description="A new color, #rrggbb.")
    client_mutation_id: str | None = CMID


@strawberry.input(description="A label to delete; it comes off every issue.")
class DeleteLabelInput:
    label_id: strawberry.ID = strawberry.field(description="The label.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of a change to a label.")
class LabelPayload:
    label: LabelRow | None = strawberry.field(
        graphql_type=Label | None, description="The label as it is now."
    )
    deleted_label_id: strawberry.ID | None = strawberry.field(
        description="The id of the deleted label (deleteLabel)."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


def _project_payload(
    row: ProjectRow | None, errors: list[UserError], cmid: str | None
) -> ProjectPayload:
    return ProjectPayload(project=row, user_errors=errors, client_mutation_id=cmid)


def _label_payload(
    row: LabelRow | None, errors: list[UserError], cmid: str | None, deleted: str | None = None
) -> LabelPayload:
    return LabelPayload(
        label=row,
        deleted_label_id=strawberry.ID(deleted) if deleted else None,
        user_errors=errors,
        client_mutation_id=cmid,
    )


def archived(project: ProjectRow) -> list[UserError]:
    if project.archived_at is None:
        return []
    return [user_error(None, "ARCHIVED", "The project is archived and takes no changes.")]


def _label_problems(name: str | None, color: str | None) -> list[UserError]:
    return problems(
        text("name", name, minimum=1, maximum=MAX_LABEL) if name is not None else None,
        pattern("color", color, COLOR, "is a color as #rrggbb") if color is not None else None,
    )


async def _project(context: Context, global_id: str, action: str) -> ProjectRow:
    project = await find(context, global_id, ProjectRow)
    allow(
        _access.on_project(context, project, action),
        f"You may not {action.replace('_', ' ')} in this project.",
    )
    return project


@strawberry.type
class ProjectMutations:
    @strawberry.mutation(description="Create a project in an organization.")
    async def create_project(self, info: Ctx, input: CreateProjectInput) -> ProjectPayload | None:
        context = info.context
        organization = await find(context, input.organization_id, OrganizationRow)
        allow(
            _access.on_organization(context, organization.id, "create_project"),
            "You may not create projects in this organization.",
        )
        errors = problems(
            pattern("key", input.key, PROJECT_KEY, "is 2–10 capital letters and digits"),
            text("name", input.name, minimum=1, maximum=MAX_NAME),
            text("description", input.description, maximum=MAX_DESCRIPTION),
        )
        if errors:
            return _project_payload(None, errors, input.client_mutation_id)

        async def create() -> ProjectRow:
            return await writes.create(
                context.session,
                organization.id,
                input.key,
                input.name.strip(),
                input.description,
                input.visibility.value,
            )

        try:
            row = await create_once(
                context, "createProject", input, create, context.loaders.project_by_id
            )
        except UniqueViolation:
            row = user_error("key", "TAKEN", "That key is taken.")
        if isinstance(row, UserError):
            return _project_payload(None, [row], input.client_mutation_id)
        return _project_payload(row, [], input.client_mutation_id)

    @strawberry.mutation(description="Change a project's name, description or visibility.")
    async def update_project(self, info: Ctx, input: UpdateProjectInput) -> ProjectPayload | None:
        context = info.context
        project = await _project(context, input.project_id, "update")
        errors = archived(project) or problems(
            text("name", input.name, minimum=1, maximum=MAX_NAME)
            if input.name is not None
            else None,
            text("description", input.description, maximum=MAX_DESCRIPTION)
            if input.description is not None
            else None,
        )
        if errors:
            return _project_payload(None, errors, input.client_mutation_id)

        async def work() -> ProjectRow:
            return await writes.update(
                context.session,
                project.id,
                name=input.name and input.name.strip(),
                description=input.description,
                visibility=input.visibility.value if input.visibility else None,
            )

        return _project_payload(await committed(context, work), [], input.client_mutation_id)

    @strawberry.mutation(description="Archive a project (idempotent).")
    async def archive_project(self, info: Ctx, input: ArchiveProjectInput) -> ProjectPayload | None:
        context = info.context
        project = await _project(context, input.project_id, "update")

        async def work() -> ProjectRow:
            return await writes.archive(context.session, project.id)

        return _project_payload(await committed(context, work), [], input.client_mutation_id)

    @strawberry.mutation(description="Create a label in a project.")
    async def create_label(self, info: Ctx, input: CreateLabelInput) -> LabelPayload | None:
        context = info.context
        project = await _project(context, input.project_id, "manage_labels")
        errors = archived(project) or _label_problems(input.name, input.color)
        if errors:
            return _label_payload(None, errors, input.client_mutation_id)

        async def create() -> LabelRow:
            return await writes.create_label(
                context.session, project.id, input.name.strip(), input.color.lower()
            )

        try:
            row = await create_once(
                context, "createLabel", input, create, context.loaders.label_by_id
            )
        except UniqueViolation:
            row = user_error("name", "TAKEN", "That name is taken.")
        if isinstance(row, UserError):
            return _label_payload(None, [row], input.client_mutation_id)
        return _label_payload(row, [], input.client_mutation_id)

    @strawberry.mutation(description="Rename or recolor a label.")
    async def update_label(self, info: Ctx, input: UpdateLabelInput) -> LabelPayload | None:
        context = info.context
        label = await find(context, input.label_id, LabelRow)
        project = await _access.project_of(context, label.project_id)
        allow(
            _access.on_project(context, project, "manage_labels"),
            "You may not manage labels in this project.",
        )
        errors = archived(project) or _label_problems(input.name, input.color)
        if errors:
            return _label_payload(None, errors, input.client_mutation_id)

        async def work() -> LabelRow:
            return await writes.update_label(
                context.session,
                label.id,
                input.name.strip() if input.name else None,
                input.color.lower() if input.color else None,
            )

        try:
            row = await committed(context, work)
        except UniqueViolation:
            return _label_payload(
                None, [user_error("name", "TAKEN", "That name is taken.")], input.client_mutation_id
            )
        return _label_payload(row, [], input.client_mutation_id)

    @strawberry.mutation(description="Delete a label.")
    async def delete_label(self, info: Ctx, input: DeleteLabelInput) -> LabelPayload | None:
        context = info.context
        label = await find(context, input.label_id, LabelRow)
        project = await _access.project_of(context, label.project_id)
        allow(
            _access.on_project(context, project, "manage_labels"),
            "You may not manage labels in this project.",
        )
        errors = archived(project)
        if errors:
            return _label_payload(None, errors, input.client_mutation_id)

        async def work() -> None:
            await writes.delete_label(context.session, label.id)

        await committed(context, work)
        return _label_payload(None, [], input.client_mutation_id, deleted=input.label_id)
