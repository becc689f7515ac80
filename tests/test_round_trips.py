"""Round trips to PostgreSQL per request, counted on the wire: a database on another host
pays each one in latency, on every request. A read costs one round trip per statement (no
transaction around it, no reset query when its connection goes back to the pool, no
session settings), a write its statements plus BEGIN and COMMIT."""

from __future__ import annotations

import asyncio
from typing import Any

from core.db import Database
from tests.conftest import app_client
from tests.servers import PostgresProxy
from tests.sessions import access_token

ORGANIZATION = '{ organization(slug: "acme") { name } }'
NESTED = """{ organization(slug: "acme") { projects(first: 3) { nodes { key
  issues(first: 5) { nodes { number author { login }
  comments(first: 3) { nodes { body author { login } } } } } } } } }"""
CREATE = """mutation($p: ID!) { createIssue(input: {projectId: $p, title: "Round trips"}) {
  issue { number } } }"""


class TurnCounter(PostgresProxy):
    """A TCP proxy to PostgreSQL that counts round trips: the times a connection's client
    speaks again after the server has answered (PostgreSQL's protocol takes turns; a batch
    of messages the client sends at once, as asyncpg's Parse/Bind/Execute/Sync, is one).
    The pool's connections only: the event hub's listening connection pings on its own."""

    turns = 0

    async def relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        answered = [True]  # per connection: the server spoke last

        async def client_to_server() -> None:
            counted = True
            while data := await reader.read(65536):
                if b"issuegraph-listener" in data:  # the events' LISTEN connection, not a
                    counted = False  # request's (its startup message names it)
                if answered[0] and counted:
                    self.turns += 1
                    answered[0] = False
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def server_to_client() -> None:
            while data := await up_reader.read(65536):
                answered[0] = True
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(client_to_server(), server_to_client(), return_exceptions=True)


async def _round_trips(
    http: Any, proxy: TurnCounter, body: dict[str, Any], token: str | None = None
) -> tuple[int, int]:
    """(round trips, statements) of one request, after two unmeasured runs of it (the
    connection has then prepared its statements, as a busy server's have)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    for _ in range(2):
        await http.post("/graphql", json=body, headers=headers)
    proxy.turns = 0
    response = await http.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    timing = response.headers["server-timing"]  # sql;desc="N statements"
    return proxy.turns, int(timing.split('"')[1].split()[0])


async def test_a_request_costs_one_round_trip_per_statement_and_a_write_two_more(
    database_url: str, committed: dict[str, Any]
) -> None:
    proxy = TurnCounter(database_url)
    token = await access_token(database_url, committed["user"])
    async with proxy:
        behind = await Database.connect(proxy.url(), min_size=1, max_size=1)
        try:
            async with app_client(behind, server_timing=True) as http:
                one = await _round_trips(http, proxy, {"query": ORGANIZATION})
                nested = await _round_trips(http, proxy, {"query": NESTED})
                signed_in = await _round_trips(http, proxy, {"query": NESTED}, token)
                create = {"query": CREATE, "variables": {"p": committed["project"]}}
                write = await _round_trips(http, proxy, create, token)
        finally:
            await behind.close()
    print(f"\n[round trips, statements] {one=} {nested=} {signed_in=} {write=}")
    assert one == (1, 1)
    # the organization, written whole with its projects, their issues, comments and
    # authors by PostgreSQL
    assert nested == (1, 1)
    assert signed_in == (2, 2)  # and the viewer with their session, in one statement
    trips, statements = write
    assert trips == statements + 2  # BEGIN and COMMIT
