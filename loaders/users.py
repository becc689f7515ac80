"""Users, and organizations' members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loaders._keyset import PageSpec
from loaders.rows import USER_COLUMNS, MemberRow, UserRow

SELECT_USERS_BY_ID = f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = ANY($1::bigint[])"
SELECT_USERS_BY_LOGIN = (
    f"SELECT {USER_COLUMNS} FROM users u WHERE lower(u.login) = ANY($1::text[])"
)


def user_row(values: Sequence[Any]) -> UserRow:
    return UserRow(*values)


def member_row(values: Sequence[Any]) -> MemberRow:
    return MemberRow(UserRow(*values[:7]), values[7], values[8])


MEMBERS_BY_ORGANIZATION = PageSpec(
    source="memberships m JOIN users u ON u.id = m.user_id",
    parent_column="m.organization_id",
    id_column="m.user_id",
    columns=f"{USER_COLUMNS}, m.role, m.organization_id",
    make_row=member_row,
)
