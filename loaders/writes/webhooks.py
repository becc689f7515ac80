"""Webhooks as their organization's admins change them, and redeliveries.

A change that gives the delivery task something to do now (a redelivery, a hook turned on
again) says so on the event channel, delivered on commit: every server process's delivery
task wakes up (the event hub ignores the note)."""

from __future__ import annotations

from collections.abc import Sequence

from core.db import Session
from loaders.rows import (
    WEBHOOK_DELIVERIES,
    WEBHOOKS,
    WebhookDeliveryRow,
    WebhookRow,
)
from loaders.writes.issues import EVENTS_CHANNEL

WAKE = f"SELECT pg_notify('{EVENTS_CHANNEL}', '{{\"webhooks\": true}}')"
INSERT_WEBHOOK = f"""
INSERT INTO webhooks AS w (organization_id, project_id, url, events, secret, active)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {WEBHOOKS.all}
"""
# NULL leaves a column as it is; turning a hook on again forgets why it was turned off.
UPDATE_WEBHOOK = f"""
UPDATE webhooks AS w SET
    url = coalesce($2, url),
    events = coalesce($3, events),
    secret = coalesce($4, secret),
    active = coalesce($5, active),
    disabled_at = CASE WHEN $5 THEN NULL ELSE disabled_at END,
    disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END,
    updated_at = clock_timestamp()
WHERE id = $1
RETURNING {WEBHOOKS.all}
"""
DELETE_WEBHOOK = "DELETE FROM webhooks WHERE id = $1"
REDELIVER = f"""
INSERT INTO webhook_deliveries AS d (webhook_id, event_id, kind, body, redelivery)
SELECT webhook_id, event_id, kind, body, true FROM webhook_deliveries WHERE id = $1
RETURNING {WEBHOOK_DELIVERIES.all}
"""


async def create(
    session: Session,
    organization_id: int,
    project_id: int | None,
    url: str,
    events: Sequence[str],
    secret: str,
    active: bool,
) -> WebhookRow:
    row = await session.fetchrow(
        INSERT_WEBHOOK, organization_id, project_id, url, list(events), secret, active
    )
    assert row is not None
    return WebhookRow(*row)


async def update(
    session: Session,
    webhook_id: int,
    *,
    url: str | None,
    events: Sequence[str] | None,
    secret: str | None,
    active: bool | None,
) -> WebhookRow:
    row = await session.fetchrow(
        UPDATE_WEBHOOK,
        webhook_id,
        url,
        list(events) if events is not None else None,
        secret,
        active,
    )
    assert row is not None
    if active:
        await session.execute(WAKE)
    return WebhookRow(*row)


async def delete(session: Session, webhook_id: int) -> None:
    """The hook goes, and its deliveries with it."""
    await session.execute(DELETE_WEBHOOK, webhook_id)


async def redeliver(session: Session, delivery_id: int) -> WebhookDeliveryRow:
    """A new delivery of what `delivery_id` delivered: the same event, the same body."""
    row = await session.fetchrow(REDELIVER, delivery_id)
    assert row is not None
    await session.execute(WAKE)
    return WebhookDeliveryRow(*row)
