"""A soak: one server process under mixed load for minutes, with live subscribers.

    python -m bench.soak --minutes 10 [--database-url URL] [--redis-url URL]

It creates a database of its own on the PostgreSQL of `--database-url` (or DATABASE_URL),
starts `python -m server run` on it, subscribes `--subscribers` WebSockets to one project's
events and sends reads, creates, comments and updates from `--clients` concurrent clients
(this process: not a speed measurement, so it may share the machine). Every minute it
reads the server's resident memory. At the end it checks what was promised: every
acknowledged create and comment is in the database exactly once, and every subscriber got
every event committed while it listened. It prints one table, then drops its database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect

from core.settings import Settings
from domain.auth import Tokens
from execution.ids import encode_id
from server.__main__ import prepare_database

READ = """query($p: ID!) { node(id: $p) { ... on Project { key issues(first: 10) { nodes {
  number title author { login } comments(first: 5) { nodes { body author { login } } } } } } } }"""
CREATE = """mutation($p: ID!, $t: String!, $c: String) { createIssue(input: {projectId: $p,
  title: $t, clientMutationId: $c}) { issue { id } userErrors { code } } }"""
COMMENT = """mutation($i: ID!, $b: String!, $c: String) { addComment(input: {issueId: $i,
  body: $b, clientMutationId: $c}) { comment { id } userErrors { code } } }"""
UPDATE = """mutation($i: ID!, $b: String!) { updateIssue(input: {issueId: $i, body: $b}) {
  issue { id } userErrors { code } } }"""
EVENTS = "subscription($p: ID!) { issueEvents(projectId: $p) { kind issue { title } } }"
SCALE = 0.1
SOAK_TITLES = "SELECT title FROM issues WHERE title LIKE 'soak-%' AND title <> 'soak-marker'"
SOAK_COMMENTS = "SELECT body FROM comments WHERE body LIKE 'comment-%'"


@dataclass
class Tally:
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    creates: list[str] = field(default_factory=list)  # acknowledged titles
    comments: list[str] = field(default_factory=list)  # acknowledged bodies
    updates: int = 0
    issues: list[str] = field(default_factory=list)  # global ids of created issues

    def failed(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resident_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _world(url: str, secret: str) -> tuple[str, str]:
    """An owner, an organization and a public project: (project id, owner's token)."""
    connection = await asyncpg.connect(url)
    try:
        owner = await connection.fetchval(
            "INSERT INTO users (login, email, password_hash) VALUES ('soaker', 'soak@x.test',"
            " '!') RETURNING id"
        )
        org = await connection.fetchval(
            "INSERT INTO organizations (slug, name) VALUES ('soak', 'Soak') RETURNING id"
        )
        await connection.execute("INSERT INTO memberships VALUES ($1, $2, 'OWNER')", org, owner)
        project = await connection.fetchval(
            "INSERT INTO projects (organization_id, key, name, visibility)"
            " VALUES ($1, 'SOAK', 'Soak', 'PUBLIC') RETURNING id",
            org,
        )
        session = await connection.fetchval(
            "INSERT INTO sessions (user_id, expires_at, client) VALUES ($1, $2, 'soak')"
            " RETURNING id",
            owner,
            datetime.now(UTC) + timedelta(days=1),
        )
    finally:
        await connection.close()
    settings = Settings()
    tokens = Tokens(secret, settings.jwt_issuer, settings.jwt_audience, 86_400)
    return encode_id("Project", project), tokens.issue(owner, session).token


async def _subscriber(base: str, project: str, counts: list[int], index: int) -> ClientConnection:
    ws = await connect(
        base.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        max_size=None,
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    await ws.recv()
    payload = {"query": EVENTS, "variables": {"p": project}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))

    async def receive() -> None:
        started = False  # counts from the marker on, once every subscriber listens
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") != "next":
                continue
            title = ((message["payload"].get("data") or {}).get("issueEvents") or {}).get(
                "issue"
            ) or {}
            if started:
                counts[index] += 1
            elif title.get("title") == "soak-marker":
                started = True

    asyncio.create_task(receive())  # noqa: RUF006 (lives as long as the socket)
    return ws


async def _client(http: httpx.AsyncClient, project: str, tally: Tally, until: float) -> None:
    while time.monotonic() < until:
        roll = random.random()
        key = uuid.uuid4().hex
        try:
            if roll < 0.6 and tally.issues:
                response = await http.post(
                    "/graphql", json={"query": READ, "variables": {"p": project}}
                )
                kind = "read"
            elif roll < 0.75 or not tally.issues:
                title = f"soak-{key}"
                response = await http.post(
                    "/graphql",
                    json={"query": CREATE, "variables": {"p": project, "t": title, "c": key}},
                )
                kind = "create"
            elif roll < 0.9:
                body = f"comment-{key}"
                issue = random.choice(tally.issues)
                response = await http.post(
                    "/graphql",
                    json={"query": COMMENT, "variables": {"i": issue, "b": body, "c": key}},
                )
                kind = "comment"
            else:
                issue = random.choice(tally.issues)
                response = await http.post(
                    "/graphql",
                    json={"query": UPDATE, "variables": {"i": issue, "b": f"updated {key}"}},
                )
                kind = "update"
        except httpx.HTTPError as error:
            tally.failed(type(error).__name__)
            continue
        tally.requests += 1
        answer = response.json()
        if response.status_code != 200 or answer.get("errors"):
            tally.failed(f"{kind} {response.status_code}")
            continue
        if kind == "create":
            tally.creates.append(title)
            tally.issues.append(answer["data"]["createIssue"]["issue"]["id"])
        elif kind == "comment":
            tally.comments.append(body)
        elif kind == "update":
            tally.updates += 1


async def soak(url: str, redis_url: str | None, minutes: float, clients: int, subs: int) -> None:
    name = f"issuegraph_soak_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    database = urlunsplit(parts._replace(path=f"/{name}"))
    secret = secrets.token_urlsafe(32)
    port = free_port()
    server: asyncio.subprocess.Process | None = None
    try:
        await prepare_database(database, SCALE)
        project, token = await _world(database, secret)
        env = os.environ | {
            "DATABASE_URL": database,
            "PORT": str(port),
            "JWT_SECRET": secret,
            "LOG_LEVEL": "warning",
            "RATE_LIMIT_SIGNED_IN": "1000000000",
        }
        if redis_url:
            env["REDIS_URL"] = redis_url
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "run", env=env
        )
        base = f"http://127.0.0.1:{port}"
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            counts = [0] * subs
            sockets = [await _subscriber(base, project, counts, i) for i in range(subs)]
            await asyncio.sleep(2)  # subscriptions register asynchronously
            marker = await http.post(
                "/graphql", json={"query": CREATE, "variables": {"p": project, "t": "soak-marker"}}
            )
            assert "errors" not in marker.json(), marker.text
            tally = Tally()
            started = time.monotonic()
            until = started + minutes * 60
            load = [
                asyncio.create_task(_client(http, project, tally, until)) for _ in range(clients)
            ]
            memory: list[tuple[float, float]] = []
            while time.monotonic() < until:
                await asyncio.sleep(min(60.0, until - time.monotonic()))
                memory.append(((time.monotonic() - started) / 60, resident_mb(server.pid)))
                print(
                    f"minute {memory[-1][0]:.1f}: RSS {memory[-1][1]:.0f} MB, "
                    f"{tally.requests:,} requests",
                    flush=True,
                )
            await asyncio.gather(*load)
            expected = await _events_after_marker(database)
            deadline = time.monotonic() + 30
            while min(counts) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            for ws in sockets:
                await ws.close()
        lost = await _lost(database, tally)
        _report(minutes, clients, subs, memory, tally, counts, expected, lost)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.wait(), 30)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _events_after_marker(database: str) -> int:
    connection = await asyncpg.connect(database)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM events e JOIN projects p ON p.id = e.project_id"
                " WHERE p.key = 'SOAK' AND e.id > (SELECT min(e2.id) FROM events e2"
                " JOIN issues i ON i.id = e2.issue_id WHERE i.title = 'soak-marker')"
            )
        )
    finally:
        await connection.close()


async def _lost(database: str, tally: Tally) -> dict[str, int]:
    """Acknowledged writes missing or written twice."""
    connection = await asyncpg.connect(database)
    try:
        titles = [r[0] for r in await connection.fetch(SOAK_TITLES)]
        bodies = [r[0] for r in await connection.fetch(SOAK_COMMENTS)]
    finally:
        await connection.close()
    return {
        "creates missing": len(set(tally.creates) - set(titles)),
        "creates twice": len(titles) - len(set(titles)),
        "comments missing": len(set(tally.comments) - set(bodies)),
        "comments twice": len(bodies) - len(set(bodies)),
    }


def _report(
    minutes: float,
    clients: int,
    subs: int,
    memory: list[tuple[float, float]],
    tally: Tally,
    counts: list[int],
    expected: int,
    lost: dict[str, int],
) -> None:
    print(f"\n## Soak: {minutes:g} min, {clients} clients, {subs} subscribers\n")
    print("| minute | RSS MB |\n|---:|---:|")
    for minute, rss in memory:
        print(f"| {minute:.0f} | {rss:.0f} |")
    print(f"\n- requests: {tally.requests:,} (failed: {tally.failures or 'none'})")
    print(
        f"- acknowledged: {len(tally.creates):,} creates, {len(tally.comments):,} comments, "
        f"{tally.updates:,} updates"
    )
    print(
        f"- deliveries: {sum(counts):,} of {expected * subs:,} "
        f"({expected:,} events × {subs} subscribers)"
    )
    print(f"- lost or doubled writes: {lost}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--subscribers", type=int, default=50)
    args = parser.parse_args()
    if not args.database_url:
        parser.error("a PostgreSQL URL is needed: --database-url or DATABASE_URL")
    asyncio.run(
        soak(args.database_url, args.redis_url, args.minutes, args.clients, args.subscribers)
    )


if __name__ == "__main__":
    main()
