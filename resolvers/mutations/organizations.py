"""createOrganization, addMember, updateMemberRole, removeMember."""

from __future__ import annotations

import strawberry

from core.db import UniqueViolation
from domain import permissions as _access
from domain.context import Context
from loaders.rows import OrganizationRow, UserRow
from loaders.writes import organizations as writes
from resolvers.enums import MembershipRole
from resolvers.mutations._base import (
    MAX_DESCRIPTION,
    MAX_NAME,
    SLUG,
    Ctx,
    allow,
    committed,
    create_once,
    find,
    pattern,
    problems,
    text,
)
from resolvers.payloads import UserError, user_error
from resolvers.types import Organization, User

CMID = strawberry.field(
    default=None,
    description="Echoed in the payload. An idempotency key for creates: a create retried "
    "by the same viewer with the same value and the same input within 24 hours returns the "
    "first result; with another input it is an IDEMPOTENCY_KEY_REUSED user error.",
)


@strawberry.input(description="A new organization; its creator becomes its OWNER.")
class CreateOrganizationInput:
    slug: str = strawberry.field(description="Unique handle: lowercase letters, digits, -.")
    name: str = strawberry.field(description="The display name.")
    description: str = strawberry.field(default="", description="What it does.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of createOrganization.")
class CreateOrganizationPayload:
    organization: OrganizationRow | None = strawberry.field(
        graphql_type=Organization | None, description="The new organization."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.input(description="A user to add to an organization.")
class AddMemberInput:
    organization_id: strawberry.ID = strawberry.field(description="The organization.")
    login: str = strawberry.field(description="The login of the user to add.")
    role: MembershipRole = strawberry.field(
        default=MembershipRole.MEMBER, description="Their role; OWNER needs an owner."
    )
    client_mutation_id: str | None = CMID


@strawberry.input(description="A new role for a member.")
class UpdateMemberRoleInput:
    organization_id: strawberry.ID = strawberry.field(description="The organization.")
    user_id: strawberry.ID = strawberry.field(description="The member.")
    role: MembershipRole = strawberry.field(description="The new role.")
    client_mutation_id: str | None = CMID


@strawberry.input(description="A member to remove (members may remove themselves).")
class RemoveMemberInput:
    organization_id: strawberry.ID = strawberry.field(description="The organization.")
    user_id: strawberry.ID = strawberry.field(description="The member.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of a change to an organization's members.")
class MembershipPayload:
    organization: OrganizationRow | None = strawberry.field(
        graphql_type=Organization | None, description="The organization."
    )
    user: UserRow | None = strawberry.field(
        graphql_type=User | None, description="The member concerned."
    )
    role: MembershipRole | None = strawberry.field(description="Their role now; null if none.")
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


def _refused(errors: list[UserError], cmid: str | None) -> MembershipPayload:
    return MembershipPayload(
        organization=None, user=None, role=None, user_errors=errors, client_mutation_id=cmid
    )


def _last_owner(action: str) -> list[UserError]:
    return [
        user_error("userId", "LAST_OWNER", f"The last OWNER of an organization cannot be {action}.")
    ]


@strawberry.type
class OrganizationMutations:
    @strawberry.mutation(description="Create an organization, owned by the viewer.")
    async def create_organization(
        self, info: Ctx, input: CreateOrganizationInput
    ) -> CreateOrganizationPayload | None:
        context = info.context
        allow(
            context.policy.allows(context.policy.site_traits(), "site", "create_organization"),
            "You may not create organizations.",
        )
        errors = problems(
            pattern("slug", input.slug, SLUG, "is 1–39 lowercase letters, digits or hyphens"),
            text("name", input.name, minimum=1, maximum=MAX_NAME),
            text("description", input.description, maximum=MAX_DESCRIPTION),
        )
        if errors:
            return CreateOrganizationPayload(
                organization=None, user_errors=errors, client_mutation_id=input.client_mutation_id
            )
        owner = context.viewer.user
        assert owner is not None  # create_organization needs signed_in

        async def create() -> object:
            row = await writes.create(
                context.session, input.slug, input.name.strip(), input.description, owner.id
            )
            context.viewer.set_role(row.id, "OWNER")
            return row

        try:
            row = await create_once(
                context, "createOrganization", input, create, context.loaders.organization_by_id
            )
        except UniqueViolation:
            row = user_error("slug", "TAKEN", "That slug is already taken.")
        if isinstance(row, UserError):
            return CreateOrganizationPayload(
                organization=None, user_errors=[row], client_mutation_id=input.client_mutation_id
            )
        return CreateOrganizationPayload(
            organization=row,
            user_errors=[],
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(description="Add a user to an organization.")
    async def add_member(self, info: Ctx, input: AddMemberInput) -> MembershipPayload | None:
        context = info.context
        organization = await find(context, input.organization_id, OrganizationRow)
        _may_manage(context, organization.id, input.role.value)
        user = await context.loaders.user_by_login.load(input.login.lower())
        if user is None:
            return _refused(
                [user_error("login", "NOT_FOUND", "No user has that login.")],
                input.client_mutation_id,
            )

        async def work() -> bool:
            added = await writes.add_member(
                context.session, organization.id, user.id, input.role.value
            )
            _mirror(context, organization.id, user.id, input.role.value if added else None)
            return added

        if not await committed(context, work):
            return _refused(
                [user_error("login", "ALREADY_MEMBER", "Already a member.")],
                input.client_mutation_id,
            )
        return MembershipPayload(
            organization=organization,
            user=user,
            role=input.role,
            user_errors=[],
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Change a member's role; only an OWNER grants or "
        "removes OWNER, and the last OWNER cannot be demoted."
    )
    async def update_member_role(
        self, info: Ctx, input: UpdateMemberRoleInput
    ) -> MembershipPayload | None:
        context = info.context
        organization = await find(context, input.organization_id, OrganizationRow)
        user = await find(context, input.user_id, UserRow)
        _may_manage(context, organization.id, input.role.value)

        async def work() -> list[UserError]:
            owners = await writes.owners(context.session, organization.id)
            current = await writes.role_of(context.session, organization.id, user.id)
            if current is None:
                return [user_error("userId", "NOT_MEMBER", "Not a member.")]
            if current == "OWNER":
                _may_manage(context, organization.id, "OWNER")
                if input.role.value != "OWNER" and owners == [user.id]:
                    return _last_owner("demoted")
            await writes.set_role(context.session, organization.id, user.id, input.role.value)
            _mirror(context, organization.id, user.id, input.role.value)
            return []

        errors = await committed(context, work)
        if errors:
            return _refused(errors, input.client_mutation_id)
        return MembershipPayload(
            organization=organization,
            user=user,
            role=input.role,
            user_errors=[],
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(description="Remove a member; the last OWNER cannot be removed.")
    async def remove_member(self, info: Ctx, input: RemoveMemberInput) -> MembershipPayload | None:
        context = info.context
        organization = await find(context, input.organization_id, OrganizationRow)
        user = await find(context, input.user_id, UserRow)
        me = context.viewer.user
        leaving = me is not None and me.id == user.id
        if not leaving:
            _may_manage(context, organization.id, "MEMBER")

        async def work() -> list[UserError]:
            owners = await writes.owners(context.session, organization.id)
            current = await writes.role_of(context.session, organization.id, user.id)
            if current is None:
                return [user_error("userId", "NOT_MEMBER", "Not a member.")]
            if current == "OWNER":
                if not leaving:
                    _may_manage(context, organization.id, "OWNER")
                if owners == [user.id]:
                    return _last_owner("removed")
            await writes.remove_member(context.session, organization.id, user.id)
            _mirror(context, organization.id, user.id, None, removed=True)
            return []

        errors = await committed(context, work)
        if errors:
            return _refused(errors, input.client_mutation_id)
        return MembershipPayload(
            organization=organization,
            user=user,
            role=None,
            user_errors=[],
            client_mutation_id=input.client_mutation_id,
        )


def _mirror(
    context: Context, organization_id: int, user_id: int, role: str | None, removed: bool = False
) -> None:
    me = context.viewer.user
    if me is not None and me.id == user_id and (role is not None or removed):
        context.viewer.set_role(organization_id, role)


def _may_manage(context: Context, organization_id: int, role: str) -> None:
    allow(
        _access.on_organization(context, organization_id, "manage_members"),
        "You may not manage this organization's members.",
    )
    if role == "OWNER":
        allow(
            _access.on_organization(context, organization_id, "manage_owners"),
            "Only an OWNER grants or removes the OWNER role.",
        )
