"""createWebhook, updateWebhook, deleteWebhook, redeliverWebhookDelivery: for those who may
manage their organization's webhooks (its ADMINs and OWNERs). Input that cannot be a
webhook (a URL that is not http or https, or reaches a private address; no events; an empty
secret) is a BAD_USER_INPUT error naming the argument, and nothing is written."""

from __future__ import annotations

import strawberry

from core.errors import BadUserInput
from domain import permissions as _access
from domain.context import Context
from domain.webhooks import guard
from loaders.rows import OrganizationRow, ProjectRow, WebhookDeliveryRow, WebhookRow
from loaders.writes import webhooks as writes
from resolvers.mutations._base import Ctx, allow, committed, create_once, find, signed_in
from resolvers.mutations.organizations import CMID
from resolvers.payloads import UserError
from resolvers.subscriptions import IssueEventKind
from resolvers.webhooks import Webhook, WebhookDelivery

MAX_SECRET = 256


@strawberry.input(
    description="A new webhook on an organization (every project) or on one project: give "
    "one of organizationId and projectId."
)
class CreateWebhookInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="The organization: events of all its projects."
    )
    project_id: strawberry.ID | None = strawberry.field(
        default=None, description="The project: its events alone."
    )
    url: str = strawberry.field(description="Where to POST: http or https, on a public address.")
    events: list[IssueEventKind] = strawberry.field(
        description="The kinds of event to send (at least one; not RESYNC)."
    )
    secret: str = strawberry.field(
        description="The key of each body's HMAC-SHA256 signature (X-Issuegraph-Signature-256);"
        " it is never shown again."
    )
    active: bool = strawberry.field(default=True, description="Send events from now on.")
    client_mutation_id: str | None = CMID


@strawberry.input(description="Changes to a webhook; omitted fields stay as they are.")
class UpdateWebhookInput:
    webhook_id: strawberry.ID = strawberry.field(description="The webhook.")
    url: str | None = strawberry.field(default=None, description="A new URL.")
    events: list[IssueEventKind] | None = strawberry.field(
        default=None, description="The kinds of event to send instead."
    )
    secret: str | None = strawberry.field(default=None, description="A new secret.")
    active: bool | None = strawberry.field(
        default=None,
        description="Turn it off, or on again (which forgets its failures; deliveries still "
        "pending go out).",
    )
    client_mutation_id: str | None = CMID


@strawberry.input(description="A webhook to delete, with its deliveries.")
class DeleteWebhookInput:
    webhook_id: strawberry.ID = strawberry.field(description="The webhook.")
    client_mutation_id: str | None = CMID


@strawberry.input(description="A delivery to send again, as a new delivery of the same body.")
class RedeliverWebhookDeliveryInput:
    delivery_id: strawberry.ID = strawberry.field(description="The delivery.")
    client_mutation_id: str | None = CMID


@strawberry.type(description="The result of a change to a webhook.")
class WebhookPayload:
    webhook: WebhookRow | None = strawberry.field(
        graphql_type=Webhook | None, description="The webhook as it is now."
    )
    deleted_webhook_id: strawberry.ID | None = strawberry.field(
        description="The id of the deleted webhook (deleteWebhook)."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


@strawberry.type(description="The result of redeliverWebhookDelivery.")
class RedeliverWebhookDeliveryPayload:
    delivery: WebhookDeliveryRow | None = strawberry.field(
        graphql_type=WebhookDelivery | None, description="The new delivery, PENDING."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")
    client_mutation_id: str | None = strawberry.field(description="As given in the input.")


def _payload(
    row: WebhookRow | None,
    errors: list[UserError],
    cmid: str | None,
    deleted: str | None = None,
) -> WebhookPayload:
    return WebhookPayload(
        webhook=row,
        deleted_webhook_id=strawberry.ID(deleted) if deleted else None,
        user_errors=errors,
        client_mutation_id=cmid,
    )


async def _organization_of(context: Context, input: CreateWebhookInput) -> tuple[int, int | None]:
    """(organization id, project id or None) of the hook to create."""
    if (input.organization_id is None) == (input.project_id is None):
        raise BadUserInput(
            "Give exactly one of `organizationId` (every project) and `projectId`.",
            argument="organizationId",
        )
    if input.project_id is not None:
        project = await find(context, input.project_id, ProjectRow)
        return project.organization_id, project.id
    assert input.organization_id is not None
    organization = await find(context, input.organization_id, OrganizationRow)
    return organization.id, None


def _may_manage(context: Context, organization_id: int) -> None:
    allow(
        _access.on_organization(context, organization_id, "manage_webhooks"),
        "You may not manage the webhooks of this organization.",
    )


async def _url(context: Context, url: str) -> str:
    try:
        target = guard.parse(url)
        await guard.resolve(target, allow_private=context.services.settings.webhook_allow_private)
    except guard.Refused as exc:
        raise BadUserInput(str(exc), argument="url") from None
    return url


def _events(events: list[IssueEventKind]) -> list[str]:
    if not events:
        raise BadUserInput("`events` lists at least one kind of event.", argument="events")
    if IssueEventKind.RESYNC in events:
        raise BadUserInput("RESYNC is not an event a webhook receives.", argument="events")
    return sorted({e.value for e in events})


def _secret(secret: str) -> str:
    if not secret:
        raise BadUserInput("`secret` must not be empty.", argument="secret")
    if len(secret) > MAX_SECRET:
        raise BadUserInput(f"`secret` has at most {MAX_SECRET} characters.", argument="secret")
    return secret


async def _webhook(context: Context, global_id: str) -> WebhookRow:
    webhook = await find(context, global_id, WebhookRow)
    _may_manage(context, webhook.organization_id)
    return webhook


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(description="Create a webhook (organization ADMINs and OWNERs).")
    async def create_webhook(self, info: Ctx, input: CreateWebhookInput) -> WebhookPayload | None:
        context = info.context
        signed_in(context)
        organization_id, project_id = await _organization_of(context, input)
        _may_manage(context, organization_id)
        events, secret = _events(input.events), _secret(input.secret)
        url = await _url(context, input.url)

        async def create() -> WebhookRow:
            return await writes.create(
                context.session, organization_id, project_id, url, events, secret, input.active
            )

        row = await create_once(
            context, "createWebhook", input, create, context.loaders.webhook_by_id
        )
        if isinstance(row, UserError):
            return _payload(None, [row], input.client_mutation_id)
        return _payload(row, [], input.client_mutation_id)

    @strawberry.mutation(description="Change a webhook's URL, events, secret or state.")
    async def update_webhook(self, info: Ctx, input: UpdateWebhookInput) -> WebhookPayload | None:
        context = info.context
        webhook = await _webhook(context, input.webhook_id)
        events = _events(input.events) if input.events is not None else None
        secret = _secret(input.secret) if input.secret is not None else None
        url = await _url(context, input.url) if input.url is not None else None

        async def work() -> WebhookRow:
            return await writes.update(
                context.session,
                webhook.id,
                url=url,
                events=events,
                secret=secret,
                active=input.active,
            )

        return _payload(await committed(context, work), [], input.client_mutation_id)

    @strawberry.mutation(description="Delete a webhook and its deliveries.")
    async def delete_webhook(self, info: Ctx, input: DeleteWebhookInput) -> WebhookPayload | None:
        context = info.context
        webhook = await _webhook(context, input.webhook_id)

        async def work() -> None:
            await writes.delete(context.session, webhook.id)

        await committed(context, work)
        return _payload(None, [], input.client_mutation_id, deleted=input.webhook_id)

    @strawberry.mutation(
        description="Send a delivery again: a new delivery with the same event and body, "
        "sent as soon as its webhook is active."
    )
    async def redeliver_webhook_delivery(
        self, info: Ctx, input: RedeliverWebhookDeliveryInput
    ) -> RedeliverWebhookDeliveryPayload | None:
        context = info.context
        delivery = await find(context, input.delivery_id, WebhookDeliveryRow)
        webhook = await context.loaders.webhook_by_id.load(delivery.webhook_id)
        assert webhook is not None, "a visible delivery's webhook is visible"
        _may_manage(context, webhook.organization_id)

        async def create() -> WebhookDeliveryRow:
            return await writes.redeliver(context.session, delivery.id)

        row = await create_once(
            context,
            "redeliverWebhookDelivery",
            input,
            create,
            context.loaders.webhook_delivery_by_id,
        )
        errors = [row] if isinstance(row, UserError) else []
        return RedeliverWebhookDeliveryPayload(
            delivery=None if errors else row,
            user_errors=errors,
            client_mutation_id=input.client_mutation_id,
        )
