"""When the database fails, the client hears it from the status code, and the server's own
bookkeeping cannot turn the failure into a 500."""

from __future__ import annotations

import asyncpg

from core.db import Database
from tests.conftest import app_client

QUERY = '{ organization(slug: "acme") { name } }'


async def test_releasing_a_connection_whose_backend_died_is_no_error(
    database: Database, database_url: str
) -> None:
    """PostgreSQL ends the connection while a request holds it (a restart, a kill): giving
    it back must not fail the request."""
    connection = await database.acquire()
    pid = connection.get_server_pid()
    killer = await asyncpg.connect(database_url)
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await killer.close()
    await database.release(connection)
    again = await database.acquire()
    try:
        assert await again.fetchval("SELECT 1") == 1
    finally:
        await database.release(again)


async def test_a_read_that_failed_on_the_database_is_a_504_not_an_empty_200(
    database: Database, database_url: str
) -> None:
    """A table locked by another transaction holds the read until its statement timeout:
    the request failed as a whole."""
    timed = await Database.connect(database_url, min_size=1, max_size=1, statement_timeout_ms=300)
    locker: asyncpg.Connection = await asyncpg.connect(database_url)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE organizations IN ACCESS EXCLUSIVE MODE")
        try:
            async with app_client(timed) as http:
                response = await http.post("/graphql", json={"query": QUERY})
        finally:
            await transaction.rollback()
        async with app_client(timed) as http:
            after = await http.post("/graphql", json={"query": QUERY})
    finally:
        await locker.close()
        await timed.close()
    assert response.status_code == 504
    body = response.json()
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["TIMEOUT"]
    assert after.status_code == 200 and "errors" not in after.json()  # once the lock is gone
