"""Users, and organizations' members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from core.db import Session
from loaders._keyset import PageSpec
from loaders.rows import USER_COLUMNS, USERS, MemberRow, UserRow

SELECT_USERS_BY_ID = "SELECT {columns} FROM users u{joins} WHERE u.id = ANY($1::bigint[])"
SELECT_USERS_BY_LOGIN = (
    "SELECT {columns} FROM users u{joins} WHERE lower(u.login) = ANY($1::text[])"
)
# The signed-in viewer, their memberships and the state of their session, in one statement:
# '' when the session is live, why it ended when it has, NULL when it is not the user's (or
# does not exist). (A scalar subquery: measured at a few microseconds of PostgreSQL time
# over the statement without it; a join, or noting the last use here, cost several times
# that. The last use is noted when the session refreshes its tokens.)
SELECT_VIEWER = f"""
SELECT {USER_COLUMNS},
       coalesce(array_agg(m.organization_id) FILTER (WHERE m.user_id IS NOT NULL), '{{}}'),
       coalesce(array_agg(m.role) FILTER (WHERE m.user_id IS NOT NULL), '{{}}'),
       (SELECT coalesce(s.end_reason, '') FROM sessions s WHERE s.id = $2 AND s.user_id = $1)
FROM users u LEFT JOIN memberships m ON m.user_id = u.id
WHERE u.id = $1
GROUP BY u.id
"""
SELECT_ORGANIZATION_IDS_BY_USER = """
SELECT user_id, array_agg(organization_id) FROM memberships
WHERE user_id = ANY($1::bigint[]) GROUP BY user_id
"""


class SignedIn(NamedTuple):
    """A user with their organizations' roles, and the state of a session of theirs."""

    user: UserRow
    roles: dict[int, str]  # organization id -> role
    session_live: bool  # the session exists, is the user's, and has not ended
    session_end: str | None  # why it ended (sessions.end_reason), if it did


async def load_viewer(session: Session, user_id: int, session_id: int | None) -> SignedIn | None:
    """A user, their roles and the session named, in one statement; None if no such user.
    (No session, None, is a viewer made in-process: `session_live` is then False.)"""
    row = await session.fetchrow(SELECT_VIEWER, user_id, session_id)
    if row is None:
        return None
    values = tuple(row)
    roles = dict(zip(values[7], values[8], strict=True))
    state = values[9]  # see SELECT_VIEWER
    return SignedIn(UserRow(*values[:7]), roles, state == "", state or None)


def organization_ids_row(values: Sequence[Any]) -> tuple[int, tuple[int, ...]]:
    return values[0], tuple(values[1])


def member_row(values: Sequence[Any]) -> MemberRow:
    return MemberRow(USERS.make(values[:7]), values[7], values[8])


MEMBERS_BY_ORGANIZATION = PageSpec(
    source="memberships m JOIN users u ON u.id = m.user_id",
    parent_column="m.organization_id",
    id_column="m.user_id",
    table=USERS,
    extra=", m.role, m.organization_id",
    make_row=member_row,
)
