"""Notifications: a user's, newest first (all or unread only), within what the request may
read; and the user's unread counter, one row kept by triggers (migration 0006)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from loaders._keyset import Order, PageSpec, Params, Scope
from loaders.rows import NOTIFICATIONS, NotificationRow

SELECT_UNREAD_COUNTS = """
SELECT user_id, unread FROM notification_counters WHERE user_id = ANY($1::bigint[])
"""
SELECT_SUBSCRIPTIONS = """
SELECT issue_id, user_id, subscribed FROM issue_subscriptions
WHERE issue_id = ANY($1::bigint[]) AND user_id = $2
"""
NEWEST_FIRST = Order("NEWEST", descending=True)


def _readable(filters: Hashable, scope: Scope, params: Params) -> list[str]:
    found = [scope.visible(params)]
    if filters:  # unread only
        found.append("n.read_at IS NULL")
    return found


NOTIFICATIONS_BY_USER: PageSpec[NotificationRow] = PageSpec(
    source="notifications n JOIN issues ni ON ni.id = n.issue_id"
    " JOIN projects p ON p.id = ni.project_id",
    parent_column="n.user_id",
    id_column="n.id",
    table=NOTIFICATIONS,
    conditions=_readable,
)


def unread_row(record: Any) -> tuple[int, int]:
    return (record[0], record[1])


def subscription_row(record: Any) -> tuple[int, int, bool]:
    """(issue id, user id, subscribed: False when muted)."""
    return (record[0], record[1], record[2])


def subscription_arguments(keys: Sequence[tuple[int, int]]) -> tuple[list[int], int]:
    """Keys are (issue id, viewer id): one viewer per request."""
    return [k[0] for k in keys], keys[0][1] if keys else 0
