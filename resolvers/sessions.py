"""A signed-in session as its user sees it in `viewer.sessions` (loaders/accounts.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.context import Context
from execution.fields import value
from execution.ids import encode_id
from loaders.rows import SessionRow, UserRow

SESSION = "Session"  # the type name in a session's global id (a Session is not a Node)


def _id(context: Context, row: SessionRow) -> str:
    return encode_id(SESSION, row.id)


def _is_current(context: Context, row: SessionRow) -> bool:
    return row.id == context.viewer.session_id


def _address(context: Context, row: SessionRow) -> str | None:
    return row.address


def own_sessions(context: Context, row: UserRow) -> int:
    """Whose sessions a user's `sessions` lists: the user's own for the user, none (0) for
    anyone else, site admins included."""
    user = context.viewer.user
    return row.id if user is not None and user.id == row.id else 0


@strawberry.type(
    description="A signed-in session: one sign-in and the tokens refreshed from it. It lives "
    "until it signs out, is revoked, reuses a refresh token, its password changes, or its "
    "refresh token expires unused."
)
class Session:
    id: strawberry.ID = value(_id, "The session's opaque id, for revokeSession.")
    created_at: datetime = strawberry.field(description="When it signed in.")
    last_used_at: datetime = strawberry.field(
        description="When it last signed in or refreshed its tokens: a client in use "
        "refreshes them at least as often as its access tokens expire (15 minutes by default)."
    )
    client: str = strawberry.field(
        description="The User-Agent it signed in with; empty when none was sent."
    )
    ip_address: str | None = value(_address, "The client address it signed in from.")
    is_current: bool = value(_is_current, "It is the session of this request's access token.")
