"""Webhooks as their organization's admins see them: the hook, its deliveries, and each
delivery's attempts (domain/webhooks/ delivers them). A hook exists only for a viewer who
may manage its organization's webhooks; its secret is never shown."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from domain.context import Context
from execution.connection import Connection, connection
from execution.fields import node, to_one, value
from loaders import Loaders
from loaders.rows import WebhookDeliveryRow, WebhookRow
from loaders.webhooks import NEWEST_FIRST
from resolvers.subscriptions import IssueEventKind
from resolvers.types import Node, Organization, Project


@strawberry.enum(description="Where a delivery stands.")
class WebhookDeliveryState(Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@strawberry.type(description="One try at sending a delivery, as the receiver answered it.")
class WebhookAttempt:
    started_at: datetime = strawberry.field(description="When the request started.")
    duration_ms: int | None = strawberry.field(
        description="How long it took, in milliseconds; null while it runs, or when the "
        "server sending it stopped."
    )
    status_code: int | None = strawberry.field(
        description="The receiver's HTTP status; null when there was no answer."
    )
    error: str | None = strawberry.field(
        description="Why the attempt failed (a status other than 2xx, a timeout, a refused "
        "address, a connection error); null when it succeeded."
    )


def _guid(context: Context, row: WebhookDeliveryRow) -> str:
    return str(row.guid)


def _next_attempt(context: Context, row: WebhookDeliveryRow) -> datetime | None:
    return row.next_attempt_at if row.state == "PENDING" else None


def _payload(context: Context, row: WebhookDeliveryRow) -> str | None:
    return row.body


@node(
    WebhookDeliveryRow, Loaders.webhook_delivery_by_id, "An event sent, or to send, to a webhook."
)
class WebhookDelivery(Node):
    guid: str = value(
        _guid,
        "The X-Issuegraph-Delivery header: the same on every attempt of this delivery "
        "(a receiver may drop a repeat); a redelivery has its own.",
    )
    event: IssueEventKind = value(
        lambda context, row: row.kind, "The kind of event (the X-Issuegraph-Event header)."
    )
    state: WebhookDeliveryState = strawberry.field(description="Where the delivery stands.")
    attempt_count: int = value(
        lambda context, row: row.attempts, "How many times it was sent (or begun)."
    )
    next_attempt_at: datetime | None = value(
        _next_attempt, "When it is next tried, while it is PENDING."
    )
    created_at: datetime = strawberry.field(description="When the event made it.")
    finished_at: datetime | None = strawberry.field(
        description="When it was DELIVERED, or given up as FAILED."
    )
    payload: str | None = value(
        _payload,
        "The JSON body sent, exactly as signed; null before the first attempt.",
        reads=("body",),
    )
    is_redelivery: bool = value(
        lambda context, row: row.redelivery,
        "It was asked for with redeliverWebhookDelivery.",
    )
    webhook: Webhook = to_one(Loaders.webhook_by_id, "webhook_id", "The webhook it goes to.")
    attempts: Connection[WebhookAttempt] = connection(
        Loaders.attempts_by_delivery,
        Loaders.attempt_count_by_delivery,
        "Every attempt, oldest first.",
    )


@node(
    WebhookRow,
    Loaders.webhook_by_id,
    "An HTTP endpoint that receives an organization's (or one project's) issue events as "
    "signed JSON POSTs. Only its organization's admins see it.",
)
class Webhook(Node):
    url: str = strawberry.field(description="Where the events are POSTed (http or https).")
    events: list[IssueEventKind] = value(
        lambda context, row: row.events, "The kinds of event it receives."
    )
    active: bool = strawberry.field(
        description="It receives events; false when turned off by an admin, or by the server "
        "after a day of failed deliveries (`disabledReason` says why)."
    )
    disabled_at: datetime | None = strawberry.field(
        description="When the server turned it off after failing deliveries."
    )
    disabled_reason: str | None = strawberry.field(
        description="Why the server turned it off; null when it did not."
    )
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When it was last changed.")
    organization: Organization = to_one(
        Loaders.organization_by_id, "organization_id", "The organization whose events it gets."
    )
    project: Project | None = to_one(
        Loaders.project_by_id,
        "project_id",
        "The one project whose events it gets; null: every project of the organization.",
    )
    deliveries: Connection[WebhookDelivery] = connection(
        Loaders.deliveries_by_webhook,
        Loaders.delivery_count_by_webhook,
        "Its deliveries, newest first.",
        order=NEWEST_FIRST,
    )
