"""Accounts: sign-up, sign-in throttling, and rotating refresh tokens.

Refresh tokens are random, shown to the client once and stored only as a SHA-256 hash.
Each sign-in starts a family; every use rotates the token (the old one is marked used, a
new one of the same family is issued). A used token presented again means it was stolen
or replayed, so the whole family is revoked. Failed sign-ins are recorded per account and
per client address in PostgreSQL, so every instance sees the same count.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.db import Session, UniqueViolation
from core.errors import ClientError, RateLimited, Unauthenticated
from loaders.rows import USER_COLUMNS, UserRow

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
SELECT_FAILURES = """
SELECT key, count(*), min(failed_at) FROM login_failures
WHERE key = ANY($1::text[]) AND failed_at > clock_timestamp() - $2::interval
GROUP BY key
"""
INSERT_FAILURES = "INSERT INTO login_failures (key) SELECT unnest($1::text[])"
DELETE_STALE_FAILURES = (
    "DELETE FROM login_failures WHERE key = ANY($1::text[])"
    " AND failed_at <= clock_timestamp() - $2::interval"
)
DELETE_ACCOUNT_FAILURES = "DELETE FROM login_failures WHERE key = $1"
INSERT_REFRESH = """
INSERT INTO refresh_tokens (family, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)
"""
SELECT_REFRESH_FOR_UPDATE = """
SELECT id, family, user_id, expires_at, used_at, revoked_at
FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE
"""
MARK_REFRESH_USED = "UPDATE refresh_tokens SET used_at = now() WHERE id = $1"
REVOKE_FAMILY = (
    "UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL"
)


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


def throttle_keys(login_or_email: str, address: str | None) -> list[str]:
    """Keys of failed sign-ins: hashed, so that any input (20,000 characters, a NUL byte)
    makes a short key the index takes."""
    account = hashlib.sha256(login_or_email.strip().lower().encode("utf-8", "replace"))
    keys = [f"account:{account.hexdigest()}"]
    if address:
        keys.append(f"address:{address[:100]}")
    return keys


async def check_throttle(session: Session, keys: list[str], limit: int, window: int) -> None:
    """RATE_LIMITED when any key has `limit` failures within the last `window` seconds."""
    span = timedelta(seconds=window)
    now = datetime.now(UTC)
    for _key, failures, oldest in await session.fetch(SELECT_FAILURES, keys, span):
        if failures >= limit:
            retry = max(1, int((oldest + span - now).total_seconds()) + 1)
            raise RateLimited(
                f"Too many failed sign-ins; try again in {retry} seconds.", retryAfter=retry
            )


async def record_failure(session: Session, keys: list[str], window: int) -> None:
    async with session.transaction():
        await session.execute(DELETE_STALE_FAILURES, keys, timedelta(seconds=window))
        await session.execute(INSERT_FAILURES, keys)


async def clear_failures(session: Session, account_key: str) -> None:
    await session.execute(DELETE_ACCOUNT_FAILURES, account_key)


async def start_family(session: Session, user_id: int, ttl: int) -> RefreshToken:
    return await _issue(session, uuid.uuid4(), user_id, ttl)


async def _issue(session: Session, family: uuid.UUID, user_id: int, ttl: int) -> RefreshToken:
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    await session.execute(INSERT_REFRESH, family, user_id, _digest(token), expires)
    return RefreshToken(token, expires, user_id)


async def rotate(session: Session, token: str, ttl: int) -> RefreshToken:
    """Spend a refresh token for a new one of the same family; see the module docstring."""
    reused = False
    async with session.transaction():
        row = await session.fetchrow(SELECT_REFRESH_FOR_UPDATE, _digest(token))
        if row is None:
            raise Unauthenticated("The refresh token is not valid.")
        _id, family, user_id, expires_at, used_at, revoked_at = tuple(row)
        if revoked_at is not None:
            raise Unauthenticated("The refresh token has been revoked; sign in again.")
        if used_at is not None:
            await session.execute(REVOKE_FAMILY, family)
            reused = True
        elif expires_at <= datetime.now(UTC):
            raise Unauthenticated("The refresh token has expired; sign in again.")
        else:
            await session.execute(MARK_REFRESH_USED, _id)
            return await _issue(session, family, user_id, ttl)
    assert reused  # the revocation above is committed before the client hears of it
    raise Unauthenticated(
        "The refresh token was already used: every session it belongs to "
        "has been revoked; sign in again."
    )


async def revoke(session: Session, token: str) -> bool:
    """Revoke the family of a refresh token; False when the token is unknown."""
    async with session.transaction():
        row = await session.fetchrow(SELECT_REFRESH_FOR_UPDATE, _digest(token))
        if row is None:
            return False
        await session.execute(REVOKE_FAMILY, row["family"])
    return True


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
