"""When the database fails, the client hears it from the status code, and the server's own
bookkeeping cannot turn the failure into a 500."""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from core.db import Database
from tests.conftest import app_client
from tests.servers import free_port

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


@pytest.fixture
def own_redis() -> Iterator[subprocess.Popen[bytes]]:
    """A Redis server of this test's own, which it may stop or freeze."""
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is not installed"
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    process.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()


def _persisted(query: str, with_document: bool) -> dict[str, Any]:
    digest = hashlib.sha256(query.encode()).hexdigest()
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    if with_document:
        body["query"] = query
    return body


async def test_without_redis_persisted_queries_and_budgets_serve_from_memory(
    database: Database, own_redis: subprocess.Popen[bytes]
) -> None:
    url = own_redis.url  # type: ignore[attr-defined]
    async with app_client(database, redis_url=url) as http:
        healthy = await http.get("/readyz")
        own_redis.kill()
        own_redis.wait()
        learned = await http.post("/graphql", json=_persisted(QUERY, with_document=True))
        by_hash = await http.post("/graphql", json=_persisted(QUERY, with_document=False))
        spent = [await http.post("/graphql", json={"query": QUERY}) for _ in range(2)]
        degraded = await http.get("/readyz")
    assert healthy.text == "ready"
    assert learned.status_code == by_hash.status_code == 200
    assert "errors" not in learned.json() and "errors" not in by_hash.json()
    remaining = [r.json()["extensions"]["cost"]["remaining"] for r in spent]
    assert remaining[1] == remaining[0] - 1  # budgets still count, in this process
    assert degraded.status_code == 200 and degraded.text == "ready; redis degraded"


async def test_a_frozen_redis_costs_one_short_timeout_not_one_per_request(
    database: Database, own_redis: subprocess.Popen[bytes]
) -> None:
    url = own_redis.url  # type: ignore[attr-defined]
    async with app_client(database, redis_url=url) as http:
        await http.post("/graphql", json={"query": QUERY})
        own_redis.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        answers = [
            await http.post("/graphql", json=_persisted(f"{QUERY} # {n}", with_document=n % 2 == 0))
            for n in range(20)
        ]
        took = time.monotonic() - started
    codes = {a.json().get("errors", [{}])[0].get("extensions", {}).get("code") for a in answers}
    # hash-only requests for documents never seen here are unknown, as they should be
    assert codes <= {None, "PERSISTED_QUERY_NOT_FOUND"}
    assert all(a.status_code == 200 for a in answers)
    # a request that waited for Redis each time would take 20 times 0.25 s and more
    assert took < 4, f"20 requests took {took:.1f} s"
