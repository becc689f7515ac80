"""What the webhook delivery task reads and writes: claiming due deliveries, the event a
body is made of, and each attempt's outcome.

A claim is one statement: it locks due deliveries with FOR UPDATE SKIP LOCKED (so every
server process may claim at once, each getting others), counts the attempt, leases the
delivery by moving `next_attempt_at` past the attempt's deadline (a process that dies
mid-delivery leaves it to be claimed again when the lease ends), marks an attempt that
such a process left unfinished, and logs the new attempt. Nothing stays locked while the
request is on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.db import Session

INTERRUPTED = "No answer recorded: the server delivering it stopped."
CLAIM = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
    WHERE d.state = 'PENDING' AND d.next_attempt_at <= clock_timestamp() AND w.active
    ORDER BY d.next_attempt_at, d.id
    LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d
    SET attempts = d.attempts + 1,
        next_attempt_at = clock_timestamp() + make_interval(secs => $2)
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.webhook_id, d.event_id, d.kind, d.guid, d.attempts, d.body, d.created_at
), interrupted AS (
    UPDATE webhook_attempts a SET error = $3
    FROM claimed c WHERE a.delivery_id = c.id AND a.duration_ms IS NULL AND a.error IS NULL
), started AS (
    INSERT INTO webhook_attempts (delivery_id) SELECT id FROM claimed RETURNING id, delivery_id
)
SELECT c.id, c.webhook_id, c.event_id, c.kind, c.guid::text, c.attempts, c.body,
       extract(epoch FROM clock_timestamp() - c.created_at)::float8,
       s.id, w.url, w.secret
FROM claimed c JOIN started s ON s.delivery_id = c.id JOIN webhooks w ON w.id = c.webhook_id
ORDER BY c.id
"""
NEXT_DUE = """
SELECT extract(epoch FROM d.next_attempt_at - clock_timestamp())::float8
FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id AND w.active
WHERE d.state = 'PENDING'
ORDER BY d.next_attempt_at LIMIT 1
"""
# The event a body tells of, with the rows it names (the issue as it is now; none once it
# is deleted) and, for a transfer, the project the issue came from.
SELECT_EVENTS = """
SELECT e.id, e.kind, e.created_at, e.actor_id, u.login,
       o.id, o.slug, p.id, p.key, p.name,
       e.issue_id, i.number, i.title, i.state, i.priority, i.created_at, i.updated_at,
       c.id, c.body,
       ARRAY(SELECT l.id FROM labels l WHERE l.id = ANY (e.label_ids) ORDER BY l.id),
       ARRAY(SELECT l.name FROM labels l WHERE l.id = ANY (e.label_ids) ORDER BY l.id),
       f.id, f.key, f.name
FROM events e
LEFT JOIN issues i ON i.id = e.issue_id
JOIN projects p ON p.id = e.project_id
JOIN organizations o ON o.id = p.organization_id
LEFT JOIN users u ON u.id = e.actor_id
LEFT JOIN comments c ON c.id = e.comment_id
LEFT JOIN projects f ON e.kind = 'issue_transferred'
    AND f.id = (e.payload->>'from_project_id')::bigint
WHERE e.id = ANY ($1::bigint[])
"""
PRUNE = """
DELETE FROM webhook_deliveries WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE state <> 'PENDING' AND finished_at < clock_timestamp() - make_interval(secs => $1)
    LIMIT $2
)
"""
# A body is written once: every later attempt and redelivery sends it as it is.
STORE_BODIES = """
UPDATE webhook_deliveries d SET body = coalesce(d.body, b.body)
FROM unnest($1::bigint[], $2::text[]) AS b(id, body)
WHERE d.id = b.id
RETURNING d.id, d.body
"""
# A delivery given up after the window turns its hook off when no delivery of the hook
# succeeded since it was made: the hook failed for the whole window.
FINISH = """
WITH attempt AS (
    UPDATE webhook_attempts SET duration_ms = $2, status_code = $3, error = $4 WHERE id = $1
), delivery AS (
    UPDATE webhook_deliveries SET
        state = $7,
        next_attempt_at = clock_timestamp() + make_interval(secs => $8),
        finished_at = CASE WHEN $7 = 'PENDING' THEN NULL ELSE clock_timestamp() END
    WHERE id = $5 AND attempts = $6 AND state = 'PENDING'
    RETURNING webhook_id, created_at
), verdict AS (
    SELECT w.id, $7 = 'FAILED' AND $9::text IS NOT NULL AND w.active
           AND (w.last_success_at IS NULL OR w.last_success_at < d.created_at) AS turn_off
    FROM delivery d JOIN webhooks w ON w.id = d.webhook_id
)
UPDATE webhooks w SET
    last_success_at = CASE WHEN $4::text IS NULL THEN clock_timestamp() ELSE last_success_at END,
    active = active AND NOT v.turn_off,
    disabled_at = CASE WHEN v.turn_off THEN clock_timestamp() ELSE disabled_at END,
    disabled_reason = CASE WHEN v.turn_off THEN $9 ELSE disabled_reason END
FROM verdict v WHERE w.id = v.id
RETURNING v.turn_off
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery claimed for one attempt, with what sending it takes."""

    id: int
    webhook_id: int
    event_id: int | None
    kind: str
    guid: str
    attempt: int  # the claim's count: its outcome is recorded only while it is current
    body: str | None
    age: float  # seconds since the delivery was made
    attempt_id: int
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event with what its body shows (SELECT_EVENTS, in that order)."""

    id: int
    kind: str
    created_at: datetime
    actor_id: int | None
    actor_login: str | None
    organization_id: int
    organization_slug: str
    project_id: int
    project_key: str
    project_name: str
    issue_id: int
    issue_number: int | None  # the issue's columns are None once it is deleted
    issue_title: str | None
    issue_state: str | None
    issue_priority: int | None
    issue_created_at: datetime | None
    issue_updated_at: datetime | None
    comment_id: int | None
    comment_body: str | None
    label_ids: list[int]
    label_names: list[str]
    from_project_id: int | None  # a transfer's project of origin
    from_project_key: str | None
    from_project_name: str | None


async def claim(session: Session, limit: int, lease: float) -> list[Claim]:
    rows = await session.fetch(CLAIM, limit, lease, INTERRUPTED)
    return [Claim(*row) for row in rows]


async def seconds_to_next_due(session: Session) -> float | None:
    """When the next delivery of an active hook is due (it may be now), if any is pending."""
    value = await session.fetchval(NEXT_DUE)
    return float(value) if value is not None else None


async def prune(session: Session, older_than: float, limit: int) -> int:
    """Delete up to `limit` deliveries finished more than `older_than` seconds ago, with
    their attempts; how many."""
    status = await session.execute(PRUNE, older_than, limit)
    return int(status.split()[-1])


async def events(session: Session, event_ids: Sequence[int]) -> dict[int, EventRecord]:
    rows = await session.fetch(SELECT_EVENTS, list(event_ids))
    return {row[0]: EventRecord(*row) for row in rows}


async def store_bodies(session: Session, bodies: dict[int, str]) -> dict[int, str]:
    """Each delivery's body as stored: the one given, or one stored before it."""
    rows = await session.fetch(STORE_BODIES, list(bodies), list(bodies.values()))
    return {row[0]: row[1] for row in rows}


async def finish(
    session: Session,
    claimed: Claim,
    *,
    duration_ms: int,
    status_code: int | None,
    error: str | None,
    state: str,
    retry_in: float,
    turn_off: str | None,
) -> bool:
    """Log the attempt's outcome; move the delivery on (if this claim is still current:
    DELIVERED, FAILED, or PENDING again after `retry_in` seconds); note the hook's success.
    A delivery given up as FAILED turns its hook off with the reason `turn_off` when the
    hook had no success since the delivery was made; whether it did so."""
    found = await session.fetchval(
        FINISH,
        claimed.attempt_id,
        duration_ms,
        status_code,
        error,
        claimed.id,
        claimed.attempt,
        state,
        retry_in,
        turn_off,
    )
    return bool(found)
