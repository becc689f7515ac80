"""Users, and organizations' members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.db import Session
from loaders._keyset import PageSpec
from loaders.rows import USER_COLUMNS, USERS, MemberRow, UserRow

SELECT_USERS_BY_ID = "SELECT {columns} FROM users u{joins} WHERE u.id = ANY($1::bigint[])"
SELECT_USERS_BY_LOGIN = (
    "SELECT {columns} FROM users u{joins} WHERE lower(u.login) = ANY($1::text[])"
)
SELECT_VIEWER = f"""
SELECT {USER_COLUMNS},
       coalesce(array_agg(m.organization_id) FILTER (WHERE m.user_id IS NOT NULL), '{{}}'),
       coalesce(array_agg(m.role) FILTER (WHERE m.user_id IS NOT NULL), '{{}}')
FROM users u LEFT JOIN memberships m ON m.user_id = u.id
WHERE u.id = $1
GROUP BY u.id
"""
SELECT_ORGANIZATION_IDS_BY_USER = """
SELECT user_id, array_agg(organization_id) FROM memberships
WHERE user_id = ANY($1::bigint[]) GROUP BY user_id
"""


async def load_viewer(session: Session, user_id: int) -> tuple[UserRow, dict[int, str]] | None:
    """A user with a map of their organizations to their roles, in one statement."""
    row = await session.fetchrow(SELECT_VIEWER, user_id)
    if row is None:
        return None
    values = tuple(row)
    return UserRow(*values[:7]), dict(zip(values[7], values[8], strict=True))


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
