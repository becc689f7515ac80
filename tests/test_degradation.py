"""When the database fails, the client hears it from the status code, and the server's own
bookkeeping cannot turn the failure into a 500."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from unittest.mock import ANY

import asyncpg
import pytest

from core.db import Database
from core.redis import RedisHealth
from execution.limits import Budget
from tests.conftest import app_client, running_app
from tests.servers import PostgresProxy, free_port
from tests.sessions import access_token

QUERY = '{ organization(slug: "acme") { name } }'


async def _kill_backend(database_url: str, connection: asyncpg.Connection) -> None:
    killer = await asyncpg.connect(database_url)
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", connection.get_server_pid())
    finally:
        await killer.close()


async def test_releasing_a_connection_whose_backend_died_is_no_error(database_url: str) -> None:
    """PostgreSQL ends the connection while a request holds it (a restart, a kill): giving
    it back must not fail the request. (A pool of its own: the pool may lend the dead
    connection once more before it notices, which only a request's retry absorbs.)"""
    own = await Database.connect(database_url, min_size=1, max_size=1)
    try:
        connection = await own.acquire()
        await _kill_backend(database_url, connection)
        await own.release(connection)
    finally:
        await own.close()


CREATE = """mutation($p: ID!) { createIssue(input: {projectId: $p, title: "After a restart"}) {
  issue { number } } }"""


async def test_a_pooled_connection_whose_backend_died_idle_costs_no_request(
    database_url: str, committed: dict[str, Any]
) -> None:
    """The pool keeps connections without a reset query, so one whose backend died while it
    sat in the pool is only found by the next request's first statement: that request still
    answers, a read and a mutation alike, because nothing had run on the dead connection."""
    single = await Database.connect(database_url, min_size=1, max_size=1)
    token = await access_token(database_url, committed["user"])
    answers = []
    try:
        async with app_client(single) as http:
            for document, variables in ((QUERY, {}), (CREATE, {"p": committed["project"]})):
                pooled = await single.acquire()  # the pool's one connection, idle in between
                await _kill_backend(database_url, pooled)
                await single.release(pooled)  # back in the pool before its end is noticed
                response = await http.post(
                    "/graphql",
                    json={"query": document, "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
                answers.append((response.status_code, response.json()))
    finally:
        await single.close()
    assert answers[0] == (200, {"data": {"organization": {"name": "Acme Inc."}}, "extensions": ANY})
    assert answers[1] == (
        200,
        {"data": {"createIssue": {"issue": {"number": 1}}}, "extensions": ANY},
    )


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


async def test_budgets_spent_while_redis_was_away_are_added_to_it_when_it_is_back(
    own_redis: subprocess.Popen[bytes],
) -> None:
    """An outage does not give clients a fresh budget: what a process counted in memory
    while Redis was frozen is added to Redis once it answers, where every process reads it."""
    url = own_redis.url  # type: ignore[attr-defined]
    health = RedisHealth(retry_after=0.2)
    budget = Budget(url, anonymous_per_hour=1_000, health=health)
    other = Budget(url, anonymous_per_hour=1_000)  # another process's view of Redis
    try:
        before = await budget.spend("address:a", 10, signed_in=False)
        own_redis.send_signal(signal.SIGSTOP)
        try:
            during = [await budget.spend("address:a", 100, signed_in=False) for _ in range(3)]
            assert health.degraded
        finally:
            own_redis.send_signal(signal.SIGCONT)
        while not health.usable:  # noqa: ASYNC110 (a clock, not an event: Redis is skipped a moment)
            await asyncio.sleep(0.05)
        after = await budget.spend("address:a", 1, signed_in=False)
        seen_elsewhere = await other.peek("address:a", signed_in=False)
    finally:
        await budget.aclose()
        await other.aclose()
    assert before.remaining == 990
    assert [state.remaining for state in during] == [900, 800, 700]  # counted in memory
    assert not health.degraded
    assert after.remaining == seen_elsewhere.remaining
    # The first spend during the freeze timed out on Redis, which may still have applied it
    # on waking (a timeout is ambiguous): then it is counted twice, never not at all.
    assert after.remaining in (1_000 - 10 - 300 - 1, 1_000 - 10 - 400 - 1)


class Blackhole(PostgresProxy):
    """A TCP proxy to PostgreSQL that can stop passing bytes either way, as a network
    partition does: nothing is refused, nothing arrives."""

    dropping = False

    async def relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.dropping:
                writer.write(data)
                await writer.drain()
        writer.close()


async def test_a_request_caught_by_a_partition_answers_by_its_deadline(
    database_url: str,
) -> None:
    async with Blackhole(database_url) as proxy:
        behind = await Database.connect(proxy.url(), min_size=1, max_size=2, command_timeout=10)
        try:
            async with app_client(behind, request_timeout=1) as http:
                before = await http.post("/graphql", json={"query": QUERY})
                proxy.dropping = True
                started = time.monotonic()
                caught = await http.post("/graphql", json={"query": QUERY})
                took = time.monotonic() - started
        finally:
            proxy.dropping = False
            await asyncio.wait_for(behind.close(), 5)
    assert before.status_code == 200
    assert caught.status_code == 504
    assert caught.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"
    # REQUEST_TIMEOUT and a margin: not the 2 s pool reset, nor a rollback's 10 s
    assert took < 1.5, f"answered after {took:.1f} s"


async def _call(app: Any, receive: Any, length: int) -> list[dict[str, Any]]:
    """One POST to the ASGI app with the given `receive`; the messages it sent back."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % length)],
        "client": ("127.0.0.9", 40000),
        "server": ("test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_body_that_never_finishes_arriving_is_refused_in_time(
    database: Database,
) -> None:
    async def stalled() -> dict[str, Any]:
        if not stalled.began:  # type: ignore[attr-defined]
            stalled.began = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b'{"query": "{', "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError

    stalled.began = False  # type: ignore[attr-defined]
    async with running_app(database, body_timeout=0.5) as app:
        started = time.monotonic()
        sent = await asyncio.wait_for(_call(app.asgi, stalled, 100), 10)
        took = time.monotonic() - started
    assert sent[0]["status"] == 408
    assert b'"BODY_TIMEOUT"' in sent[1]["body"]
    assert took < 3


async def test_a_client_that_leaves_before_its_body_is_no_server_error(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async with running_app(database) as app:
        sent = await _call(app.asgi, gone, 100)
    assert sent[0]["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
