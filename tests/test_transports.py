"""Every transport runs the one pipeline: what HTTP refuses, WebSocket refuses alike.

Each refusal of the bad-input suite (tests/test_bad_input.py) is sent over HTTP and over
WebSocket (graphql-transport-ws, to the same app in this process): both must refuse it with
the same `extensions.code` (for a limit, the same figure, value and limit), and no SQL may
run for it on either. Statements are counted by the database the app runs on: every
statement of every session it hands out, and every connection it lends from the pool.
Queries, mutations and subscriptions that do run over WebSocket spend the budget HTTP
spends, reported in `extensions.cost`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from core.db import Database, Session
from tests.conftest import running_app
from tests.servers import AppSocket
from tests.sessions import access_token
from tests.test_bad_input import (
    ALIASES_1000,
    COST_100_CUBED,
    DEEP_ORGANIZATIONS,
    INCLUDE_ON_60_FRAGMENTS,
    OVER_ANONYMOUS_BUDGET,
    STRICT,
    TOKENS_OVER_LIMIT,
)

HEALTHY = '{ organization(slug: "acme") { name } }'
BUDGET = '{ rateLimit { cost remaining } organization(slug: "acme") { name } }'
CREATE = """mutation($p: ID!, $t: String!) { createIssue(input: {projectId: $p, title: $t}) {
  issue { title number } userErrors { code } } }"""
EVENTS = "subscription($p: ID!) { issueEvents(projectId: $p) { kind issue { title } } }"
# 31 aliases, one over the limit: a subscription is measured like any operation.
ALIASED_EVENTS = (
    "subscription($p: ID!) { issueEvents(projectId: $p) { "
    + " ".join(f"a{i}: kind" for i in range(31))
    + " } }"
)


class CountingDatabase(Database):
    """The test database, counting the statements of every session it hands out and the
    connections it lends: what a request cost in SQL, whichever transport carried it."""

    def __init__(self, database: Database) -> None:
        super().__init__(
            database.pool, acquire_timeout=5.0, url=database.url, breaker=database.breaker
        )
        self.sessions: list[Session] = []
        self.lent = 0

    def session(self) -> Session:
        session = super().session()
        self.sessions.append(session)
        return session

    async def acquire(self) -> asyncpg.Connection:
        self.lent += 1
        return await super().acquire()

    def work(self) -> tuple[int, int]:
        """(statements run, connections lent) so far."""
        return sum(s.statements for s in self.sessions), self.lent


@dataclass(frozen=True)
class Refusal:
    id: str
    query: str
    code: str
    http_status: int
    figure: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


COMPLEX = "QUERY_TOO_COMPLEX"
LOCKDOWN = {"persisted_queries_only": True}

REFUSALS = [
    Refusal("over-cost", COST_100_CUBED, COMPLEX, 400, "cost"),
    Refusal("too-deep", DEEP_ORGANIZATIONS, COMPLEX, 400, "depth"),
    Refusal("too-many-aliases", ALIASES_1000, COMPLEX, 400, "aliases"),
    Refusal("over-the-token-limit", TOKENS_OVER_LIMIT, COMPLEX, 400, "tokens"),
    Refusal("too-many-directives", INCLUDE_ON_60_FRAGMENTS, COMPLEX, 400, "directives"),
    # PERSISTED_QUERY_NOT_ALLOWED is a 200, as Apollo answers persisted-query errors.
    Refusal(
        "not-persisted-under-lockdown",
        "{ viewer { login } }",
        "PERSISTED_QUERY_NOT_ALLOWED",
        200,
        settings=LOCKDOWN,
    ),
    # More than an anonymous client's whole hourly budget.
    Refusal("over-budget", OVER_ANONYMOUS_BUDGET, "RATE_LIMITED", 429),
]


async def open_graphql(socket: AppSocket, token: str | None = None) -> None:
    """connection_init (with the token, if any) and its acknowledgement."""
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    await socket.send_json({"type": "connection_init", "payload": payload})
    assert await socket.receive_json() == {"type": "connection_ack"}


async def operation(
    socket: AppSocket, payload: dict[str, Any], operation_id: str = "1"
) -> list[dict[str, Any]]:
    """Subscribe with `payload`; the messages for it until its `complete` or `error`."""
    await socket.send_json({"id": operation_id, "type": "subscribe", "payload": payload})
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1]["type"] not in ("complete", "error"):
        message = await socket.receive_json()
        assert message.get("id") == operation_id, message
        messages.append(message)
    return messages


def manifest(tmp_path: Path, *documents: str) -> dict[str, Any]:
    """Settings for the lockdown with these documents persisted."""
    path = tmp_path / "persisted-queries.json"
    path.write_text(json.dumps({f"q{i}": d for i, d in enumerate(documents)}))
    return {"persisted_queries_file": str(path)}


@pytest.mark.parametrize("case", REFUSALS, ids=[case.id for case in REFUSALS])
async def test_http_and_websocket_refuse_alike_before_any_sql(
    database: Database, tmp_path: Path, case: Refusal
) -> None:
    counting = CountingDatabase(database)
    settings = case.settings | (manifest(tmp_path, HEALTHY) if case.settings else {})
    async with running_app(counting, **settings) as app:
        before = counting.work()
        response = await app.http.post("/graphql", json={"query": case.query}, headers=STRICT)
        after_http = counting.work()
        async with app.websocket() as socket:
            await open_graphql(socket)
            refused = await operation(socket, {"query": case.query})
            after_websocket = counting.work()
            healthy = await operation(socket, {"query": HEALTHY}, "2")
        after_healthy = counting.work()

    assert response.status_code == case.http_status, response.text[:500]
    assert "data" not in response.json() and "server-timing" not in response.headers
    over_http = response.json()["errors"][0]["extensions"]
    assert [m["type"] for m in refused] == ["error"], refused
    over_websocket = refused[0]["payload"][0]["extensions"]
    assert over_http["code"] == over_websocket["code"] == case.code
    if case.figure is not None:
        figures = ("figure", "value", "limit")
        assert [over_http[k] for k in figures] == [over_websocket[k] for k in figures]
        assert over_websocket["figure"] == case.figure
    assert after_http == before, "SQL ran for a request HTTP refused"
    assert after_websocket == after_http, "SQL ran for a request WebSocket refused"
    # the count is real: a query the same socket then sends does run SQL
    assert [m["type"] for m in healthy] == ["next", "complete"], healthy
    assert after_healthy[0] > after_websocket[0]


async def test_a_signed_in_query_over_a_limit_is_refused_before_its_viewer_is_loaded(
    database: Database, committed: dict[str, Any]
) -> None:
    counting = CountingDatabase(database)
    token = await access_token(database, committed["user"])
    async with running_app(counting) as app:
        # once the event hub listens: when it connects, it rechecks the sessions watched
        # so far (a statement of its own, which a socket's watch would otherwise draw
        # into the window counted here)
        await asyncio.wait_for(app.state.hub.connected.wait(), 10)
        async with app.websocket() as socket:
            await open_graphql(socket, token)
            before = counting.work()
            refused = await operation(socket, {"query": COST_100_CUBED})
            after_websocket = counting.work()
        response = await app.http.post(
            "/graphql", json={"query": COST_100_CUBED}, headers={"authorization": f"Bearer {token}"}
        )
    assert refused[0]["payload"][0]["extensions"]["code"] == COMPLEX
    assert response.json()["errors"][0]["extensions"]["code"] == COMPLEX
    assert after_websocket == before == counting.work()


async def test_queries_over_websocket_spend_the_budget_http_spends(database: Database) -> None:
    counting = CountingDatabase(database)
    async with running_app(counting) as app:
        async with app.websocket() as socket:
            await open_graphql(socket)
            first = await operation(socket, {"query": BUDGET}, "1")
            second = await operation(socket, {"query": BUDGET}, "2")
        over_http = (await app.http.post("/graphql", json={"query": BUDGET})).json()

    assert [m["type"] for m in first] == [m["type"] for m in second] == ["next", "complete"]
    assert first[0]["payload"]["data"]["organization"] == {"name": "Acme Inc."}
    cost = first[0]["payload"]["extensions"]["cost"]
    assert (cost["requested"], cost["limit"], cost["remaining"]) == (1, 5_000, 4_999)
    assert second[0]["payload"]["extensions"]["cost"]["remaining"] == 4_998
    assert second[0]["payload"]["data"]["rateLimit"] == {"cost": 1, "remaining": 4_998}
    # one budget per client address, whichever transport spends it
    assert over_http["extensions"]["cost"]["remaining"] == 4_997
    assert counting.work()[0] >= 3


async def test_a_mutation_over_websocket_runs_once_and_spends(
    database: Database, committed: dict[str, Any]
) -> None:
    counting = CountingDatabase(database)
    token = await access_token(database, committed["user"])
    variables = {"p": committed["project"], "t": "Sent over WebSocket"}
    async with running_app(counting) as app, app.websocket() as socket:
        await open_graphql(socket, token)
        created = await operation(socket, {"query": CREATE, "variables": variables})
        budget = await operation(socket, {"query": "{ rateLimit { remaining } }"}, "2")

    assert [m["type"] for m in created] == ["next", "complete"], created
    payload = created[0]["payload"]
    assert payload["data"]["createIssue"] == {
        "issue": {"title": "Sent over WebSocket", "number": 1},
        "userErrors": [],
    }
    cost = payload["extensions"]["cost"]
    assert (cost["requested"], cost["limit"], cost["remaining"]) == (1, 50_000, 49_999)
    assert budget[0]["payload"]["data"]["rateLimit"] == {"remaining": 49_998}
    connection = await database.acquire()
    try:
        titles = await connection.fetch(
            "SELECT title FROM issues WHERE project_id = $1", committed["project_id"]
        )
    finally:
        await database.release(connection)
    assert [r["title"] for r in titles] == ["Sent over WebSocket"]


async def test_a_subscription_is_checked_and_spends_once_when_it_starts(
    database: Database, committed: dict[str, Any]
) -> None:
    counting = CountingDatabase(database)
    token = await access_token(database, committed["user"])
    variables = {"p": committed["project"]}
    async with running_app(counting) as app, app.websocket() as socket:
        await open_graphql(socket)
        before = counting.work()
        refused = await operation(socket, {"query": ALIASED_EVENTS, "variables": variables})
        after_refusal = counting.work()
        await socket.send_json(
            {"id": "2", "type": "subscribe", "payload": {"query": EVENTS, "variables": variables}}
        )
        event = await first_event(app.http, socket, token, variables)
        await socket.send_json({"id": "2", "type": "complete"})
        budget = await operation(socket, {"query": "{ rateLimit { remaining } }"}, "3")

    assert refused[0]["type"] == "error"
    assert refused[0]["payload"][0]["extensions"]["figure"] == "aliases"
    assert after_refusal == before
    assert event["type"] == "next" and event["id"] == "2"
    assert event["payload"]["data"]["issueEvents"] == {"kind": "OPENED", "issue": {"title": "Live"}}
    assert counting.work() > after_refusal
    # 5,000: 10 for the refused document, 1 for the subscription when it started (none per
    # event), 1 for this query
    assert budget[0]["payload"]["data"]["rateLimit"] == {"remaining": 4_988}


async def test_a_persisted_document_runs_over_websocket_by_its_hash_under_lockdown(
    database: Database, tmp_path: Path
) -> None:
    digest = hashlib.sha256(HEALTHY.encode()).hexdigest()
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    settings = LOCKDOWN | manifest(tmp_path, HEALTHY)
    async with running_app(database, **settings) as app, app.websocket() as socket:
        await open_graphql(socket)
        by_hash = await operation(socket, {"extensions": extensions})
        unknown = await operation(socket, {"query": "{ __typename }"}, "2")
    assert by_hash[0]["payload"]["data"] == {"organization": {"name": "Acme Inc."}}
    assert unknown[0]["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"


async def first_event(
    http: Any, socket: AppSocket, token: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """Open issues until the subscription (which registers asynchronously) sees one."""
    for _ in range(20):
        await http.post(
            "/graphql",
            json={"query": CREATE, "variables": variables | {"t": "Live"}},
            headers={"authorization": f"Bearer {token}"},
        )
        try:
            message: dict[str, Any] = await socket.receive_json(timeout=0.5)
        except TimeoutError:
            continue
        return message
    raise AssertionError("no event reached the subscription")
