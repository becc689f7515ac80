"""Delivery latency of live issue events to many WebSocket subscribers.

    python -m bench.subscriptions [--subscribers 200] [--events 50] [--servers 1|2] …
    python -m bench --subscriptions …            (the same)

1. The scale-1 bench database is prepared as for the query benchmark (bench/database.py).
2. One or two real uvicorn servers start on it (bench/server.py), with a JWT_SECRET chosen
   here, so that this process can mint access tokens.
3. `--subscribers` WebSockets (graphql-transport-ws, one subscription each) subscribe to
   `issueEvents` of the public project WEB of `acme`: even-numbered ones anonymous, odd ones
   signed in as alice (OWNER of acme), so both access paths are exercised; pairs of them
   (one of each kind) are spread round-robin over the servers.
4. Registration: probe issues are created (as alice, over HTTP, on the first server) until
   every subscriber has received an event, then one barrier issue that every subscriber must
   receive; the queues are then empty.
5. Measurement: `--events` mutations are sent one after the other to the first server,
   `--pause` seconds apart: createIssue, then closeIssue of that issue, alternately. Each
   event is matched to what every subscriber received by (kind, issue title), and checked
   (issue number, actor alice). Latency is the receive time minus the time the mutation's
   HTTP response arrived (the change was committed then); receive minus send is reported
   too. All times come from one clock of this one process, so the client's own event-loop
   delays count in (its CPU share is reported).
6. Resume: `--resumers` of the subscribers (every k-th, of both kinds; 10% by default) close
   their socket when half of the measured mutations are sent and, while the others go on,
   subscribe again on a new socket with `after:` the cursor of the last event they got: the
   events since are replayed from the log, then live ones follow. Their deliveries are
   reported apart (their latency includes the time away); an event they lose or get twice
   is a failure.
7. Failed mutations, missing deliveries, `next` messages with errors, wrong payloads, other
   messages, closed sockets or a server that exits are failures: they are counted and
   described in the report, the run goes on (sending no more mutations after 3 failed in a
   row), and the exit code is 1.

Every issue this run creates is titled `subbench …` and deleted again at the end (with its
events, by cascade), and WEB's issue counter is restored, so the query benchmark's data
stays as it was loaded; a run that was killed leaves its issues to the next run, which
deletes them first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import re
import secrets
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench import report
from bench.database import bench_database, server_description, start_session
from bench.server import HOST, Server, ServerSpec, cpu_seconds, running_server
from core.settings import get_settings
from domain.auth import Tokens
from execution.ids import encode_id

log = logging.getLogger("bench")

SCALE = 1.0
ORGANIZATION, PROJECT, USER = "acme", "WEB", "alice"
TITLE_PREFIX = "subbench"
ISSUER, AUDIENCE, TOKEN_TTL = "issuegraph", "issuegraph-api", 900

SUBSCRIPTION = """subscription($p: ID!, $after: String) {
  issueEvents(projectId: $p, after: $after) { kind cursor issue { number title }
  actor { login } } }"""
CREATE = """mutation($p: ID!, $t: String!) { createIssue(input: {projectId: $p, title: $t}) {
  issue { id number title } userErrors { field code message } } }"""
CLOSE = """mutation($i: ID!) { closeIssue(input: {issueId: $i}) {
  issue { id number title state } userErrors { field code message } } }"""

CONNECT_TIMEOUT = 10.0  # per WebSocket: handshake and connection_ack
CONNECT_PARALLEL = 25  # WebSocket handshakes in flight at once
REQUEST_TIMEOUT = 10.0  # per mutation
REGISTER_TIMEOUT = 60.0  # until every subscriber has received a probe event
PROBE_WAIT = 0.5  # between probes while subscribers register
BARRIER_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0
MAX_MESSAGES = 5  # distinct problem messages kept per kind
GIVE_UP_AFTER = 3  # consecutive failed measured mutations: the rest are not sent

SERVER_SPEC_NAME = "strawberry"


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.subscriptions",
        description="Delivery latency of issueEvents to many WebSocket subscribers.",
    )
    parser.add_argument(
        "--subscribers",
        type=int,
        default=200,
        help="WebSocket subscribers, half anonymous, half alice (default 200)",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=50,
        help="measured mutations, createIssue and closeIssue alternately (default 50)",
    )
    parser.add_argument(
        "--servers",
        type=int,
        choices=(1, 2),
        default=1,
        help="server processes; subscribers spread over them, mutations go "
        "to the first (default 1)",
    )
    parser.add_argument(
        "--resumers",
        type=int,
        default=None,
        help="subscribers that reconnect mid-stream with `after:` their last cursor "
        "(default a tenth of the subscribers)",
    )
    parser.add_argument(
        "--pause", type=float, default=0.1, help="seconds between measured mutations (default 0.1)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=15.0,
        help="seconds to wait after the last mutation for the last deliveries (default 15)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8110,
        help="port of the first server; the second uses the next (default 8110)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results/subscriptions.md"),
        help="the report; a section per configuration, the others kept "
        "(default bench/results/subscriptions.md)",
    )
    args = parser.parse_args(argv)
    if args.resumers is None:
        args.resumers = args.subscribers // 10
    if not 0 <= args.resumers < args.subscribers:
        parser.error("--resumers must be >= 0 and fewer than --subscribers")
    if args.subscribers < 1 or args.events < 1 or args.pause < 0 or args.settle <= 0:
        parser.error("--subscribers and --events must be >= 1, --pause >= 0, --settle > 0")
    return args


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class Event:
    """One measured mutation and the event it should produce."""

    index: int
    kind: str  # OPENED or CLOSED
    title: str
    number: int | None = None
    sent: float = math.nan
    responded: float = math.nan
    problem: str | None = None  # the mutation failed or was not sent

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.title)


@dataclass(slots=True)
class Arrival:
    at: float
    number: int | None
    actor: str | None
    measured: bool  # received during the measured window


@dataclass(eq=False, slots=True)
class Subscriber:
    index: int
    server: int  # 0-based index into the servers
    signed_in: bool
    resumer: bool = False  # reconnects mid-stream with `after:`
    cursor: str | None = None  # of the last event received
    reconnecting: bool = False
    ws: ClientConnection | None = None
    task: asyncio.Task[None] | None = None
    registered: bool = False
    arrivals: dict[tuple[str, str], Arrival] = field(default_factory=dict)
    failed: list[tuple[float, bool]] = field(default_factory=list)  # (at, measured): a
    # `next` whose issue could not be resolved (null, with `errors`): not attributable
    duplicates: int = 0
    resyncs: list[bool] = field(default_factory=list)  # one per RESYNC: measured window?
    errors: Counter[str] = field(default_factory=Counter)  # "errors" in a next, error msgs
    other: Counter[str] = field(default_factory=Counter)  # unexpected messages
    closed: str | None = None

    @property
    def group(self) -> str:
        return USER if self.signed_in else "anonymous"


@dataclass(slots=True)
class Shared:
    """What the readers and the driver share."""

    measuring: bool = False
    finished: bool = False  # set before this process closes the sockets itself
    expected: set[tuple[str, str]] = field(default_factory=set)
    outstanding: int = 0  # measured deliveries still to come
    all_in: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # any registration


@dataclass(slots=True)
class Result:
    events: list[Event] = field(default_factory=list)
    subscribers: list[Subscriber] = field(default_factory=list)
    window: float = 0.0  # seconds, first measured send to last delivery (or give-up)
    server_cpu: list[float] = field(default_factory=list)  # seconds per server, in window
    client_cpu: float = 0.0
    register_seconds: float = 0.0
    probes: int = 0
    failed_probes: Counter[str] = field(default_factory=Counter)
    server_logs: list[list[str]] = field(default_factory=list)
    server_exits: list[int | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- database


@dataclass(frozen=True, slots=True)
class Fixture:
    url: str
    project_pk: int
    user_pk: int
    issue_count: int  # WEB's counter as loaded, restored at the end
    session_pk: int  # a session of the user, which the run's access token names


async def prepare(url: str, result: Result) -> Fixture:
    connection = await asyncpg.connect(url)
    try:
        project_pk = await connection.fetchval(
            "SELECT p.id FROM projects p JOIN organizations o ON o.id = p.organization_id"
            " WHERE o.slug = $1 AND p.key = $2 AND p.visibility = 'PUBLIC'",
            ORGANIZATION,
            PROJECT,
        )
        user_pk = await connection.fetchval("SELECT id FROM users WHERE login = $1", USER)
        if project_pk is None or user_pk is None:
            raise RuntimeError(
                f"the bench database has no public {ORGANIZATION}/{PROJECT} or no user {USER}"
            )
        deleted = await _delete_created(connection, project_pk)
        if deleted:
            result.notes.append(
                f"deleted {deleted} `{TITLE_PREFIX}` issues left by an "
                "earlier run that did not finish"
            )
        row = await connection.fetchrow(
            "SELECT issue_count, (SELECT coalesce(max(number), 0) FROM issues"
            " WHERE project_id = $1) FROM projects WHERE id = $1",
            project_pk,
        )
        assert row is not None
        counter, highest = row[0], row[1]
        if counter < highest:
            # createIssue numbers issues from projects.issue_count; the seed loader leaves it
            # at 0 (see the report's notes), so the first create would reuse number 1.
            await connection.execute(
                "UPDATE projects SET issue_count = $2 WHERE id = $1", project_pk, highest
            )
            result.notes.append(
                f"{PROJECT}.issue_count was {counter} although its issues are numbered up to "
                f"{highest} (the seed loader does not set the counter): set to {highest} for "
                f"the run and restored to {counter} after it"
            )
        return Fixture(url, project_pk, user_pk, counter, await start_session(connection, user_pk))
    finally:
        await connection.close()


async def restore(fixture: Fixture) -> None:
    connection = await asyncpg.connect(fixture.url)
    try:
        deleted = await _delete_created(connection, fixture.project_pk)
        await connection.execute(
            "UPDATE projects SET issue_count = $2 WHERE id = $1",
            fixture.project_pk,
            fixture.issue_count,
        )
        log.info(
            "deleted the %d issues this run created; %s.issue_count back to %d",
            deleted,
            PROJECT,
            fixture.issue_count,
        )
    finally:
        await connection.close()


async def _delete_created(connection: asyncpg.Connection, project_pk: int) -> int:
    status = await connection.execute(
        "DELETE FROM issues WHERE project_id = $1 AND title LIKE $2",  # events cascade
        project_pk,
        TITLE_PREFIX + " %",
    )
    return int(status.split()[-1])


# --------------------------------------------------------------------------- servers


@contextlib.contextmanager
def running_servers(count: int, url: str, port: int, secret: str) -> Iterator[list[Server]]:
    spec = ServerSpec(SERVER_SPEC_NAME, env={"JWT_SECRET": secret})
    with contextlib.ExitStack() as stack:
        servers = []
        for n in range(count):
            log.info("starting server %d on %s:%d", n + 1, HOST, port + n)
            servers.append(stack.enter_context(running_server(spec, url, port + n)))
        yield servers


# --------------------------------------------------------------------------- subscribers


async def open_subscriber(
    sub: Subscriber,
    port: int,
    token: str | None,
    project: str,
    shared: Shared,
    after: str | None = None,
) -> None:
    ws = await connect(
        f"ws://{HOST}:{port}/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        open_timeout=CONNECT_TIMEOUT,
        close_timeout=2,
        ping_interval=None,
        max_queue=None,
    )
    sub.ws = ws
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    await ws.send(orjson.dumps({"type": "connection_init", "payload": payload}).decode())
    ack = orjson.loads(await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT))
    if ack != {"type": "connection_ack"}:
        raise RuntimeError(f"subscriber {sub.index}: expected connection_ack, got {ack}")
    await ws.send(
        orjson.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIPTION, "variables": {"p": project, "after": after}},
            }
        ).decode()
    )
    sub.task = asyncio.create_task(read(sub, ws, shared))


async def read(sub: Subscriber, ws: ClientConnection, shared: Shared) -> None:
    try:
        async for raw in ws:
            at = time.perf_counter()
            if _receive(sub, raw, at, shared) == "ping":
                await ws.send('{"type":"pong"}')
    except ConnectionClosed as closed:
        if not shared.finished and not sub.reconnecting:
            sub.closed = f"closed: {closed}"
        return
    if not shared.finished and not sub.reconnecting:
        sub.closed = f"closed by the server: {ws.close_code} {ws.close_reason}"


def _receive(sub: Subscriber, raw: str | bytes, at: float, shared: Shared) -> str | None:
    """Record one message; returns "ping" when the server pinged (the caller answers)."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        _keep(sub.other, f"not JSON: {str(raw)[:120]}")
        return None
    kind = message.get("type")
    if kind in ("ping", "pong"):  # graphql-transport-ws keep-alive
        return str(kind)
    if kind != "next":
        _keep(sub.other, f"{kind}: {orjson.dumps(message.get('payload')).decode()[:200]}")
        return None
    payload = message.get("payload") or {}
    if payload.get("errors"):
        _keep(sub.errors, _errors_text(payload))
    event = (payload.get("data") or {}).get("issueEvents")
    if not sub.registered:
        sub.registered = True
        shared.changed.set()
    if not isinstance(event, dict):
        _keep(sub.other, f"next without issueEvents: {str(payload)[:200]}")
        return None
    if event.get("kind") == "RESYNC":
        sub.resyncs.append(shared.measuring)
        return None
    if isinstance(event.get("cursor"), str):
        sub.cursor = event["cursor"]
    issue = event.get("issue") or {}
    actor = event.get("actor") or {}
    if not isinstance(issue.get("title"), str):
        sub.failed.append((at, shared.measuring))
        return None
    key = (str(event.get("kind")), issue["title"])
    if key in sub.arrivals:
        sub.duplicates += 1
        return None
    sub.arrivals[key] = Arrival(at, issue.get("number"), actor.get("login"), shared.measuring)
    if key in shared.expected:
        shared.outstanding -= 1
        if shared.outstanding == 0:
            shared.all_in.set()
    return None


def _keep(counter: Counter[str], message: str) -> None:
    if message in counter or len(counter) < MAX_MESSAGES:
        counter[message] += 1
    else:
        counter["(other messages)"] += 1


async def open_all(
    subscribers: list[Subscriber],
    ports: list[int],
    tokens: dict[bool, str | None],
    project: str,
    shared: Shared,
) -> None:
    gate = asyncio.Semaphore(CONNECT_PARALLEL)

    async def one(sub: Subscriber) -> None:
        async with gate:
            await open_subscriber(sub, ports[sub.server], tokens[sub.signed_in], project, shared)

    await asyncio.gather(*(one(sub) for sub in subscribers))


async def reconnect(
    sub: Subscriber, port: int, token: str | None, project: str, shared: Shared
) -> None:
    """Leave mid-stream, then subscribe again on a new socket after the last event seen."""
    sub.reconnecting = True
    await close_all([sub])
    sub.ws = sub.task = None
    sub.reconnecting = False
    await open_subscriber(sub, port, token, project, shared, after=sub.cursor)


async def close_all(subscribers: list[Subscriber]) -> None:
    async def one(sub: Subscriber) -> None:
        if sub.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sub.ws.close(), CLOSE_TIMEOUT)
        if sub.task is not None:
            sub.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sub.task

    await asyncio.gather(*(one(sub) for sub in subscribers))


# --------------------------------------------------------------------------- mutations


class MutationFailed(RuntimeError):
    """A mutation that did not succeed (transport, HTTP status, errors or user errors)."""


class Mutator:
    """Sends mutations as alice to the first server and checks the answers."""

    def __init__(self, port: int, token: str, project: str) -> None:
        self.project = project
        self.http = httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}",
            timeout=REQUEST_TIMEOUT,
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/json",
                "accept": "application/json",
            },
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, document: str, variables: dict[str, Any]) -> tuple[float, float, Any]:
        """(sent, responded, the mutation's payload); any failure raises MutationFailed."""
        body = orjson.dumps({"query": document, "variables": variables})
        sent = time.perf_counter()
        try:
            response = await self.http.post("/graphql", content=body)
        except httpx.HTTPError as exc:
            raise MutationFailed(f"{type(exc).__name__}: {exc}") from exc
        content = response.content
        responded = time.perf_counter()
        try:
            reply = orjson.loads(content)
        except orjson.JSONDecodeError:
            reply = content[:300].decode(errors="replace")
        if (
            response.status_code != 200
            or not isinstance(reply, dict)
            or reply.get("errors")
            or not reply.get("data")
        ):
            raise MutationFailed(
                f"HTTP {response.status_code} after {responded - sent:.1f} s: {_errors_text(reply)}"
            )
        payload = next(iter(reply["data"].values()))
        if payload is None or payload.get("userErrors"):
            raise MutationFailed(f"refused: {orjson.dumps(reply).decode()[:300]}")
        return sent, responded, payload

    async def create(self, title: str) -> tuple[float, float, dict[str, Any]]:
        sent, responded, payload = await self.send(CREATE, {"p": self.project, "t": title})
        return sent, responded, payload["issue"]

    async def close(self, issue_id: str) -> tuple[float, float, dict[str, Any]]:
        sent, responded, payload = await self.send(CLOSE, {"i": issue_id})
        return sent, responded, payload["issue"]


def _errors_text(reply: Any) -> str:
    """The errors' messages, codes and paths, without request ids (so that equal ones group)."""
    if isinstance(reply, dict) and isinstance(reply.get("errors"), list):
        return "; ".join(
            f"{e.get('message')} ({(e.get('extensions') or {}).get('code')}"
            + (f" at {'.'.join(map(str, e['path']))}" if e.get("path") else "")
            + ")"
            for e in reply["errors"]
            if isinstance(e, dict)
        )[:300]
    return orjson.dumps(reply).decode()[:300]


# --------------------------------------------------------------------------- the run


async def register(
    subscribers: list[Subscriber], mutator: Mutator, tag: str, shared: Shared, result: Result
) -> None:
    """Probe until every subscriber has received an event, then pass a barrier.

    A failed probe is counted and probing goes on; a timeout is a problem of the report,
    not an abort, so that what did arrive is still measured and reported."""
    started = time.perf_counter()
    deadline = started + REGISTER_TIMEOUT
    while not all(sub.registered for sub in subscribers):
        if time.perf_counter() > deadline:
            missing = sum(not sub.registered for sub in subscribers)
            result.problems.append(
                f"{missing} of {len(subscribers)} subscribers received "
                f"nothing in {REGISTER_TIMEOUT:g} s of probing"
            )
            break
        _check_readers(subscribers)
        result.probes += 1
        try:
            await mutator.create(f"{TITLE_PREFIX} {tag} probe {result.probes}")
        except MutationFailed as failed:
            _keep(result.failed_probes, str(failed))
        shared.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_until_registered(subscribers, shared), PROBE_WAIT)
    registered = time.perf_counter()
    result.register_seconds = registered - started
    log.info(
        "%d of %d subscribers registered after %d probes in %.1f s; barrier …",
        sum(sub.registered for sub in subscribers),
        len(subscribers),
        result.probes,
        result.register_seconds,
    )
    barrier = f"{TITLE_PREFIX} {tag} barrier"
    try:
        sent, _, _ = await mutator.create(barrier)
    except MutationFailed as failed:
        _keep(result.failed_probes, str(failed))
        result.problems.append(f"the barrier mutation failed: {failed}")
        return
    key = ("OPENED", barrier)

    def passed(sub: Subscriber) -> bool:  # the barrier, or a failed delivery since it
        return key in sub.arrivals or any(at > sent for at, _ in sub.failed)

    while not all(passed(sub) for sub in subscribers):
        if time.perf_counter() > registered + BARRIER_TIMEOUT:
            missing = sum(not passed(sub) for sub in subscribers)
            result.problems.append(
                f"{missing} subscribers did not receive the barrier event in {BARRIER_TIMEOUT:g} s"
            )
            return
        _check_readers(subscribers)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # let any straggling probe deliveries land


async def _until_registered(subscribers: list[Subscriber], shared: Shared) -> None:
    while not all(sub.registered for sub in subscribers):
        await shared.changed.wait()
        shared.changed.clear()


def _check_readers(subscribers: list[Subscriber]) -> None:
    closed = [sub for sub in subscribers if sub.closed]
    if len(closed) == len(subscribers):
        raise RuntimeError(
            f"every subscriber socket closed, e.g. #{closed[0].index}: {closed[0].closed}"
        )


async def measure(
    servers: list[Server],
    subscribers: list[Subscriber],
    mutator: Mutator,
    tag: str,
    args: argparse.Namespace,
    shared: Shared,
    result: Result,
    resume: Callable[[], Awaitable[None]],
) -> None:
    events = [
        Event(k, "OPENED" if k % 2 == 0 else "CLOSED", f"{TITLE_PREFIX} {tag} event {k - k % 2}")
        for k in range(args.events)
    ]
    result.events = events
    shared.expected = {event.key for event in events}
    shared.outstanding = len(subscribers) * len(events)
    shared.all_in.clear()
    shared.measuring = True
    cpu_before = [cpu_seconds(server.pid) for server in servers]
    client_before = time.process_time()
    started = time.perf_counter()
    issue_id: str | None = None
    failed_in_a_row = 0
    resuming: asyncio.Task[None] | None = None
    for event in events:
        if event.index == len(events) // 2:  # the resumers leave and come back meanwhile
            resuming = asyncio.create_task(resume())
        if failed_in_a_row >= GIVE_UP_AFTER:
            event.problem = f"not sent: the {GIVE_UP_AFTER} mutations before it failed"
            continue
        try:
            if event.kind == "OPENED":
                event.sent, event.responded, issue = await mutator.create(event.title)
                issue_id = issue["id"]
            elif issue_id is None:
                event.problem = "not sent: the createIssue before it failed"
                continue
            else:
                event.sent, event.responded, issue = await mutator.close(issue_id)
                issue_id = None
        except MutationFailed as failed:
            event.problem = str(failed)
            issue_id = None
            failed_in_a_row += 1
            continue
        failed_in_a_row = 0
        event.number = issue["number"]
        if issue["title"] != event.title:
            event.problem = f"the mutation returned title {issue['title']!r}"
        await asyncio.sleep(args.pause)
    if resuming is not None:
        try:
            await resuming
        except (OSError, RuntimeError, WebSocketException, TimeoutError) as failed:
            result.problems.append(f"a resumer could not reconnect: {failed}")
    sent = [event for event in events if event.ok]
    shared.outstanding -= len(subscribers) * (len(events) - len(sent))
    if shared.outstanding <= 0:
        shared.all_in.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(shared.all_in.wait(), args.settle)
    ended = time.perf_counter()
    shared.measuring = False
    result.window = ended - started
    result.client_cpu = time.process_time() - client_before
    result.server_cpu = [
        cpu_seconds(server.pid) - before for server, before in zip(servers, cpu_before, strict=True)
    ]
    if shared.outstanding > 0:
        log.warning(
            "%d deliveries still missing %g s after the last mutation",
            shared.outstanding,
            args.settle,
        )


async def run(args: argparse.Namespace) -> Result:
    result = Result()
    url = await bench_database(SCALE)
    fixture = await prepare(url, result)
    secret = secrets.token_urlsafe(32)
    tokens = Tokens(secret, ISSUER, AUDIENCE, TOKEN_TTL)
    token = tokens.issue(fixture.user_pk, fixture.session_pk).token
    project = encode_id("Project", fixture.project_pk)
    tag = datetime.now(UTC).strftime("%H%M%S") + "-" + secrets.token_hex(2)
    shared = Shared()
    every = args.subscribers // args.resumers if args.resumers else 0
    resumers = {  # spread over the subscribers, anonymous and signed in alternately
        min(k * every + k % 2, args.subscribers - 1) for k in range(args.resumers)
    }
    subscribers = [
        Subscriber(n, (n // 2) % args.servers, signed_in=n % 2 == 1, resumer=n in resumers)
        for n in range(args.subscribers)
    ]
    result.subscribers = subscribers
    ports = [args.port + n for n in range(args.servers)]
    bound = (
        CONNECT_TIMEOUT * 4
        + REGISTER_TIMEOUT
        + BARRIER_TIMEOUT
        + args.settle
        + args.events * (args.pause + REQUEST_TIMEOUT)
        + 60
    )
    try:
        with running_servers(args.servers, url, args.port, secret) as servers:
            mutator = Mutator(ports[0], token, project)
            try:
                async with asyncio.timeout(bound):
                    log.info("opening %d subscribers …", len(subscribers))
                    await open_all(subscribers, ports, {False: None, True: token}, project, shared)
                    await register(subscribers, mutator, tag, shared, result)
                    log.info("measuring %d events, %g s apart …", args.events, args.pause)
                    tokens_by_kind = {False: None, True: token}

                    async def resume() -> None:
                        await asyncio.gather(
                            *(
                                reconnect(
                                    sub,
                                    ports[sub.server],
                                    tokens_by_kind[sub.signed_in],
                                    project,
                                    shared,
                                )
                                for sub in subscribers
                                if sub.resumer
                            )
                        )

                    await measure(servers, subscribers, mutator, tag, args, shared, result, resume)
            except BaseException:
                for n, server in enumerate(servers):
                    tail = server.log_lines()[-15:]
                    if tail:
                        log.error("server %d log, the last lines:\n%s", n + 1, "\n".join(tail))
                raise
            finally:
                shared.finished = True
                await mutator.aclose()
                await close_all(subscribers)
                result.server_exits = [server.process.poll() for server in servers]
            result.server_logs = [server.log_lines() for server in servers]
    finally:
        await restore(fixture)
    return result


# --------------------------------------------------------------------------- analysis


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


@dataclass(slots=True)
class Group:
    name: str
    subscribers: list[Subscriber]
    counted: bool = False  # its missing deliveries and wrong payloads are failures
    after_response: list[float] = field(default_factory=list)
    after_send: list[float] = field(default_factory=list)
    missing: int = 0


def analyse(result: Result, servers: int) -> tuple[list[Group], list[str], int]:
    """The table's rows, the notes and the number of failures."""
    subs = result.subscribers
    live = [s for s in subs if not s.resumer]
    resumers = [s for s in subs if s.resumer]
    groups = [
        Group("all" if not resumers else "all but the resumers", live, counted=True),
        Group("anonymous", [s for s in live if not s.signed_in]),
        Group(f"signed in ({USER})", [s for s in live if s.signed_in]),
    ]
    if servers > 1:
        groups += [
            Group(
                f"server {n + 1}" + (" (mutations)" if n == 0 else ""),
                [s for s in live if s.server == n],
            )
            for n in range(servers)
        ]
    if resumers:
        groups.append(Group(RESUMED, resumers, counted=True))
    notes = list(result.notes)
    failures = 0
    wrong: Counter[str] = Counter()
    for group in groups:
        for sub in group.subscribers:
            for event in result.events:
                arrival = sub.arrivals.get(event.key)
                if arrival is None:
                    group.missing += 1
                    continue
                group.after_response.append(arrival.at - event.responded)
                group.after_send.append(arrival.at - event.sent)
                if group.counted:
                    if arrival.number != event.number:
                        wrong[f"issue number {arrival.number}, expected {event.number}"] += 1
                    if arrival.actor != USER:
                        wrong[f"actor {arrival.actor!r}, expected {USER!r}"] += 1
    expected = len(subs) * len(result.events)
    missing = sum(g.missing for g in groups if g.counted)
    if missing:
        failures += missing
        late = [
            f"#{s.index} ({s.group}, server {s.server + 1}): "
            f"{sum(e.key not in s.arrivals for e in result.events)}"
            for s in subs
            if any(e.key not in s.arrivals for e in result.events)
        ]
        notes.append(
            f"MISSING: {missing} of {expected} deliveries did not arrive; "
            f"by subscriber: {', '.join(late[:10])}" + (" …" if len(late) > 10 else "")
        )
    if wrong:
        failures += sum(wrong.values())
        notes.append("WRONG PAYLOADS: " + "; ".join(f"{n}x {w}" for w, n in wrong.items()))
    problems: Counter[str] = Counter(e.problem for e in result.events if e.problem)
    if problems:
        failures += sum(problems.values())
        notes.append(
            f"FAILED MUTATIONS: {sum(problems.values())} of {len(result.events)} "
            "measured mutations failed or were not sent: "
            + " | ".join(f"{n}x {m}" for m, n in problems.most_common(MAX_MESSAGES))
        )
    if result.failed_probes:
        failures += sum(result.failed_probes.values())
        notes.append(
            f"FAILED PROBES: {sum(result.failed_probes.values())} registration "
            "mutations failed: "
            + " | ".join(f"{n}x {m}" for m, n in result.failed_probes.most_common())
        )
    for problem in result.problems:
        failures += 1
        notes.append(f"PROBLEM: {problem}")
    failed_deliveries = [(at, measured) for sub in subs for at, measured in sub.failed]
    if failed_deliveries:
        measured = sum(m for _, m in failed_deliveries)
        notes.append(
            f"FAILED DELIVERIES: {len(failed_deliveries)} `next` messages whose "
            f"issue could not be resolved ({measured} in the measured window); "
            "they carry the errors below"
        )
    errors: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for sub in subs:
        errors.update(sub.errors)
        other.update(sub.other)
    if errors:
        failures += sum(errors.values())
        notes.append(
            f"ERRORS in `next` payloads ({sum(errors.values())} messages, registration "
            "included): " + " | ".join(f"{n}x {m}" for m, n in errors.most_common())
        )
    if other:
        failures += sum(other.values())
        notes.append(
            "UNEXPECTED messages: " + " | ".join(f"{n}x {m}" for m, n in other.most_common())
        )
    seen = " ".join([*errors, *problems, *result.failed_probes, *result.problems])
    pool = get_settings().db_pool_max  # the servers inherit this process's environment
    if "UNAVAILABLE" in seen and len(subs) / servers >= pool:
        notes.append(
            f"hint: UNAVAILABLE with at least as many subscribers per process as the pool has "
            f"connections ({pool}): a subscription keeps the pooled connection "
            "it resolved an event with until its next event (domain/context.py "
            "`renew_for_event` releases it only then), so idle subscriptions exhaust the pool, "
            "other subscribers' deliveries and every HTTP request wait the acquire timeout and "
            "fail, and the circuit breaker then opens"
        )
    closed = [s for s in subs if s.closed]
    if closed:
        failures += len(closed)
        notes.append(
            f"{len(closed)} subscriber sockets closed before the end, e.g. "
            f"#{closed[0].index}: {closed[0].closed}"
        )
    resyncs = sum(len(s.resyncs) for s in subs)
    if resyncs:
        measured = sum(sum(s.resyncs) for s in subs)
        notes.append(f"RESYNC messages: {resyncs} ({measured} in the measured window)")
    duplicates = sum(s.duplicates for s in subs)
    if duplicates:
        notes.append(f"duplicate deliveries (same kind and title twice): {duplicates}")
    if resumers:
        lost = sum(e.key not in s.arrivals for s in resumers for e in result.events if e.ok)
        twice = sum(s.duplicates for s in resumers)
        failures += twice
        notes.append(
            f"resume: {len(resumers)} subscribers left mid-stream (at measured event "
            f"{len(result.events) // 2}) and subscribed again with `after:` their last "
            f"cursor: {lost} events lost, {twice} delivered twice"
        )
    for n, code in enumerate(result.server_exits):
        if code is not None:
            failures += 1
            notes.append(f"SERVER {n + 1} EXITED with code {code} during the run")
    for n, lines in enumerate(result.server_logs):
        if lines:
            shown = " / ".join(line.strip()[:200] for line in lines[-3:])
            notes.append(f"server {n + 1} logged {len(lines)} lines, the last: `{shown}`")
    return groups, notes, failures


def fan_out(result: Result) -> tuple[list[float], list[float]]:
    """Per event: the first and the last subscriber's latency after the response."""
    first, last = [], []
    for event in (e for e in result.events if e.ok):
        times = [
            s.arrivals[event.key].at
            for s in result.subscribers
            if event.key in s.arrivals and not s.resumer
        ]
        if times:
            first.append(min(times) - event.responded)
            last.append(max(times) - event.responded)
    return first, last


# --------------------------------------------------------------------------- report

COLUMNS = (
    "subscribers",
    "group",
    "deliveries",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "min ms",
    "send→recv p50 ms",
    "send→recv p99 ms",
    "send→recv max ms",
)


def _ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value * 1000:.1f}"


def table(groups: list[Group], events: int) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join(["---:", "---"] + ["---:"] * (len(COLUMNS) - 2)) + " |",
    ]
    for group in groups:
        a, s = group.after_response, group.after_send
        expected = len(group.subscribers) * events
        cells = [
            str(len(group.subscribers)),
            group.name,
            f"{len(a):,} / {expected:,}",
            _ms(percentile(a, 0.50)),
            _ms(percentile(a, 0.95)),
            _ms(percentile(a, 0.99)),
            _ms(max(a, default=math.nan)),
            _ms(min(a, default=math.nan)),
            _ms(percentile(s, 0.50)),
            _ms(percentile(s, 0.99)),
            _ms(max(s, default=math.nan)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


RESUMED = "resumed mid-stream (after:)"


def section(
    args: argparse.Namespace,
    result: Result,
    groups: list[Group],
    notes: list[str],
    failures: int,
    load_before: tuple[float, float, float],
    command: str,
) -> str:
    servers = args.servers
    heading = f"## {servers} server{'s' if servers > 1 else ''}, {args.subscribers} subscribers"
    trip = [e.responded - e.sent for e in result.events if not math.isnan(e.responded)]
    first, last = fan_out(result)
    window = result.window or math.nan
    cpu = (
        "; ".join(
            f"server {n + 1}: {seconds:.2f} s ({seconds / window:.0%} of a core, "
            f"{seconds * 1000 / max(1, len(result.events)):.1f} ms/event)"
            for n, seconds in enumerate(result.server_cpu)
        )
        or "n/a"
    )
    signed = sum(s.signed_in for s in result.subscribers)
    conditions = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"`{command}`",
        "commit": report._commit(),
        "machine": f"{report._nproc()} CPUs (nproc), {report._cpu_model()}",
        "machine load": "1/5/15-minute load average "
        + "/".join(f"{v:.2f}" for v in load_before)
        + " when the run started",
        "servers": f"{servers} uvicorn process{'es' if servers > 1 else ''} (`--workers 1`, "
        f"pool of {get_settings().db_pool_max} connections) on 127.0.0.1; mutations to server 1"
        + (
            ", subscribers round-robin over both (each has half of each kind)"
            if servers > 1
            else ""
        ),
        "subscribers": f"{args.subscribers} WebSockets (graphql-transport-ws, `websockets`, "
        f"one asyncio process) on `issueEvents` of public project {ORGANIZATION}/{PROJECT}: "
        f"{args.subscribers - signed} anonymous, {signed} signed in as {USER} (OWNER)",
        "resume": f"{args.resumers} of the subscribers leave when half of the events are "
        "sent and subscribe again with `after:` their last cursor",
        "events": f"{args.events} mutations as {USER} over HTTP, createIssue and closeIssue "
        f"alternately, sent one at a time {args.pause * 1000:g} ms apart",
        "database": f"scale {SCALE:g} bench database, {server_description()}",
        "result": "PASS" if failures == 0 else f"FAIL ({failures} failures)",
    }
    parts = [heading, ""]
    parts += [f"- {key}: {value}" for key, value in conditions.items()]
    parts += [
        "",
        "Latency = time a subscriber received the event minus time the mutation's HTTP "
        "response arrived; send→recv counts from when the mutation was sent.",
        "",
        table(groups, len(result.events)),
        "",
        "### Around the table",
        "",
        f"- mutation round trip (send→response): p50 {_ms(percentile(trip, 0.5))} ms, "
        f"max {_ms(max(trip, default=math.nan))} ms",
        f"- per event, first subscriber served: median {_ms(_median(first))} ms; last "
        f"subscriber served: median {_ms(_median(last))} ms, max "
        f"{_ms(max(last, default=math.nan))} ms (after the response)",
        f"- registration: {result.probes} probe issue(s) and a barrier, "
        f"{result.register_seconds:.1f} s until every subscriber had received a "
        "`next` message",
    ]
    if trip:
        parts += [
            f"- measured window {window:.2f} s; server CPU in it: {cpu}",
            f"- this client's CPU in the window: {result.client_cpu:.2f} s "
            f"({result.client_cpu / window:.0%} of a core; its event loop's delays "
            "count in the latencies)",
        ]
    else:
        parts.append("- no measured mutation succeeded: no measured window")
    parts += [f"- {note}" for note in notes]
    return "\n".join(parts) + "\n"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


TITLE = "# issuegraph subscription benchmark\n"


def merge(existing: str, new_section: str) -> str:
    """The report with `new_section` replacing the one of the same heading."""
    heading = new_section.splitlines()[0]
    sections = [s for s in re.split(r"(?m)^(?=## )", existing) if s.startswith("## ")]
    kept = [s.rstrip() + "\n" for s in sections if s.splitlines()[0] != heading]
    ordered = sorted(
        [*kept, new_section],  # by servers, then subscribers
        key=lambda s: [int(n) for n in re.findall(r"\d+", s.splitlines()[0])],
    )
    return TITLE + "\n" + "\n".join(ordered)


# --------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, _interrupt)
    args = parse_args(argv)
    load_before = os.getloadavg()
    try:
        result = asyncio.run(run(args))
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except (RuntimeError, OSError, WebSocketException, asyncpg.PostgresError) as exc:
        log.error("subscription bench failed: %s: %s", type(exc).__name__, exc)
        return 1
    groups, notes, failures = analyse(result, args.servers)
    command = " ".join(["python -m bench.subscriptions", *argv])
    text = section(args, result, groups, notes, failures, load_before, command)
    print(text)
    existing = args.out.read_text() if args.out.exists() else ""
    report.write(args.out, merge(existing, text))
    log.info("report written to %s", args.out)
    if failures:
        log.error("%d failures; see %s", failures, args.out)
    return 1 if failures else 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
