"""Webhooks as the API reads them: by id, an organization's and a project's, their
deliveries and each delivery's attempts. A webhook, and its deliveries, exist only for a
viewer who may manage its organization's webhooks (the `Scope`)."""

from __future__ import annotations

from collections.abc import Hashable

from loaders._keyset import Order, PageSpec, Params, Scope
from loaders.rows import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOKS,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookRow,
)

# $2 and $3: Scope.all_webhooks and Scope.webhook_organization_ids (see `arguments`)
MANAGED = "($2::boolean OR w.organization_id = ANY($3::bigint[]))"
SELECT_WEBHOOKS_BY_ID = (
    "SELECT {columns} FROM webhooks w{joins} WHERE w.id = ANY($1::bigint[]) AND " + MANAGED
)
SELECT_DELIVERIES_BY_ID = (
    "SELECT {columns} FROM webhook_deliveries d{joins}"
    " JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ANY($1::bigint[]) AND " + MANAGED
)


def arguments(scope: Scope, keys: object) -> tuple[object, ...]:
    """The parameters of a by-id statement above: the ids, then the scope's webhooks."""
    return (keys, scope.all_webhooks, list(scope.webhook_organization_ids))


def _managed(filters: Hashable, scope: Scope, params: Params) -> list[str]:
    return [scope.webhooks_visible(params)]


NEWEST_FIRST = Order("NEWEST", descending=True)
WEBHOOKS_BY_ORGANIZATION: PageSpec[WebhookRow] = PageSpec(
    source="webhooks w",
    parent_column="w.organization_id",
    id_column="w.id",
    table=WEBHOOKS,
    conditions=_managed,
)
WEBHOOKS_BY_PROJECT: PageSpec[WebhookRow] = PageSpec(
    source="webhooks w",
    parent_column="w.project_id",
    id_column="w.id",
    table=WEBHOOKS,
    conditions=_managed,
)
# Under a webhook the viewer already sees: no condition of their own.
DELIVERIES_BY_WEBHOOK: PageSpec[WebhookDeliveryRow] = PageSpec(
    source="webhook_deliveries d",
    parent_column="d.webhook_id",
    id_column="d.id",
    table=WEBHOOK_DELIVERIES,
)
ATTEMPTS_BY_DELIVERY: PageSpec[WebhookAttemptRow] = PageSpec(
    source="webhook_attempts a",
    parent_column="a.delivery_id",
    id_column="a.id",
    table=WEBHOOK_ATTEMPTS,
)
