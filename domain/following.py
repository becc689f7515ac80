"""Following issues: whom a change concerns. A change may mention users (`@login` in the
body it writes), assign someone, or be news for the issue's followers (its author and
subscribers): comments, closing and reopening. Mentions and notifications are written in
the change's own transaction (loaders/writes/follow.py), one statement each."""

from __future__ import annotations

import re

from core.db import Session
from loaders.rows import IssueRow
from loaders.writes import follow

MAX_MENTIONS = 50  # users one body may mention, as on GitHub
# Code is not prose: a login in a code span or block mentions nobody.
CODE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]*`", re.DOTALL)
# @login where a login may begin (not inside an email address or a path), to its end
MENTION = re.compile(r"(?<![\w@./`-])@([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))(?![\w-])")


def mentioned_logins(body: str) -> list[str]:
    """The logins a body mentions, lower-case, each once, in order (at most MAX_MENTIONS)."""
    found: dict[str, None] = {}
    for match in MENTION.finditer(CODE.sub(" ", body)):
        found.setdefault(match.group(1).lower())
        if len(found) == MAX_MENTIONS:
            break
    return list(found)


async def follow_up(
    session: Session,
    issue: IssueRow,
    actor_id: int,
    *,
    event_id: int | None = None,
    comment_id: int | None = None,
    body: str | None = None,
    assignee_id: int | None = None,
    followers: bool = False,
    participates: bool = False,
) -> None:
    """Record the mentions of `body` (the issue's, or the comment's) and notify whom the
    change concerns: the newly mentioned, the new assignee, and with `followers` the
    issue's author and subscribers. With `participates` (a comment) the actor follows the
    issue from then on, unless they muted it."""
    mentioned = (
        await follow.record_mentions(
            session, issue.id, comment_id, actor_id, mentioned_logins(body)
        )
        if body
        else []
    )
    await follow.notify(
        session,
        issue.id,
        actor_id=actor_id,
        event_id=event_id,
        comment_id=comment_id,
        mentioned=mentioned,
        assignee_id=assignee_id,
        followers=followers,
        participant=actor_id if participates else None,
    )
