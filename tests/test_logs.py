"""Logs as an operator reads them: the standard error of a real server process started as
`make run` starts it (`python -m server run`), from start-up to shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import connect

from tests.conftest import TEST_SETTINGS
from tests.servers import command_line_server
from tests.sessions import access_token

ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
SECRET = {"JWT_SECRET": TEST_SETTINGS.jwt_secret or "", "BCRYPT_ROUNDS": "4"}
QUERY = 'query Dashboard { viewer { login } organization(slug: "acme") { projects(first: 2)'
QUERY += " { nodes { key issues(first: 2) { nodes { title } } } } } }"
WAIT = 20  # seconds: a bound against hanging, not a measurement


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be a JSON object."""
    text = log.read_text(encoding="utf-8")
    assert text.strip(), "nothing was logged"
    parsed = []
    for line in text.splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"a line that is not JSON: {line!r}") from None
    return parsed


async def signed_in(database_url: str) -> tuple[int, str]:
    connection = await asyncpg.connect(database_url)
    try:
        user = await connection.fetchval("SELECT id FROM users WHERE login = 'bob'")
        return int(user), await access_token(connection, user)
    finally:
        await connection.close()


async def websocket_session(url: str, token: str) -> None:
    """Sign in on a WebSocket, run one query on it, and close it with 1000."""
    socket = url.replace("http://", "ws://") + "/graphql"
    async with connect(socket, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "connection_ack"
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { login } }"}}
        await ws.send(json.dumps(subscribe))
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "next"
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "complete"


async def test_every_line_is_json_and_each_request_has_one_access_line(
    database_url: str, tmp_path: Path
) -> None:
    user, token = await signed_in(database_url)
    log = tmp_path / "server.log"
    env = SECRET | {"LOG_JSON": "true", "LOG_LEVEL": "info"}
    with command_line_server(database_url, log, **env) as (url, _process):
        async with httpx.AsyncClient(base_url=url) as http:
            answered = await http.post(
                "/graphql",
                json={"query": QUERY},
                headers={"Authorization": f"Bearer {token}", "X-Request-ID": "dashboard-1"},
            )
            refused = await http.post("/graphql", content=b"x", headers={"X-Request-ID": "bad-1"})
            await http.get("/healthz")
            await http.get("/readyz")
        await websocket_session(url, token)
    assert answered.status_code == 200 and "errors" not in answered.json()
    assert refused.status_code == 415

    lines = json_lines(log)  # start-up and shutdown included
    events = [line["event"] for line in lines]
    assert any(e.startswith("Started server process") for e in events)
    assert any(e.startswith("serving on http://127.0.0.1:") for e in events)
    assert "Application shutdown complete." in events
    for line in lines:
        assert line["timestamp"].endswith("Z") and line["level"] and line["logger"]

    requests = [line for line in lines if line["event"] == "request"]
    by_id = {line["request_id"]: line for line in requests}
    assert len(by_id) == len(requests), "one access line per request"
    dashboard = by_id["dashboard-1"]
    assert dashboard["level"] == "info"
    assert dashboard["method"] == "POST" and dashboard["path"] == "/graphql"
    assert dashboard["status"] == 200
    assert dashboard["operation_name"] == "Dashboard"
    assert dashboard["operation_type"] == "query"
    assert dashboard["viewer_id"] == user
    # the viewer, then the organization with every list inside written by PostgreSQL
    assert dashboard["sql_statements"] == 2
    assert dashboard["cost"] == answered.json()["extensions"]["cost"]["requested"]
    assert isinstance(dashboard["duration_ms"], float) and dashboard["duration_ms"] > 0
    bad = by_id["bad-1"]
    assert (bad["status"], bad["error_codes"]) == (415, ["UNSUPPORTED_MEDIA_TYPE"])
    assert bad["operation_name"] is None and bad["viewer_id"] is None
    assert not [line for line in requests if line["path"] in ("/healthz", "/readyz")]
    assert not [line for line in lines if line["logger"] in ("uvicorn.access", "httpx")]

    (opened,) = [line for line in lines if line["event"] == "websocket accepted"]
    (closed,) = [line for line in lines if line["event"] == "websocket closed"]
    assert opened["request_id"] == closed["request_id"]
    assert closed["close_code"] == 1000
    assert closed["operations"] == 1
    assert closed["viewer_id"] == user
    assert closed["duration_ms"] > 0
    assert not [e for e in events if "WebSocket /graphql" in e or e.startswith("connection ")]


async def test_probes_are_logged_at_debug_and_text_has_no_colours_in_a_file(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    env = SECRET | {"LOG_JSON": "false", "LOG_LEVEL": "debug"}
    with command_line_server(database_url, log, **env) as (url, _process):
        async with httpx.AsyncClient(base_url=url) as http:
            for probe in ("/healthz", "/readyz", "/metrics"):
                assert (await http.get(probe)).status_code == 200
    text = log.read_text(encoding="utf-8")
    assert not ESCAPE.search(text), "colour codes in a file"
    for probe in ("/healthz", "/readyz", "/metrics"):
        probes = [line for line in text.splitlines() if f"path={probe} " in line]
        assert probes and all("[debug" in line for line in probes), probe
    assert "Application startup complete." in text


async def test_text_logs_are_coloured_on_a_terminal(database_url: str, tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    env = SECRET | {"LOG_JSON": "false", "LOG_LEVEL": "info"}
    try:
        with command_line_server(database_url, tmp_path / "unused.log", stderr=terminal, **env):
            os.close(terminal)
            terminal = -1
            seen = await asyncio.wait_for(
                asyncio.to_thread(read_until, controller, b"startup"), WAIT
            )
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(controller)
    assert ESCAPE.search(seen.decode(errors="replace"))


def read_until(fd: int, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk
    return seen
