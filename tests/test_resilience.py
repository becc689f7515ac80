"""Resilience, with real server processes (these commit):

- a restart of PostgreSQL under load: the API answers 503/UNAVAILABLE at once while the
  database is down (never a 500 or a hang), recovers by itself within seconds of it coming
  back, and loses or repeats none of the writes it acknowledged;
- a graceful shutdown on SIGTERM: in-flight requests finish, WebSockets are closed with a
  proper code, new connections are refused and the process exits by itself.

The restart test runs on a throwaway PostgreSQL of its own (tests/pg.py), never on the
machine's nor on the suite's. Requests in flight at a given moment are made deterministic
with locks held from the test (a request waiting on a lock is in flight for as long as the
test likes), not with timing. Every wait is bounded; times are only hang guards, and the
figures measured (downtime, recovery, latencies) are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from execution.ids import decode_id, encode_id
from server.__main__ import prepare_database
from tests.conftest import TEST_SETTINGS
from tests.pg import ThrowawayPostgres, throwaway_postgres
from tests.servers import _wait_healthy, free_port, server_processes
from tests.sessions import access_token

SCALE = 0.05
REQUEST_TIMEOUT = 10.0  # seconds a client waits for one answer: the hang guard
CLIENTS = 4
WARM_UP = 3.0  # seconds of load on a healthy database before the restart
DOWNTIME = 2.0  # seconds the database stays down
AFTER_RECOVERY = 3.0  # seconds of load once the API has recovered
RECOVERY_BOUND = 20.0  # seconds the API may take to recover: a hang guard
MAX_CALLS_PER_CLIENT = 1_000  # bounds each load loop in count as well as in time
PAUSE = 0.05  # between one client's requests
LOCK_WAIT_BOUND = 10.0  # seconds for requests to reach the lock the test holds
EXIT_BOUND = 15.0  # seconds the server may take to exit after SIGTERM
HOLD = 1.0  # seconds requests are kept in flight after SIGTERM

QUERY = """query($p: ID!) { node(id: $p) { ... on Project { key
  issues(first: 5) { totalCount nodes { number title state } } } } }"""
ANONYMOUS_QUERY = """{ organization(slug: "acme") { slug name } }"""
CREATE = """mutation($p: ID!, $t: String!, $c: String) { createIssue(input: {projectId: $p,
  title: $t, clientMutationId: $c}) { issue { id number title } userErrors { code }
  clientMutationId } }"""
COMMENTS = """query($i: ID!) { node(id: $i) { ... on Issue { number
  comments(first: 5) { totalCount nodes { body } } } } }"""
EVENTS = """subscription($p: ID!) { issueEvents(projectId: $p) { kind issue { title } } }"""
WAITING_ON_LOCKS = """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
  AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"""


# ---------------------------------------------------------------------------------------
# HTTP calls and how their answers are judged
# ---------------------------------------------------------------------------------------


@dataclass
class Call:
    """One HTTP request and its answer (`failure` when there was no answer)."""

    kind: str
    sent: float
    took: float
    status: int | None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    failure: str | None = None

    @property
    def codes(self) -> list[str]:
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        return [str((e.get("extensions") or {}).get("code")) for e in errors or ()]

    @property
    def ok(self) -> bool:
        if self.kind == "readyz":
            return self.status == 200
        if self.status != 200 or not isinstance(self.body, dict) or self.body.get("errors"):
            return False
        data = self.body.get("data")
        if self.kind.startswith("create"):
            payload = (data or {}).get("createIssue") or {}
            return bool((payload.get("issue") or {}).get("id")) and not payload["userErrors"]
        return data is not None

    @property
    def unavailable(self) -> bool:
        """The answer the API owes while its database is down: 503 with UNAVAILABLE (and a
        Retry-After), or a GraphQL result whose every error is UNAVAILABLE; for /readyz,
        503 with a Retry-After."""
        if self.kind == "readyz":
            return self.status == 503 and "retry-after" in self.headers
        codes = self.codes
        if not codes or any(code != "UNAVAILABLE" for code in codes):
            return False
        if self.status == 503:
            return "retry-after" in self.headers
        return self.status == 200

    def __str__(self) -> str:
        answer = self.failure or f"{self.status} {json.dumps(self.body)[:300]}"
        return f"{self.kind} sent at {self.sent:.2f}s, {self.took:.2f}s: {answer}"


class Api:
    """An HTTP client to one server that records every call."""

    def __init__(self, base: str, started: float) -> None:
        self.base = base
        self.started = started
        self.calls: list[Call] = []
        self._http = httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def graphql(
        self, kind: str, query: str, token: str | None = None, **variables: Any
    ) -> Call:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self._call(
            kind, "POST", "/graphql", headers=headers, json={"query": query, "variables": variables}
        )

    async def readyz(self) -> Call:
        return await self._call("readyz", "GET", "/readyz")

    async def _call(self, kind: str, method: str, path: str, **options: Any) -> Call:
        sent = time.monotonic()
        call = Call(kind, sent - self.started, 0.0, None)
        try:
            response = await self._http.request(method, path, **options)
        except httpx.TimeoutException as exc:
            call.failure = f"no answer within {REQUEST_TIMEOUT:g}s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            call.failure = f"transport error: {type(exc).__name__}: {exc}"
        else:
            call.status = response.status_code
            call.headers = {k.lower(): v for k, v in response.headers.items()}
            try:
                call.body = response.json()
            except ValueError:
                call.body = response.text[:300]
        call.took = time.monotonic() - sent
        self.calls.append(call)
        return call


# ---------------------------------------------------------------------------------------
# 1. A database restart under load
# ---------------------------------------------------------------------------------------


@dataclass
class Acme:
    """What the load needs from the throwaway database."""

    alice: int
    web: int
    ops: int
    ops_issue: int
    web_numbers: tuple[int, int]  # WEB's issue_count, and its highest issue number


@dataclass
class Ledger:
    """Every createIssue sent: its clientMutationId and, once acknowledged, its issue."""

    tag: str
    acknowledged: dict[str, str] = field(default_factory=dict)  # cmid -> issue global id
    pending: list[str] = field(default_factory=list)  # sent, not acknowledged yet
    sent: dict[str, int] = field(default_factory=dict)  # cmid -> project pk
    attempts: dict[str, int] = field(default_factory=dict)

    def title(self, cmid: str) -> str:
        return f"resilience {cmid}"

    def record(self, cmid: str, call: Call) -> None:
        self.attempts[cmid] = self.attempts.get(cmid, 0) + 1
        if call.ok:
            issue = call.body["data"]["createIssue"]["issue"]
            assert issue["title"] == self.title(cmid), call
            earlier = self.acknowledged.get(cmid)
            assert earlier in (None, issue["id"]), (
                f"{cmid} acknowledged as {earlier} and then as {issue['id']}"
            )
            self.acknowledged[cmid] = issue["id"]
            if cmid in self.pending:
                self.pending.remove(cmid)
        elif cmid not in self.pending and cmid not in self.acknowledged:
            self.pending.append(cmid)


async def _create(
    api: Api, token: str, project: int | None, ledger: Ledger, cmid: str, kind: str = "create"
) -> Call:
    # A retry (project None) goes to the project of the first attempt.
    project = ledger.sent[cmid] if project is None else ledger.sent.setdefault(cmid, project)
    call = await api.graphql(
        kind, CREATE, token, p=encode_id("Project", project), t=ledger.title(cmid), c=cmid
    )
    ledger.record(cmid, call)
    return call


async def _client(
    api: Api, token: str, acme: Acme, ledger: Ledger, number: int, stop: asyncio.Event
) -> None:
    """Queries and creates, alternately; an unacknowledged create is sent again (same
    clientMutationId) before any new one, as a careful client would."""
    project = encode_id("Project", acme.web)
    for n in range(MAX_CALLS_PER_CLIENT):
        if stop.is_set():
            return
        if n % 2 == 0:
            await api.graphql("query", QUERY, token, p=project)
        else:
            mine = [c for c in ledger.pending if c.startswith(f"{ledger.tag}-{number}-")]
            cmid = mine[0] if mine else f"{ledger.tag}-{number}-{n}"
            await _create(api, token, acme.web, ledger, cmid)
        await asyncio.sleep(PAUSE)


async def _acme(url: str) -> Acme:
    connection = await asyncpg.connect(url)
    try:
        alice = await connection.fetchval("SELECT id FROM users WHERE login = 'alice'")
        projects: dict[str, int] = {
            key: id_
            for key, id_ in await connection.fetch(
                "SELECT p.key, p.id FROM projects p JOIN organizations o ON o.id ="
                " p.organization_id WHERE o.slug = 'acme' AND p.key IN ('WEB', 'OPS')"
            )
        }
        ops_issue = await connection.fetchval(
            "SELECT id FROM issues WHERE project_id = $1 ORDER BY id LIMIT 1", projects["OPS"]
        )
        numbers = await connection.fetchrow(
            "SELECT issue_count, (SELECT max(number) FROM issues WHERE project_id = $1)"
            " FROM projects WHERE id = $1",
            projects["WEB"],
        )
        role = await connection.fetchval(
            "SELECT m.role FROM memberships m JOIN organizations o ON o.id = m.organization_id"
            " WHERE o.slug = 'acme' AND m.user_id = $1",
            alice,
        )
    finally:
        await connection.close()
    assert role == "OWNER" and ops_issue is not None and numbers is not None
    return Acme(alice, projects["WEB"], projects["OPS"], ops_issue, tuple(numbers))


@contextlib.asynccontextmanager
async def _locks(url: str, *statements: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction holding the locks `statements` take, until the block ends (or the
    database goes away under it)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("BEGIN")
        for statement in statements:
            await connection.execute(statement)
        yield connection
    finally:
        if not connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.execute("ROLLBACK"), 5)
        connection.terminate()


async def _until_waiting(connection: asyncpg.Connection, count: int) -> None:
    """Until `count` other sessions wait on a lock (the requests are then in flight)."""
    deadline = time.monotonic() + LOCK_WAIT_BOUND
    waiting = 0
    while time.monotonic() < deadline:
        # (pg_stat_activity is a snapshot kept for the whole transaction unless cleared)
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await connection.fetchval(WAITING_ON_LOCKS)
        if waiting >= count:
            return
        await asyncio.sleep(0.05)
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    activity = await connection.fetch(
        "SELECT state, wait_event_type, wait_event, left(query, 120) AS query"
        " FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()"
    )
    raise AssertionError(
        f"only {waiting} of {count} requests reached the lock: " + "\n".join(map(str, activity))
    )


@pytest.fixture
def throwaway() -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as server:
        yield server


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_database_restart_under_load(throwaway: ThrowawayPostgres, mode: str) -> None:
    throwaway.psql('CREATE DATABASE "issuegraph";')
    url = throwaway.url("issuegraph")
    await prepare_database(url, SCALE)
    acme = await _acme(url)
    token = await access_token(url, acme.alice)
    ledger = Ledger(uuid.uuid4().hex[:8])

    with server_processes(
        1,
        url,
        JWT_SECRET=TEST_SETTINGS.jwt_secret or "",
        BCRYPT_ROUNDS="4",
        DB_CONNECT_TIMEOUT="1",
        DB_ACQUIRE_TIMEOUT="1",
        CIRCUIT_RESET="1",
    ) as (base,):
        started = time.monotonic()
        api = Api(base, started)
        stop = asyncio.Event()
        load = [
            asyncio.create_task(_client(api, token, acme, ledger, n, stop)) for n in range(CLIENTS)
        ]
        try:
            figures = await _restart(throwaway, mode, url, api, token, acme, ledger, stop)
            await asyncio.wait_for(asyncio.gather(*load), REQUEST_TIMEOUT + 5)
            # The database is back: a careful client's retries of what was not
            # acknowledged now succeed, and repeating an acknowledged create (same
            # clientMutationId) answers with the same issue rather than a second one.
            for cmid in list(ledger.pending):
                await _create(api, token, None, ledger, cmid, "create (final retry)")
            for cmid in itertools.islice(list(ledger.acknowledged), 5):
                await _create(api, token, None, ledger, cmid, "create (repeat)")
        finally:
            stop.set()
            for task in load:
                task.cancel()
            await asyncio.gather(*load, return_exceptions=True)
            await api.aclose()

    _report_restart(mode, figures, api, ledger)
    problems = await _check_writes(url, acme, ledger) + _check_answers(api.calls, figures)
    assert not problems, "\n\n".join(problems)


async def _restart(
    pg: ThrowawayPostgres,
    mode: str,
    url: str,
    api: Api,
    token: str,
    acme: Acme,
    ledger: Ledger,
    stop: asyncio.Event,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    await asyncio.sleep(WARM_UP)
    healthy = await api.graphql(
        "probe: query before", QUERY, token, p=encode_id("Project", acme.web)
    )
    assert healthy.ok, healthy
    created = await _create(
        api, token, acme.web, ledger, f"{ledger.tag}-before", "probe: create before"
    )
    count, highest = acme.web_numbers
    assert created.ok, (
        f"createIssue fails on a healthy database, before any restart: {created}\n(the "
        f"freshly prepared database has projects.issue_count = {count} for WEB, whose "
        f"issues go up to #{highest})"
    )
    assert (await api.readyz()).status == 200

    # Requests in flight when the database goes, at each stage where a connection can be
    # lost: a create of alice's in project OPS, inside its transaction, waiting for the
    # project row (without a clientMutationId: its receipt's foreign key would lock
    # `users`); a query inside execution, waiting for the comments table; and then every
    # signed-in request, the load's included, while loading its viewer, before execution,
    # waiting for the users table.
    async with _locks(
        url,
        f"SELECT 1 FROM projects WHERE id = {acme.ops} FOR UPDATE",
        "LOCK TABLE comments IN ACCESS EXCLUSIVE MODE",
    ) as locker:
        in_flight = [
            asyncio.create_task(
                api.graphql(
                    "probe: create in flight",
                    CREATE,
                    token,
                    p=encode_id("Project", acme.ops),
                    t=f"resilience {ledger.tag} in flight",
                    c=None,
                )
            ),
            asyncio.create_task(
                api.graphql(
                    "probe: query in flight", COMMENTS, token, i=encode_id("Issue", acme.ops_issue)
                )
            ),
        ]
        await _until_waiting(locker, len(in_flight))
        await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        in_flight.append(
            asyncio.create_task(
                api.graphql(
                    "probe: query in flight (viewer)",
                    QUERY,
                    token,
                    p=encode_id("Project", acme.web),
                )
            )
        )
        await _until_waiting(locker, len(in_flight) + CLIENTS)
        figures["stop_began"] = time.monotonic() - api.started
        await asyncio.to_thread(pg.stop, mode)
        figures["stopped"] = time.monotonic() - api.started
    figures["in_flight"] = await asyncio.wait_for(asyncio.gather(*in_flight), REQUEST_TIMEOUT + 5)
    figures["in_flight_load"] = [
        c
        for c in api.calls
        if c.sent < figures["stop_began"] and c.sent + c.took > figures["stop_began"]
    ]

    # While it is down: /readyz says so, and every kind of request fails fast.
    down_until = time.monotonic() + DOWNTIME
    figures["down_probes"] = probes = []
    for n in itertools.count():
        if time.monotonic() >= down_until or n >= 40:
            break
        probes.append(await api.readyz())
        probes.append(
            await api.graphql(
                "probe: query while down", QUERY, token, p=encode_id("Project", acme.web)
            )
        )
        probes.append(await api.graphql("probe: anonymous query while down", ANONYMOUS_QUERY))
        probes.append(
            await _create(
                api, token, acme.web, ledger, f"{ledger.tag}-down-{n}", "probe: create while down"
            )
        )
        await asyncio.sleep(0.1)
    figures["start_began"] = time.monotonic() - api.started
    await asyncio.to_thread(pg.start)
    figures["started"] = time.monotonic() - api.started

    # Back: within seconds, queries succeed and /readyz is 200 again, by themselves.
    deadline = time.monotonic() + RECOVERY_BOUND
    query_ok = ready_ok = None
    while time.monotonic() < deadline and (query_ok is None or ready_ok is None):
        if query_ok is None:
            call = await api.graphql(
                "probe: query after", QUERY, token, p=encode_id("Project", acme.web)
            )
            if call.ok:
                query_ok = time.monotonic() - api.started
        if ready_ok is None and (await api.readyz()).status == 200:
            ready_ok = time.monotonic() - api.started
        await asyncio.sleep(0.1)
    figures["query_ok"], figures["ready_ok"] = query_ok, ready_ok
    assert query_ok is not None and ready_ok is not None, (
        f"not recovered {RECOVERY_BOUND:g}s after the database came back: query "
        f"{'ok' if query_ok else 'failing'}, /readyz {'ok' if ready_ok else 'failing'}; "
        f"last calls:\n" + "\n".join(map(str, api.calls[-6:])) + "\n" + pg.log_tail()
    )
    figures["recovered"] = max(query_ok, ready_ok)
    await asyncio.sleep(AFTER_RECOVERY)
    stop.set()
    return figures


def _brief(call: Call) -> str:
    return f"{call.kind}: {call.failure or call.status} {','.join(call.codes)}".rstrip()


def _report_restart(mode: str, figures: dict[str, Any], api: Api, ledger: Ledger) -> None:
    down = [
        c
        for c in api.calls
        if figures["stopped"] <= c.sent and c.sent + c.took <= figures["start_began"]
    ]
    kinds: dict[str, int] = {}
    for call in api.calls:
        label = "ok" if call.ok else ("unavailable" if call.unavailable else "other")
        kinds[label] = kinds.get(label, 0) + 1
    print(
        f"\n[restart, {mode}] stop took {figures['stopped'] - figures['stop_began']:.2f}s; "
        f"down {figures['start_began'] - figures['stopped']:.2f}s "
        f"(start took {figures['started'] - figures['start_began']:.2f}s); "
        f"queries ok {figures['query_ok'] - figures['started']:.2f}s and /readyz 200 "
        f"{figures['ready_ok'] - figures['started']:.2f}s after it was back; "
        f"{len(down)} requests while down, slowest answer "
        f"{max((c.took for c in down), default=0):.3f}s; answers {kinds}; "
        f"{len(figures['in_flight_load'])} in flight at the stop: "
        + "; ".join(sorted(set(map(_brief, figures["in_flight_load"]))))
        + f"; creates sent {len(ledger.sent)}, acknowledged {len(ledger.acknowledged)}, "
        f"never acknowledged {len(ledger.pending)}"
    )


def _check_answers(calls: list[Call], figures: dict[str, Any]) -> list[str]:
    problems = []
    # No hang, no 500, no INTERNAL: each answer is a success or an honest UNAVAILABLE.
    hung = [c for c in calls if c.failure]
    if hung:
        problems.append("requests without an answer:\n" + "\n".join(map(str, hung[:10])))
    wrong = [c for c in calls if not (c.ok or c.unavailable or c.failure)]
    if wrong:
        problems.append(
            "answers neither successful nor UNAVAILABLE (503 with Retry-After, "
            "or errors all UNAVAILABLE):\n" + "\n".join(map(str, wrong[:10]))
        )
    # While the database was down nothing succeeded, and /readyz said 503.
    probes = figures["down_probes"]
    if not probes:
        problems.append("no request was sent while the database was down")
    not_unavailable = [c for c in probes if not c.unavailable]
    if not_unavailable:
        problems.append(
            "while the database was down:\n" + "\n".join(map(str, not_unavailable[:10]))
        )
    # Once recovered, it stays recovered.
    after = [c for c in calls if c.sent >= figures["recovered"] and c.kind != "readyz"]
    failed_after = [c for c in after if not c.ok]
    if not after or failed_after:
        problems.append("failures after recovery:\n" + "\n".join(map(str, failed_after[:10])))
    return problems


async def _check_writes(url: str, acme: Acme, ledger: Ledger) -> list[str]:
    """Every acknowledged create is in the database, once; no clientMutationId made two
    issues; every create a client kept retrying ended acknowledged."""
    connection = await asyncpg.connect(url)
    try:
        issues = await connection.fetch(
            "SELECT id, project_id, title FROM issues WHERE title LIKE $1",
            f"resilience {ledger.tag}-%",
        )
        receipts: dict[str, int] = {
            key: result
            for key, result in await connection.fetch(
                "SELECT client_mutation_id, result_id FROM mutation_receipts WHERE user_id = $1"
                " AND mutation = 'createIssue' AND client_mutation_id LIKE $2",
                acme.alice,
                f"{ledger.tag}-%",
            )
        }
    finally:
        await connection.close()
    print(
        f"[restart] creates acknowledged {len(ledger.acknowledged)}, found "
        f"{len(issues)} issues for {len(ledger.sent)} clientMutationIds sent, "
        f"{sum(ledger.attempts.values())} create requests in all"
    )
    problems = []
    by_title: dict[str, list[int]] = {}
    for row in issues:
        by_title.setdefault(row["title"], []).append(row["id"])
    duplicated = {title: ids for title, ids in by_title.items() if len(ids) > 1}
    if duplicated:
        problems.append(f"creates repeated under one clientMutationId: {duplicated}")
    missing = {
        cmid: issue
        for cmid, issue in ledger.acknowledged.items()
        if by_title.get(ledger.title(cmid)) != [decode_id(issue, "Issue")[1]]
    }
    if missing:
        problems.append(f"acknowledged creates not (or not so) in the database: {missing}")
    wrong_receipts = {
        cmid: receipts.get(cmid)
        for cmid, issue in ledger.acknowledged.items()
        if receipts.get(cmid) != decode_id(issue, "Issue")[1]
    }
    if wrong_receipts:
        problems.append(f"receipts not naming the acknowledged issue: {wrong_receipts}")
    if ledger.pending:
        problems.append(
            f"creates never acknowledged, even once the database was back: {ledger.pending}"
        )
    unasked = set(by_title) - {ledger.title(cmid) for cmid in ledger.sent}
    if unasked:
        problems.append(f"issues no client asked for: {unasked}")
    return problems


# ---------------------------------------------------------------------------------------
# 2. A graceful shutdown on SIGTERM
# ---------------------------------------------------------------------------------------


def _uvicorn(port: int) -> list[str]:
    return [
        *("-m", "uvicorn", "server.main:create_app", "--factory"),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "info"),
    ]


@contextlib.contextmanager
def _server_process(
    database_url: str, log: Path, command: Any = _uvicorn, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """One server process as tests/servers.py starts them (uvicorn, or `command(port)`'s
    arguments to python), but handed to the test (to be signalled) and logging at INFO
    (uvicorn's shutdown steps) to `log`."""
    port = free_port()
    environment = (
        os.environ | {"DATABASE_URL": database_url, "LOG_LEVEL": "info", "PORT": str(port)} | env
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, *command(port)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, process)
            yield process, base
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


@dataclass
class World:
    project: int
    owner: int
    token: str


async def _world(database_url: str) -> World:
    """A committed organization of its own with a public project (this test's locks and
    writes touch nothing another test reads)."""
    connection = await asyncpg.connect(database_url)
    try:
        tag = uuid.uuid4().hex[:8]
        owner = await connection.fetchval(
            "INSERT INTO users (login, email, password_hash) VALUES ($1, $1 || '@x.test', '!')"
            " RETURNING id",
            f"shutdown-{tag}",
        )
        org = await connection.fetchval(
            "INSERT INTO organizations (slug, name) VALUES ($1, $1) RETURNING id", f"shutdown-{tag}"
        )
        await connection.execute("INSERT INTO memberships VALUES ($1, $2, 'OWNER')", org, owner)
        project = await connection.fetchval(
            "INSERT INTO projects (organization_id, key, name, visibility) VALUES ($1, 'DOWN',"
            " 'Shutdown', 'PUBLIC') RETURNING id",
            org,
        )
        token = await access_token(connection, owner)
    finally:
        await connection.close()
    return World(project, owner, token)


async def _subscribed(base: str, world: World) -> ClientConnection:
    """A graphql-transport-ws connection subscribed (anonymously) to the project's events,
    the subscription known to be live (it delivered a probe's event)."""
    ws = await connect(
        base.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT))
    assert ack == {"type": "connection_ack"}, ack
    await ws.send(
        json.dumps(
            {
                "id": "e",
                "type": "subscribe",
                "payload": {
                    "query": EVENTS,
                    "variables": {"p": encode_id("Project", world.project)},
                },
            }
        )
    )
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT) as http:
        for attempt in range(50):  # subscriptions register asynchronously: poke until seen
            response = await http.post(
                "/graphql",
                headers={"authorization": f"Bearer {world.token}"},
                json={
                    "query": CREATE,
                    "variables": {
                        "p": encode_id("Project", world.project),
                        "t": f"probe {attempt}",
                    },
                },
            )
            assert response.status_code == 200 and "errors" not in response.json(), response
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            assert message["type"] == "next", message
            assert message["payload"]["data"]["issueEvents"]["kind"] == "OPENED", message
            return ws
    raise AssertionError("the subscription never delivered an event")


async def test_graceful_shutdown(database_url: str, tmp_path: Path) -> None:
    world = await _world(database_url)
    log = tmp_path / "server.log"
    project = encode_id("Project", world.project)
    # Long enough limits that the requests held below time out on none of them.
    with _server_process(
        database_url,
        log,
        JWT_SECRET=TEST_SETTINGS.jwt_secret or "",
        BCRYPT_ROUNDS="4",
        REQUEST_TIMEOUT="60",
        STATEMENT_TIMEOUT_MS="60000",
        DB_COMMAND_TIMEOUT="60",
    ) as (process, base):
        ws = await _subscribed(base, world)
        api = Api(base, time.monotonic())
        issue = encode_id("Issue", await _an_issue(database_url, world))
        probe = await api.graphql("query", COMMENTS, world.token, i=issue)
        assert probe.ok, probe
        try:
            async with _locks(
                database_url,
                f"SELECT 1 FROM projects WHERE id = {world.project} FOR UPDATE",
                "LOCK TABLE comments IN ACCESS EXCLUSIVE MODE",
            ) as locker:
                # In flight: three creates waiting for the project row, a query waiting
                # for the comments table; all sent before the signal.
                in_flight = [
                    asyncio.create_task(
                        api.graphql(
                            "create",
                            CREATE,
                            world.token,
                            p=project,
                            t=f"in flight {n}",
                            c=f"shutdown-{n}",
                        )
                    )
                    for n in range(3)
                ]
                in_flight.append(
                    asyncio.create_task(api.graphql("query", COMMENTS, world.token, i=issue))
                )
                await _until_waiting(locker, len(in_flight))

                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()

                # The WebSocket is closed by the server, with a proper code.
                close_code = await _closed_by_server(ws)
                # New connections are refused while the in-flight requests still run.
                await _refused(base)
                # Hold the requests a moment longer: a server that did not wait for them
                # would be gone by now.
                await asyncio.sleep(HOLD)
                assert process.poll() is None, "the server exited before its requests ended"
                assert not any(task.done() for task in in_flight), [
                    str(task.result()) for task in in_flight if task.done()
                ]
            # The locks are gone: the in-flight requests complete, successfully.
            answers = await asyncio.wait_for(asyncio.gather(*in_flight), REQUEST_TIMEOUT + 5)
            try:
                code = await asyncio.to_thread(process.wait, EXIT_BOUND)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"no exit {EXIT_BOUND:g}s after SIGTERM:\n" + log.read_text()[-3000:]
                ) from None
            exited = time.monotonic() - signalled
        finally:
            await api.aclose()
            await ws.close()

    output = log.read_text()
    print(
        f"\n[shutdown] WebSocket close code {close_code}; exit code {code} "
        f"{exited:.2f}s after SIGTERM; in flight: " + "; ".join(map(str, answers))
    )
    assert all(answer.ok for answer in answers), "\n".join(map(str, answers))
    assert close_code in (1001, 1012), close_code
    # uvicorn, having shut down gracefully on SIGTERM, re-raises the signal so that its
    # parent sees how it ended: -SIGTERM from Popen, which is a clean exit (so is 0).
    assert code in (0, -signal.SIGTERM), f"exit code {code}:\n{output[-3000:]}"
    assert "Application shutdown complete" in output, output[-3000:]
    assert "Traceback" not in output, output[-5000:]
    connection = await asyncpg.connect(database_url)
    try:
        titles = {
            r[0]
            for r in await connection.fetch(
                "SELECT title FROM issues WHERE project_id = $1", world.project
            )
        }
    finally:
        await connection.close()
    assert {f"in flight {n}" for n in range(3)} <= titles


async def test_shutdown_ends_within_its_bound_whatever_the_database_does(
    database_url: str, tmp_path: Path
) -> None:
    """Requests that the database holds past SHUTDOWN_TIMEOUT: the server answers them 503
    UNAVAILABLE (JSON, with Retry-After) before the bound, commits none of their writes,
    and `python -m server run` exits with status 0 within the bound."""
    world = await _world(database_url)
    log = tmp_path / "server.log"
    project = encode_id("Project", world.project)
    bound = 3.0
    with _server_process(
        database_url,
        log,
        lambda port: ["-m", "server", "run"],
        JWT_SECRET=TEST_SETTINGS.jwt_secret or "",
        SHUTDOWN_TIMEOUT=f"{bound:g}",
        REQUEST_TIMEOUT="60",
        STATEMENT_TIMEOUT_MS="60000",
        DB_COMMAND_TIMEOUT="60",
    ) as (process, base):
        api = Api(base, time.monotonic())
        try:
            async with _locks(
                database_url, f"SELECT 1 FROM projects WHERE id = {world.project} FOR UPDATE"
            ) as locker:
                held = [
                    asyncio.create_task(
                        api.graphql("create", CREATE, world.token, p=project, t=f"held {n}")
                    )
                    for n in range(2)
                ]
                await _until_waiting(locker, len(held))
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                answers = await asyncio.wait_for(asyncio.gather(*held), bound + 5)
                answered = time.monotonic() - signalled
                code = await asyncio.to_thread(process.wait, bound + 5)
                exited = time.monotonic() - signalled
        finally:
            await api.aclose()
    output = log.read_text()
    print(f"\n[bounded shutdown] answered after {answered:.2f}s, exit {code} after {exited:.2f}s")
    for answer in answers:
        assert answer.status == 503, answer
        assert answer.codes == ["UNAVAILABLE"], answer
        assert "shutting down" in answer.body["errors"][0]["message"], answer
        assert answer.headers.get("retry-after"), answer
    assert code == 0, output[-3000:]
    assert exited < bound + 1.0, f"exited {exited:.2f}s after SIGTERM:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-5000:]
    connection = await asyncpg.connect(database_url)
    try:
        held_titles = await connection.fetchval(
            "SELECT count(*) FROM issues WHERE project_id = $1 AND title LIKE 'held %'",
            world.project,
        )
    finally:
        await connection.close()
    assert held_titles == 0  # answered 503, and not written


async def _an_issue(database_url: str, world: World) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        issue: int = await connection.fetchval(
            "SELECT min(id) FROM issues WHERE project_id = $1", world.project
        )
    finally:
        await connection.close()
    return issue


async def _closed_by_server(ws: ClientConnection) -> int | None:
    """Read until the server closes the connection; its close code."""
    for _ in range(20):
        try:
            await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("the server kept the WebSocket open")


async def _refused(base: str) -> None:
    """New HTTP and WebSocket connections are refused (bounded: the listening socket
    closes within uvicorn's 0.1 s tick of the signal)."""
    deadline = time.monotonic() + 5
    last: Any = None
    while time.monotonic() < deadline:
        try:  # a new client each time: a new connection, never a pooled one
            async with httpx.AsyncClient(timeout=2) as http:
                last = await http.get(f"{base}/healthz")
        except httpx.ConnectError:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"new connections still accepted after SIGTERM: {last}")
    with pytest.raises(OSError):
        await asyncio.wait_for(
            connect(
                base.replace("http://", "ws://") + "/graphql",
                subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            ),
            REQUEST_TIMEOUT,
        )
