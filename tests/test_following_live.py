"""notificationAdded over WebSocket through the real app: a user's notifications arrive as
the changes commit, never the user's own, never of what the user may no longer read."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from core.db import Database
from execution.ids import encode_id
from tests.conftest import running_app
from tests.servers import AppSocket
from tests.sessions import access_token
from tests.test_sessions import gql, open_socket

NOTIFIED = """subscription { notificationAdded { kind notification {
  reason isUnread actor { login } issue { title } comment { body } } } }"""
COMMENT = """mutation($i: ID!, $b: String!) { addComment(input: {issueId: $i, body: $b}) {
  userErrors { code } } }"""


@pytest.fixture
async def people(database: Database, committed: dict[str, Any]) -> dict[str, Any]:
    """Besides `committed`'s organization, its public project and ADMIN: a member who
    opened an issue there and one in a private project of the organization."""
    tag = uuid.uuid4().hex[:8]
    connection = await database.acquire()
    try:
        member = await connection.fetchval(
            "INSERT INTO users (login, email, password_hash) VALUES ($1, $1 || '@x.test', '!')"
            " RETURNING id",
            f"live-{tag}",
        )
        admin_login = await connection.fetchval(
            "SELECT login FROM users WHERE id = $1", committed["user"]
        )
        org = await connection.fetchval(
            "SELECT organization_id FROM projects WHERE id = $1", committed["project_id"]
        )
        await connection.execute("INSERT INTO memberships VALUES ($1, $2, 'MEMBER')", org, member)
        private = await connection.fetchval(
            "INSERT INTO projects (organization_id, key, name, visibility)"
            " VALUES ($1, 'HIDDEN', 'Hidden', 'PRIVATE') RETURNING id",
            org,
        )
        issues = {}
        for name, project in (("public", committed["project_id"]), ("private", private)):
            issues[name] = await connection.fetchval(
                "INSERT INTO issues (project_id, number, title, author_id)"
                " VALUES ($1, 1, $2, $3) RETURNING id",
                project,
                f"{name} issue",
                member,
            )
    finally:
        await database.release(connection)
    return {
        "org": org,
        "admin_login": admin_login,
        "member": member,
        "login": f"live-{tag}",
        "public": encode_id("Issue", issues["public"]),
        "private": encode_id("Issue", issues["private"]),
    }


async def _subscribed(http: httpx.AsyncClient, socket: AppSocket, writer: str, issue: str) -> None:
    """Subscribe; return once a probe's notification arrived (subscribing is asynchronous)."""
    await socket.send_json({"id": "n", "type": "subscribe", "payload": {"query": NOTIFIED}})
    for attempt in range(100):
        await gql(http, COMMENT, {"i": issue, "b": f"probe {attempt}"}, token=writer)
        try:
            message = await socket.receive_json(timeout=0.5)
        except TimeoutError:
            continue
        assert message["type"] == "next", message
        while True:  # the probes still on their way
            try:
                await socket.receive_json(timeout=0.5)
            except TimeoutError:
                return
    pytest.fail("the subscription never delivered")


async def _next(socket: AppSocket) -> Any:
    message = await socket.receive_json(timeout=20)
    assert message["type"] == "next", message
    return message["payload"]["data"]["notificationAdded"]


async def test_notifications_arrive_live_and_only_while_their_issue_is_readable(
    database: Database, committed: dict[str, Any], people: dict[str, Any]
) -> None:
    admin = await access_token(database, committed["user"])
    member = await access_token(database, people["member"])
    async with running_app(database) as app, app.websocket() as socket:
        await open_socket(socket, member)
        await _subscribed(app.http, socket, admin, people["public"])

        await gql(app.http, COMMENT, {"i": people["private"], "b": "private news"}, token=admin)
        first = await _next(socket)
        # the member's own comment notifies nobody (the member is the actor)
        await gql(app.http, COMMENT, {"i": people["public"], "b": "mine"}, token=member)
        connection = await database.acquire()
        try:
            await connection.execute(
                "DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2",
                people["org"],
                people["member"],
            )
        finally:
            await database.release(connection)
        await gql(app.http, COMMENT, {"i": people["private"], "b": "after leaving"}, token=admin)
        await gql(app.http, COMMENT, {"i": people["public"], "b": "public news"}, token=admin)
        last = await _next(socket)

    assert first == {
        "kind": "NOTIFICATION",
        "notification": {
            "reason": "AUTHOR",
            "isUnread": True,
            "actor": {"login": people["admin_login"]},
            "issue": {"title": "private issue"},
            "comment": {"body": "private news"},
        },
    }
    # nothing between: neither the member's own comment nor the private one after leaving
    assert last["notification"]["comment"] == {"body": "public news"}


async def test_anonymous_viewers_cannot_subscribe_to_notifications(database: Database) -> None:
    async with running_app(database) as app, app.websocket() as socket:
        await socket.send_json({"type": "connection_init", "payload": {}})
        assert await socket.receive_json() == {"type": "connection_ack"}
        await socket.send_json({"id": "n", "type": "subscribe", "payload": {"query": NOTIFIED}})
        message = await socket.receive_json()
    assert message["type"] in ("error", "next"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]
