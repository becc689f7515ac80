"""Signed-in sessions for tests: a session row and an access token naming it, as logIn
would make them (without going through logIn and its throttling)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from core.db import Database
from domain.auth import Tokens
from tests.conftest import TEST_SETTINGS

START_SESSION = """
INSERT INTO sessions (user_id, expires_at, client) VALUES ($1, $2, 'tests') RETURNING id
"""


def tokens(ttl: int = TEST_SETTINGS.access_token_ttl) -> Tokens:
    return Tokens(
        TEST_SETTINGS.jwt_secret or "", TEST_SETTINGS.jwt_issuer, TEST_SETTINGS.jwt_audience, ttl
    )


async def start_session(connection: Any, user_id: int) -> int:
    """A new live session of the user (committed, unless `connection` is in a transaction)."""
    expires = datetime.now(UTC) + timedelta(days=1)
    return int(await connection.fetchval(START_SESSION, user_id, expires))


async def access_token(where: Database | asyncpg.Connection | str, user_id: int, **kw: Any) -> str:
    """An access token of a new session of the user; `where` is the database (a pool, a
    connection, or a URL) the server reads. `ttl` sets the token's lifetime in seconds."""
    session_id = await _on(where, lambda connection: start_session(connection, user_id))
    return tokens(**kw).issue(user_id, session_id).token


async def _on(where: Database | asyncpg.Connection | str, work: Any) -> Any:
    if isinstance(where, str):
        connection = await asyncpg.connect(where)
        try:
            return await work(connection)
        finally:
            await connection.close()
    if isinstance(where, Database):
        pooled = await where.acquire()
        try:
            return await work(pooled)
        finally:
            await where.release(pooled)
    return await work(where)
