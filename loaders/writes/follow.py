"""Following issues: mentions, notifications and their fan-out, issue subscriptions,
reactions. Each is one statement, whatever the number of users it reaches."""

from __future__ import annotations

from collections.abc import Sequence

from core.db import Session
from loaders.projects import readable_by
from loaders.writes.issues import EVENTS_CHANNEL

# The users named who may read the issue are mentioned, once per (issue, comment), and
# each new mention is logged for the timeline in the body's order (a MENTIONED event, not
# announced: it is part of the change that made it). Returns the newly mentioned users.
RECORD_MENTIONS = f"""
WITH found AS (
    SELECT u.id, k.n FROM unnest($4::text[]) WITH ORDINALITY AS k(login, n)
    JOIN users u ON lower(u.login) = k.login
    JOIN issues i ON i.id = $1 JOIN projects p ON p.id = i.project_id
    WHERE {readable_by("u")}
), added AS (
    INSERT INTO mentions (issue_id, comment_id, user_id, actor_id)
    SELECT $1, $2, id, $3 FROM found ORDER BY n
    ON CONFLICT DO NOTHING RETURNING user_id
), logged AS (
    INSERT INTO events (kind, project_id, issue_id, actor_id, comment_id, payload)
    SELECT 'MENTIONED', i.project_id, i.id, $3, $2, jsonb_build_object('user_id', a.user_id)
    FROM added a JOIN found f ON f.id = a.user_id, issues i WHERE i.id = $1 ORDER BY f.n
)
SELECT user_id FROM added
"""

# One notification per user a change concerns, with the strongest reason: mentioned in it,
# assigned by it, the issue's author, subscribed to the issue (the last two only for
# changes that notify followers, and never for someone who muted the issue). Never the
# actor, never a user who may not read the issue. Each is announced for the live
# `notificationAdded`, on commit.
NOTIFY = f"""
WITH participant AS (  -- a commenter follows the issue from then on, unless they muted it
    INSERT INTO issue_subscriptions (issue_id, user_id, subscribed)
    SELECT $1, $8::bigint, true WHERE $8::bigint IS NOT NULL
    ON CONFLICT (issue_id, user_id) DO NOTHING
), wanted AS (
    SELECT m AS user_id, 1 AS strength FROM unnest($5::bigint[]) AS m
    UNION ALL SELECT $6::bigint, 2 WHERE $6::bigint IS NOT NULL
    UNION ALL SELECT i.author_id, 3 FROM issues i WHERE $7::boolean AND i.id = $1
    UNION ALL SELECT s.user_id, 4 FROM issue_subscriptions s
              WHERE $7::boolean AND s.issue_id = $1 AND s.subscribed
), recipients AS (
    SELECT w.user_id, min(w.strength) AS strength FROM wanted w
    WHERE w.user_id IS DISTINCT FROM $4::bigint
    GROUP BY w.user_id
), added AS (
    INSERT INTO notifications (user_id, issue_id, comment_id, actor_id, reason, event_id)
    SELECT r.user_id, i.id, $2, $4, (ARRAY['MENTIONED', 'ASSIGNED', 'AUTHOR', 'SUBSCRIBED'])
           [r.strength], $3
    FROM recipients r JOIN users u ON u.id = r.user_id
    JOIN issues i ON i.id = $1 JOIN projects p ON p.id = i.project_id
    WHERE {readable_by("u")}
      AND (r.strength <= 2 OR NOT EXISTS (
          SELECT 1 FROM issue_subscriptions s
          WHERE s.issue_id = i.id AND s.user_id = r.user_id AND NOT s.subscribed))
    ORDER BY r.user_id
    RETURNING id, user_id
)
SELECT count(pg_notify('{EVENTS_CHANNEL}',
    json_build_object('notification', id, 'user', user_id)::text)) FROM added
"""
SUBSCRIBE = """
INSERT INTO issue_subscriptions (issue_id, user_id, subscribed) VALUES ($1, $2, $3)
ON CONFLICT (issue_id, user_id) DO UPDATE SET subscribed = excluded.subscribed
"""
ADD_REACTION = """
INSERT INTO reactions (issue_id, comment_id, user_id, content) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
"""
REMOVE_REACTION = {
    subject: f"DELETE FROM reactions WHERE {subject} = $1 AND user_id = $2 AND content = $3"
    for subject in ("issue_id", "comment_id")
}
MARK_READ = """
UPDATE notifications SET read_at = clock_timestamp()
WHERE user_id = $1 AND read_at IS NULL AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
"""


async def record_mentions(
    session: Session, issue_id: int, comment_id: int | None, actor_id: int, logins: Sequence[str]
) -> list[int]:
    """Mention the users of these (lower-case) logins who may read the issue; the users
    mentioned now who were not already, in this issue's body or this comment."""
    if not logins:
        return []
    rows = await session.fetch(RECORD_MENTIONS, issue_id, comment_id, actor_id, list(logins))
    return [r[0] for r in rows]


async def notify(
    session: Session,
    issue_id: int,
    *,
    actor_id: int,
    event_id: int | None = None,
    comment_id: int | None = None,
    mentioned: Sequence[int] = (),
    assignee_id: int | None = None,
    followers: bool = False,
    participant: int | None = None,
) -> int:
    """Notify whom a change concerns (see NOTIFY), and let `participant` follow the issue;
    how many were notified."""
    if not mentioned and assignee_id is None and not followers and participant is None:
        return 0
    found = await session.fetchval(
        NOTIFY,
        issue_id,
        comment_id,
        event_id,
        actor_id,
        list(mentioned),
        assignee_id,
        followers,
        participant,
    )
    return int(found)


async def subscribe(session: Session, issue_id: int, user_id: int, subscribed: bool) -> None:
    await session.execute(SUBSCRIBE, issue_id, user_id, subscribed)


async def mark_read(session: Session, user_id: int, ids: Sequence[int] | None) -> int:
    """Mark the user's notifications read (these, or all); how many were unread."""
    status = await session.execute(MARK_READ, user_id, None if ids is None else list(ids))
    return int(status.rsplit(" ", 1)[-1])


async def react(
    session: Session,
    issue_id: int | None,
    comment_id: int | None,
    user_id: int,
    content: str,
    adding: bool,
) -> bool:
    """Add or remove the user's reaction to an issue or (issue_id None) a comment; whether
    it changed anything."""
    if adding:
        status = await session.execute(ADD_REACTION, issue_id, comment_id, user_id, content)
    else:
        subject = "issue_id" if issue_id is not None else "comment_id"
        status = await session.execute(
            REMOVE_REACTION[subject], issue_id or comment_id, user_id, content
        )
    return not status.endswith(" 0")
