"""The event log as the live hub reads it: an event, its project and the subscribers'
current roles, three statements whatever the number of subscribers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.db import Session
from loaders.rows import PROJECT_COLUMNS, USER_COLUMNS, ProjectRow, UserRow

SELECT_EVENT = """
SELECT id, kind, project_id, issue_id, actor_id, comment_id, label_ids, created_at
FROM events WHERE id = $1
"""
SELECT_PROJECT = f"SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1"
SELECT_SUBSCRIBERS = f"""
SELECT {USER_COLUMNS}, m.role FROM users u
LEFT JOIN memberships m ON m.user_id = u.id AND m.organization_id = $2
WHERE u.id = ANY($1::bigint[])
"""


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


async def read_event(
    session: Session, event_id: int, project_id: int, users: list[int]
) -> tuple[EventRow, ProjectRow, dict[int, tuple[UserRow, str | None]]] | None:
    """The event, its project, and each listed user with their role in its organization;
    None when the event or the project is gone."""
    event_record = await session.fetchrow(SELECT_EVENT, event_id)
    project_record = await session.fetchrow(SELECT_PROJECT, project_id)
    if event_record is None or project_record is None:
        return None
    project = ProjectRow(*project_record)
    rows = await session.fetch(SELECT_SUBSCRIBERS, users, project.organization_id)
    now = {row[0]: (UserRow(*tuple(row)[:7]), row[7]) for row in rows}
    return EventRow(*event_record), project, now
