"""Accounts: sign-up, sessions and their rotating refresh tokens, failed sign-ins.

A sign-in starts a session (a row of `sessions`) with its first refresh token. Refresh
tokens are random, shown to the client once and stored only as a SHA-256 hash; every use
spends one and issues the next of the same session. A spent token presented again means it
was stolen or replayed, so the session ends. A session ends too when it signs out, when
its user revokes it, or (all but the current one) when its user changes the password; the
access tokens of an ended session stop working at once (loaders/users.py SELECT_VIEWER),
and a trigger announces the end to every server process (migration 0004).

Failed sign-ins are rows of `login_failures` under a key (an (account, address) pair or an
address), in PostgreSQL so that every instance counts the same; domain/auth.py decides what
the counts mean.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from core.db import Session, UniqueViolation
from core.errors import ClientError, Unauthenticated
from loaders._keyset import Order, PageSpec, Params, Scope
from loaders.rows import SESSIONS, USER_COLUMNS, SessionRow, UserRow

INSERT_USER = f"""
INSERT INTO users AS u (login, name, email, password_hash)
VALUES ($1, $2, $3, $4)
RETURNING {USER_COLUMNS}
"""
SELECT_CREDENTIALS = f"""
SELECT {USER_COLUMNS}, u.password_hash FROM users u
WHERE lower(u.login) = lower($1) OR lower(u.email) = lower($1)
ORDER BY lower(u.login) = lower($1) DESC
LIMIT 1
"""
SELECT_PASSWORD_HASH = "SELECT password_hash FROM users WHERE id = $1"
UPDATE_PASSWORD_HASH = "UPDATE users SET password_hash = $2 WHERE id = $1"

# -- failed sign-ins
SELECT_FAILURES = """
SELECT key, count(*), min(failed_at), max(failed_at) FROM login_failures
WHERE (key = $1 AND failed_at > clock_timestamp() - $2::interval)
   OR (key = $3 AND failed_at > clock_timestamp() - $4::interval)
GROUP BY key
"""
# Each failure also deletes up to 100 failures too old to count for anyone: a cheap,
# bounded cleanup that keeps up with the inserts, with no job to run.
INSERT_FAILURES = """
WITH stale AS (
    DELETE FROM login_failures WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM login_failures WHERE failed_at <= clock_timestamp() - $3::interval
        ORDER BY failed_at LIMIT 100 FOR UPDATE SKIP LOCKED))
)
INSERT INTO login_failures (key) VALUES ($1), ($2)
"""
DELETE_FAILURES = "DELETE FROM login_failures WHERE key = $1"

# -- sessions and refresh tokens
INSERT_SESSION = """
WITH made AS (
    INSERT INTO sessions (user_id, expires_at, client, address) VALUES ($1, $2, $3, $4)
    RETURNING id
)
INSERT INTO refresh_tokens (session_id, user_id, token_hash, expires_at)
SELECT id, $1, $5, $2 FROM made
RETURNING session_id
"""
SELECT_REFRESH_FOR_UPDATE = """
SELECT r.id, r.session_id, r.user_id, r.expires_at, r.used_at, s.ended_at, s.end_reason
FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
WHERE r.token_hash = $1
FOR UPDATE OF r
"""
ROTATE_REFRESH = """
WITH spent AS (UPDATE refresh_tokens SET used_at = now() WHERE id = $1),
     used AS (UPDATE sessions SET last_used_at = now(), expires_at = $4 WHERE id = $2)
INSERT INTO refresh_tokens (session_id, user_id, token_hash, expires_at) VALUES ($2, $3, $5, $4)
"""
END_SESSION = """
UPDATE sessions SET ended_at = now(), end_reason = $3
WHERE id = $1 AND user_id = $2 AND ended_at IS NULL
RETURNING id
"""
END_SESSION_OF_REFRESH = """
WITH token AS (SELECT session_id FROM refresh_tokens WHERE token_hash = $1),
     ended AS (
        UPDATE sessions SET ended_at = now(), end_reason = 'SIGNED_OUT'
        WHERE id = (SELECT session_id FROM token) AND ended_at IS NULL
     )
SELECT session_id FROM token
"""
END_OTHER_SESSIONS = """
UPDATE sessions SET ended_at = now(), end_reason = $3
WHERE user_id = $1 AND id <> $2 AND ended_at IS NULL
"""
SELECT_LIVE_SESSIONS = """
SELECT id FROM sessions WHERE id = ANY($1::bigint[]) AND ended_at IS NULL
"""


# Why a session ended (sessions.end_reason), as its tokens hear it.
ENDINGS = {
    "SIGNED_OUT": "it was signed out",
    "REVOKED": "it was revoked",
    "REFRESH_TOKEN_REUSED": "one of its refresh tokens was used twice, so it was revoked",
    "PASSWORD_CHANGED": "the account's password was changed",
}


def session_ended(end_reason: str | None) -> Unauthenticated:
    """The refusal of a token whose session has ended (or never existed)."""
    why = ENDINGS.get(end_reason or "")
    said = f"The session has ended: {why}." if why else "The session has ended."
    return Unauthenticated(f"{said} Sign in again.", reason="SESSION_ENDED")


class Conflict(ClientError):
    """A unique value is taken; `field` names the input field."""

    code = "TAKEN"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token: str
    expires_at: datetime
    user_id: int
    session_id: int


class Failures(NamedTuple):
    """Failed sign-ins under one key within its window: how many, the first and the last."""

    failed: int
    first: datetime
    last: datetime


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_user(
    session: Session, login: str, name: str, email: str, password_hash: str
) -> UserRow:
    try:
        row = await session.fetchrow(INSERT_USER, login, name, email, password_hash)
    except UniqueViolation as exc:
        field = "email" if exc.constraint == "users_email_key" else "login"
        raise Conflict(field, f"That {field} is already taken.") from None
    assert row is not None
    return UserRow(*row)


async def find_credentials(session: Session, login_or_email: str) -> tuple[UserRow, str] | None:
    if "\x00" in login_or_email or len(login_or_email) > 320:
        return None  # no account has such a login or email
    row = await session.fetchrow(SELECT_CREDENTIALS, login_or_email)
    if row is None:
        return None
    values = tuple(row)
    return UserRow(*values[:-1]), values[-1]


async def password_hash(session: Session, user_id: int) -> str | None:
    found = await session.fetchval(SELECT_PASSWORD_HASH, user_id)
    return found if isinstance(found, str) else None


async def set_password_hash(session: Session, user_id: int, hashed: str) -> None:
    await session.execute(UPDATE_PASSWORD_HASH, user_id, hashed)


# -- failed sign-ins


async def failures(
    session: Session, pair: str, pair_window: int, address: str, address_window: int
) -> dict[str, Failures]:
    """The failures under the pair's key within its window and the address's within its."""
    rows = await session.fetch(
        SELECT_FAILURES,
        pair,
        timedelta(seconds=pair_window),
        address,
        timedelta(seconds=address_window),
    )
    return {key: Failures(count, first, last) for key, count, first, last in rows}


async def record_failure(session: Session, pair: str, address: str, longest_window: int) -> None:
    await session.execute(INSERT_FAILURES, pair, address, timedelta(seconds=longest_window))


async def clear_failures(session: Session, pair: str) -> None:
    await session.execute(DELETE_FAILURES, pair)


# -- sessions


async def start_session(
    session: Session, user_id: int, ttl: int, client: str, address: str | None
) -> RefreshToken:
    """A new session of the user, with its first refresh token, in one statement."""
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    session_id = await session.fetchval(
        INSERT_SESSION, user_id, expires, client, address, _digest(token)
    )
    return RefreshToken(token, expires, user_id, int(session_id))


async def rotate(session: Session, token: str, ttl: int) -> RefreshToken:
    """Spend a refresh token for the next one of its session; see the module docstring."""
    async with session.transaction():
        row = await session.fetchrow(SELECT_REFRESH_FOR_UPDATE, _digest(token))
        if row is None:
            raise Unauthenticated("The refresh token is not valid.")
        token_id, session_id, user_id, expires_at, used_at, ended_at, end_reason = tuple(row)
        if ended_at is not None:
            raise session_ended(end_reason)
        if used_at is None:
            if expires_at <= datetime.now(UTC):
                raise Unauthenticated("The refresh token has expired; sign in again.")
            fresh = secrets.token_urlsafe(32)
            expires = datetime.now(UTC) + timedelta(seconds=ttl)
            await session.execute(
                ROTATE_REFRESH, token_id, session_id, user_id, expires, _digest(fresh)
            )
            return RefreshToken(fresh, expires, user_id, session_id)
        await session.execute(END_SESSION, session_id, user_id, "REFRESH_TOKEN_REUSED")
    # the session's end is committed before the client hears of it
    raise Unauthenticated(
        "The refresh token was already used: its session has ended, and every token of it "
        "stops working. Sign in again.",
        reason="SESSION_ENDED",
    )


async def end_session(session: Session, session_id: int, user_id: int, reason: str) -> bool:
    """End a live session of the user; False when there is no such live session."""
    return await session.fetchval(END_SESSION, session_id, user_id, reason) is not None


async def end_session_of(session: Session, refresh_token: str) -> bool:
    """Sign out the session of a refresh token (idempotent); False for an unknown token."""
    return await session.fetchval(END_SESSION_OF_REFRESH, _digest(refresh_token)) is not None


async def end_other_sessions(session: Session, user_id: int, keep: int, reason: str) -> int:
    """End every live session of the user but `keep`; how many ended."""
    status = await session.execute(END_OTHER_SESSIONS, user_id, keep, reason)
    return int(status.rsplit(" ", 1)[-1])


async def live_sessions(session: Session, session_ids: list[int]) -> set[int]:
    """Those of the sessions that are live."""
    return {row[0] for row in await session.fetch(SELECT_LIVE_SESSIONS, session_ids)}


def _live(filters: object, scope: Scope, params: Params) -> list[str]:
    return ["s.ended_at IS NULL", "s.expires_at > now()"]


NEWEST_FIRST = Order("NEWEST", descending=True)
SESSIONS_BY_USER: PageSpec[SessionRow] = PageSpec(
    source="sessions s",
    parent_column="s.user_id",
    id_column="s.id",
    table=SESSIONS,
    conditions=_live,
)


SELECT_SECRET = "SELECT value FROM server_secrets WHERE name = $1"
INSERT_SECRET = """
INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
"""


async def shared_secret(session: Session, name: str) -> str:
    """A random secret made once and kept in the database, so every instance shares it."""
    await session.execute(INSERT_SECRET, name, secrets.token_urlsafe(48))
    value = await session.fetchval(SELECT_SECRET, name)
    assert isinstance(value, str)
    return value
