"""The event log as the live hub reads it: an event, its project and the subscribers'
current roles, one statement whatever the number of subscribers; a notification with
its project and its user's current role, one statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.db import Session
from loaders.rows import (
    NOTIFICATION_COLUMNS,
    PROJECT_COLUMNS,
    USER_COLUMNS,
    NotificationRow,
    ProjectRow,
    UserRow,
)

# An event with its project, once per subscriber listed (with their role in its
# organization now), or once with nulls there when none of them exists any more.
SELECT_EVENT = f"""
SELECT e.id, e.kind, e.project_id, e.issue_id, e.actor_id, e.comment_id, e.label_ids,
       e.created_at, {PROJECT_COLUMNS}, {USER_COLUMNS}, m.role
FROM events e
JOIN projects p ON p.id = $2
LEFT JOIN users u ON u.id = ANY($3::bigint[])
LEFT JOIN memberships m ON m.user_id = u.id AND m.organization_id = p.organization_id
WHERE e.id = $1
"""
SELECT_PROJECT = f"SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1"
SELECT_SUBSCRIBERS = f"""
SELECT {USER_COLUMNS}, m.role FROM users u
LEFT JOIN memberships m ON m.user_id = u.id AND m.organization_id = $2
WHERE u.id = ANY($1::bigint[])
"""
# The events of a project (or one issue of it) after a position, of the kinds asked for,
# in the order they committed (events of a project are numbered in commit order): its own,
# and the transfers of issues that left it (an `issue_transferred` event belongs to the
# project the issue joined and names the one it left; it locked both, so it has its place
# in the order of each). Index events_transferred_from (migration 0008).
_EVENT_COLUMNS = "id, kind, project_id, issue_id, actor_id, comment_id, label_ids, created_at"
SELECT_EVENTS_AFTER = f"""
SELECT * FROM (
    (SELECT {_EVENT_COLUMNS} FROM events
     WHERE project_id = $1 AND id > $2 AND ($3::bigint IS NULL OR issue_id = $3)
       AND kind = ANY($4::text[])
     ORDER BY id LIMIT $5)
    UNION ALL
    (SELECT {_EVENT_COLUMNS} FROM events
     WHERE kind = 'issue_transferred' AND (payload->>'from_project_id')::bigint = $1
       AND id > $2 AND ($3::bigint IS NULL OR issue_id = $3)
       AND 'issue_transferred' = ANY($4::text[])
     ORDER BY id LIMIT $5)
) AS e
ORDER BY id LIMIT $5
"""
# Events older than the retention go, but those an issue's timeline shows (loaders/
# timeline.py): the log keeps its history, and replays only what is younger.
PURGE_EVENTS = """
DELETE FROM events
WHERE created_at < now() - make_interval(secs => $1)
  AND NOT (kind IN ('COMMENTED', 'CLOSED', 'REOPENED', 'LABELED', 'UNLABELED', 'MENTIONED',
                    'issue_transferred')
           OR (kind = 'OPENED' AND (label_ids <> '{}' OR payload ? 'assignee_id'))
           OR (kind = 'UPDATED' AND (payload ? 'previous_title' OR payload ? 'assignee_id')))
"""
SELECT_NOTIFICATION = f"""
SELECT {NOTIFICATION_COLUMNS}, {PROJECT_COLUMNS}, {USER_COLUMNS}, m.role
FROM notifications n JOIN issues i ON i.id = n.issue_id JOIN projects p ON p.id = i.project_id
JOIN users u ON u.id = n.user_id
LEFT JOIN memberships m ON m.user_id = n.user_id AND m.organization_id = p.organization_id
WHERE n.id = $1
"""
_SPANS = (len(NotificationRow._fields), len(ProjectRow._fields), len(UserRow._fields))


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    kind: str
    project_id: int
    issue_id: int
    actor_id: int | None
    comment_id: int | None
    label_ids: list[int]
    created_at: datetime


_EVENT_SPANS = (len(EventRow.__dataclass_fields__), len(ProjectRow._fields), len(UserRow._fields))


async def read_event(
    session: Session, event_id: int, project_id: int, users: list[int]
) -> tuple[EventRow, ProjectRow, dict[int, tuple[UserRow, str | None]]] | None:
    """The event, its project, and each listed user with their role in its organization;
    None when the event or the project is gone."""
    rows = await session.fetch(SELECT_EVENT, event_id, project_id, users)
    if not rows:
        return None
    first = tuple(rows[0])
    e, p, u = _EVENT_SPANS
    now = {}
    for row in rows:
        values = tuple(row)
        if values[e + p] is not None:
            now[values[e + p]] = (UserRow(*values[e + p : e + p + u]), values[-1])
    return EventRow(*first[:e]), ProjectRow(*first[e : e + p]), now


async def read_notification(
    session: Session, notification_id: int
) -> tuple[NotificationRow, ProjectRow, UserRow, str | None] | None:
    """The notification, its issue's project, its user and the user's role in the
    project's organization now; None when it is gone."""
    record = await session.fetchrow(SELECT_NOTIFICATION, notification_id)
    if record is None:
        return None
    values = tuple(record)
    a, b, c = _SPANS
    return (
        NotificationRow(*values[:a]),
        ProjectRow(*values[a : a + b]),
        UserRow(*values[a + b : a + b + c]),
        values[-1],
    )


async def events_after(
    session: Session,
    project_id: int,
    after: int,
    issue_id: int | None,
    kinds: Sequence[str],
    limit: int,
    users: list[int],
) -> tuple[list[EventRow], ProjectRow, dict[int, tuple[UserRow, str | None]]] | None:
    """Up to `limit` events after event `after`, the project, and the listed users with
    their roles now (as `read_event`); None when the project is gone."""
    project_record = await session.fetchrow(SELECT_PROJECT, project_id)
    if project_record is None:
        return None
    project = ProjectRow(*project_record)
    rows = await session.fetch(SELECT_EVENTS_AFTER, project_id, after, issue_id, list(kinds), limit)
    subscribers = await session.fetch(SELECT_SUBSCRIBERS, users, project.organization_id)
    now = {row[0]: (UserRow(*tuple(row)[:7]), row[7]) for row in subscribers}
    return [EventRow(*row) for row in rows], project, now


async def purge_events(connection: Any, retention_seconds: int) -> int:
    """Delete the events the log no longer keeps (see PURGE_EVENTS); how many went."""
    status = await connection.execute(PURGE_EVENTS, float(retention_seconds))
    return int(status.rsplit(" ", 1)[-1])
