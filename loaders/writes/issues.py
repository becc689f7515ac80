"""Issues, their labels and comments, and the events each change records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from core.db import Session
from loaders.rows import COMMENT_COLUMNS, ISSUE_COLUMNS, CommentRow, IssueRow

EVENTS_CHANNEL = "issuegraph_events"
EVENT_LOCK = 7_241_006  # advisory lock class of the per-project event order

NEXT_NUMBER = (
    "UPDATE projects SET issue_count = issue_count + 1 WHERE id = $1 RETURNING issue_count"
)
INSERT_ISSUE = f"""
INSERT INTO issues AS i (project_id, number, title, body, priority, author_id, assignee_id,
                         body_html)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING {ISSUE_COLUMNS}
"""
SET_STATE = f"""
UPDATE issues AS i SET state = $2, updated_at = clock_timestamp(),
       closed_at = CASE WHEN $2 = 'CLOSED' THEN clock_timestamp() END
WHERE id = $1 AND state <> $2
RETURNING {ISSUE_COLUMNS}
"""
SELECT_ISSUE = f"SELECT {ISSUE_COLUMNS} FROM issues i WHERE i.id = $1"
TOUCH_ISSUE = (
    f"UPDATE issues AS i SET updated_at = clock_timestamp() WHERE id = $1 RETURNING {ISSUE_COLUMNS}"
)
ADD_LABELS = """
INSERT INTO issue_labels (issue_id, label_id)
SELECT $1, l.id FROM labels l WHERE l.id = ANY($2::bigint[]) AND l.project_id = $3
ON CONFLICT DO NOTHING RETURNING label_id
"""
REMOVE_LABELS = """
DELETE FROM issue_labels WHERE issue_id = $1 AND label_id = ANY($2::bigint[]) RETURNING label_id
"""
SELECT_LABEL_IDS_IN_PROJECT = """
SELECT id FROM labels WHERE id = ANY($1::bigint[]) AND project_id = $2
"""
INSERT_COMMENT = f"""
INSERT INTO comments AS c (issue_id, author_id, body, body_html) VALUES ($1, $2, $3, $4)
RETURNING {COMMENT_COLUMNS}
"""
UPDATE_COMMENT = f"""
UPDATE comments AS c SET body = $2, body_html = $4, updated_at = clock_timestamp()
WHERE id = $1 AND ($3::timestamptz IS NULL OR updated_at = $3)
RETURNING {COMMENT_COLUMNS}
"""
DELETE_COMMENT = "DELETE FROM comments WHERE id = $1"
# Events of a project are numbered in the order they commit: the event takes a lock on
# its project (held to commit) before its id, so a reader that has seen event n has seen
# every earlier event of the project (resumable subscriptions rely on it). An event told
# to more projects than its own (a transfer: the project the issue left, too) locks each
# of them, in the order of their ids (two transfers never wait on each other in a
# circle), and is announced to each. OFFSET 0 keeps the locks in a subquery of their own,
# evaluated before the row (and its id) is made.
RECORD_EVENT = f"""
WITH event AS (
    INSERT INTO events (kind, project_id, issue_id, actor_id, comment_id, label_ids, payload)
    SELECT $1::text, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6::bigint[], $7::jsonb
    FROM (SELECT count(pg_advisory_xact_lock({EVENT_LOCK}, (p % 2147483647)::int)::text)
          FROM (SELECT DISTINCT p FROM unnest($2::bigint || $8::bigint[]) AS p ORDER BY p
                OFFSET 0) AS ordered
          OFFSET 0) AS l
    RETURNING id, project_id, issue_id
)
SELECT id, pg_notify('{EVENTS_CHANNEL}', json_build_object(
    'id', id, 'project', project, 'issue', issue_id)::text)
FROM event, (SELECT DISTINCT p AS project FROM unnest($2::bigint || $8::bigint[]) AS p) AS a
"""
# transferIssue: labels move to the target project's labels of the same name; the others
# come off. Comments keep their bodies; their HTML is rendered again when next read (its
# `#123` links named the old project).
MOVE_LABELS = """
UPDATE issue_labels il SET label_id = t.id
FROM labels s JOIN labels t ON t.name = s.name AND t.project_id = $2
WHERE il.issue_id = $1 AND s.id = il.label_id
"""
DROP_FOREIGN_LABELS = """
DELETE FROM issue_labels il USING labels l
WHERE il.issue_id = $1 AND l.id = il.label_id AND l.project_id <> $2
"""
MOVE_ISSUE = f"""
UPDATE issues AS i SET project_id = $2, number = $3, body_html = $4,
       updated_at = clock_timestamp()
WHERE id = $1
RETURNING {ISSUE_COLUMNS}
"""
FORGET_COMMENT_HTML = "UPDATE comments SET body_html = NULL WHERE issue_id = $1"
# deleteIssue: the issue goes with its comments and labels (ON DELETE CASCADE); its earlier
# events go too (the log no longer cascades, see migration 0005), and one event says it is
# gone.
DELETE_EVENTS = "DELETE FROM events WHERE issue_id = $1"
DELETE_ISSUE = "DELETE FROM issues WHERE id = $1 RETURNING project_id"
# Columns updateIssue may set; the statement is written from the ones given.
UPDATABLE = ("title", "body", "body_html", "priority", "assignee_id")


async def create(
    session: Session,
    project_id: int,
    author_id: int,
    title: str,
    body: str,
    priority: int,
    assignee_id: int | None,
    body_html: str | None = None,
) -> IssueRow:
    number = await session.fetchval(NEXT_NUMBER, project_id)  # locks the project row
    row = await session.fetchrow(
        INSERT_ISSUE, project_id, number, title, body, priority, author_id, assignee_id, body_html
    )
    assert row is not None
    return IssueRow(*row)


async def update(
    session: Session, issue_id: int, changes: dict[str, Any], expected_updated_at: datetime | None
) -> tuple[IssueRow, str, int | None] | None:
    """The updated row with the title and assignee it had before, or None when
    `expected_updated_at` is stale."""
    assignments = [
        f"{column} = ${n}" for n, column in enumerate(changes, start=3) if column in UPDATABLE
    ]
    assert len(assignments) == len(changes), "unknown column"
    sql = (
        f"UPDATE issues AS i SET {', '.join([*assignments, 'updated_at = clock_timestamp()'])}"
        " FROM (SELECT id, title, assignee_id FROM issues WHERE id = $1 FOR UPDATE) AS old"
        " WHERE i.id = old.id AND ($2::timestamptz IS NULL OR i.updated_at = $2)"
        f" RETURNING {ISSUE_COLUMNS}, old.title, old.assignee_id"
    )
    row = await session.fetchrow(sql, issue_id, expected_updated_at, *changes.values())
    if row is None:
        return None
    return IssueRow(*tuple(row)[:-2]), row[-2], row[-1]


async def set_state(session: Session, issue_id: int, state: str) -> IssueRow | None:
    """The changed row, or None when the issue already was in that state."""
    row = await session.fetchrow(SET_STATE, issue_id, state)
    return IssueRow(*row) if row is not None else None


async def get(session: Session, issue_id: int) -> IssueRow:
    row = await session.fetchrow(SELECT_ISSUE, issue_id)
    assert row is not None
    return IssueRow(*row)


async def touch(session: Session, issue_id: int) -> IssueRow:
    row = await session.fetchrow(TOUCH_ISSUE, issue_id)
    assert row is not None
    return IssueRow(*row)


async def labels_in_project(
    session: Session, label_ids: Sequence[int], project_id: int
) -> set[int]:
    return {
        r[0] for r in await session.fetch(SELECT_LABEL_IDS_IN_PROJECT, list(label_ids), project_id)
    }


async def add_labels(
    session: Session, issue_id: int, project_id: int, label_ids: Sequence[int]
) -> list[int]:
    """The labels newly attached."""
    return [r[0] for r in await session.fetch(ADD_LABELS, issue_id, list(label_ids), project_id)]


async def remove_labels(session: Session, issue_id: int, label_ids: Sequence[int]) -> list[int]:
    return [r[0] for r in await session.fetch(REMOVE_LABELS, issue_id, list(label_ids))]


async def create_comment(
    session: Session, issue_id: int, author_id: int, body: str, body_html: str | None = None
) -> CommentRow:
    row = await session.fetchrow(INSERT_COMMENT, issue_id, author_id, body, body_html)
    assert row is not None
    return CommentRow(*row)


async def update_comment(
    session: Session,
    comment_id: int,
    body: str,
    expected_updated_at: datetime | None,
    body_html: str | None = None,
) -> CommentRow | None:
    row = await session.fetchrow(UPDATE_COMMENT, comment_id, body, expected_updated_at, body_html)
    return CommentRow(*row) if row is not None else None


async def delete_comment(session: Session, comment_id: int) -> None:
    await session.execute(DELETE_COMMENT, comment_id)


async def record_event(
    session: Session,
    kind: str,
    issue: IssueRow,
    actor_id: int | None,
    comment_id: int | None = None,
    label_ids: Sequence[int] = (),
    payload: dict[str, Any] | None = None,
    also_to: Sequence[int] = (),
) -> int:
    """Write the event to the outbox, of the issue's project, and announce it there and to
    the projects `also_to` (a transfer: the project the issue left); both take effect on
    commit. Returns the event's id."""
    found = await session.fetchval(
        RECORD_EVENT,
        kind,
        issue.project_id,
        issue.id,
        actor_id,
        comment_id,
        list(label_ids),
        orjson.dumps(payload or {}).decode(),
        list(also_to),
    )
    return int(found)


async def transfer(
    session: Session, issue_id: int, project_id: int, body_html: str | None
) -> IssueRow:
    """Move an issue to another project, where it takes the next number."""
    number = await session.fetchval(NEXT_NUMBER, project_id)  # locks the target project
    await session.execute(MOVE_LABELS, issue_id, project_id)
    await session.execute(DROP_FOREIGN_LABELS, issue_id, project_id)
    await session.execute(FORGET_COMMENT_HTML, issue_id)
    row = await session.fetchrow(MOVE_ISSUE, issue_id, project_id, number, body_html)
    assert row is not None
    return IssueRow(*row)


async def delete(session: Session, issue_id: int) -> int | None:
    """Delete an issue and its earlier events; the project it was in (None: already gone)."""
    await session.execute(DELETE_EVENTS, issue_id)
    found: int | None = await session.fetchval(DELETE_ISSUE, issue_id)
    return found
