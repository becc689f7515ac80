"""Resumable subscriptions through the real app over WebSocket: `after:` a cursor replays the
log, then goes live, with no gap and no duplicate at the seam; RESYNC past the retention."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import domain.events
from core.db import Database, Session
from execution.ids import encode_id
from execution.pagination import encode_event_cursor
from loaders import Loaders
from loaders.events import events_after, purge_events
from resolvers.subscriptions import REPLAYED_KINDS
from tests.conftest import running_app
from tests.servers import Socket
from tests.sessions import access_token
from tests.test_sessions import CREATE, gql, open_socket

RESUME = """subscription($p: ID!, $after: String) { issueEvents(projectId: $p, after: $after) {
  id kind cursor issue { title } } }"""
COMMENTS = """subscription($i: ID!, $after: String) { issueCommentAdded(issueId: $i,
  after: $after) { kind cursor comment { body } } }"""
COMMENT = """mutation($i: ID!, $b: String!) { addComment(input: {issueId: $i, body: $b}) {
  userErrors { code } } }"""
WAIT = 20  # seconds: a bound against hanging, not a measurement


async def _subscribe(socket: Socket, query: str, variables: dict[str, Any]) -> None:
    await socket.send_json(
        {"id": "r", "type": "subscribe", "payload": {"query": query, "variables": variables}}
    )


async def _next(socket: Socket, field: str = "issueEvents") -> Any:
    message = await socket.receive_json(timeout=WAIT)
    assert message["type"] == "next", message
    return message["payload"]["data"][field]


async def _fetch(database: Database, sql: str, *args: Any) -> list[Any]:
    connection = await database.acquire()
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await database.release(connection)


@pytest.mark.parametrize("served", [False, True], ids=["in-process", "served"])
async def test_a_resumed_subscription_loses_nothing_and_repeats_nothing_at_the_seam(
    database: Database, committed: dict[str, Any], monkeypatch: pytest.MonkeyPatch, served: bool
) -> None:
    """A backlog of 250 events in the log (three replay statements); five events commit
    while the replay is under way (it is held before its second statement until they
    have), five more once it is live: every event after the cursor arrives once, in
    order. The events committed during the replay reach the subscriber both ways, from
    the log and live. Served by uvicorn, the live events are written without the
    subscriber's task (execution/fanout.py, Live)."""
    project = committed["project_id"]
    (issue,) = await _fetch(
        database,
        "INSERT INTO issues (project_id, number, title, author_id) VALUES ($1, 900, 'Old', $2)"
        " RETURNING id",
        project,
        committed["user"],
    )
    backlog = await _fetch(
        database,
        "INSERT INTO events (kind, project_id, issue_id, actor_id)"
        " SELECT CASE WHEN g % 2 = 0 THEN 'CLOSED' ELSE 'REOPENED' END, $1, $2, $3"
        " FROM generate_series(0, 250) g RETURNING id, created_at",
        project,
        issue[0],
        committed["user"],
    )
    start = min(backlog, key=lambda r: r[0])
    token = await access_token(database, committed["user"])
    replaying, resume = asyncio.Event(), asyncio.Event()
    statements = 0

    async def held(*args: Any) -> Any:  # the real read, held once the replay is under way
        nonlocal statements
        statements += 1
        if statements == 2:
            replaying.set()
            await resume.wait()
        return await events_after(*args)

    monkeypatch.setattr(domain.events, "events_after", held)

    async def create(title: str) -> None:
        created = await gql(app.http, CREATE, {"p": committed["project"], "t": title}, token=token)
        assert created.json().get("errors") is None, created.json()

    async with contextlib.AsyncExitStack() as stack:
        app = await stack.enter_async_context(running_app(database, served=served))
        socket: Socket = await stack.enter_async_context(
            app.served_websocket() if served else app.websocket()
        )
        await open_socket(socket, token)
        await _subscribe(
            socket, RESUME, {"p": committed["project"], "after": encode_event_cursor(*start)}
        )
        await asyncio.wait_for(replaying.wait(), WAIT)
        for n in range(5):
            await create(f"during {n}")
        resume.set()
        received = [int((await _next(socket))["id"]) for _ in range(250 + 5)]
        for n in range(5):
            await create(f"after {n}")
        received += [int((await _next(socket))["id"]) for _ in range(5)]
        with pytest.raises(TimeoutError):  # and nothing twice after that
            await socket.receive_json(timeout=1)
        expected = [
            r[0]
            for r in await _fetch(
                database,
                "SELECT id FROM events WHERE project_id = $1 AND id > $2"
                " AND kind = ANY($3::text[]) ORDER BY id",
                project,
                start[0],
                list(REPLAYED_KINDS),
            )
        ]

    assert statements == 3
    assert len(expected) == 250 + 10
    assert received == expected


async def test_a_client_resumes_after_the_cursor_of_the_last_event_it_saw(
    database: Database, committed: dict[str, Any]
) -> None:
    token = await access_token(database, committed["user"])
    async with running_app(database) as app:
        async with app.websocket() as socket:
            await open_socket(socket, token)
            await _subscribe(socket, RESUME, {"p": committed["project"]})
            for attempt in range(100):  # subscribing is asynchronous: probe until it delivers
                await gql(
                    app.http,
                    CREATE,
                    {"p": committed["project"], "t": f"probe {attempt}"},
                    token=token,
                )
                try:
                    seen = (await socket.receive_json(timeout=0.5))["payload"]["data"][
                        "issueEvents"
                    ]
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("the subscription never delivered")
            # the probes still on their way: the last one seen is where the client stops
            while True:
                try:
                    seen = (await socket.receive_json(timeout=0.5))["payload"]["data"][
                        "issueEvents"
                    ]
                except TimeoutError:
                    break
        # disconnected: these happen while nobody listens
        for title in ("missed 1", "missed 2", "missed 3"):
            await gql(app.http, CREATE, {"p": committed["project"], "t": title}, token=token)

        async with app.websocket() as socket:
            await open_socket(socket, token)
            await _subscribe(socket, RESUME, {"p": committed["project"], "after": seen["cursor"]})
            replayed = [await _next(socket) for _ in range(3)]
            await gql(app.http, CREATE, {"p": committed["project"], "t": "live"}, token=token)
            live = await _next(socket)

    assert [e["issue"]["title"] for e in replayed] == ["missed 1", "missed 2", "missed 3"]
    assert {e["kind"] for e in replayed} == {"OPENED"}
    assert live["issue"]["title"] == "live"
    assert int(live["id"]) > int(replayed[-1]["id"])


async def test_issue_comment_added_replays_that_issues_comments_only(
    database: Database, committed: dict[str, Any]
) -> None:
    token = await access_token(database, committed["user"])
    async with running_app(database) as app:
        issues = []
        for title in ("one", "two"):
            created = await gql(
                app.http, CREATE, {"p": committed["project"], "t": title}, token=token
            )
            issues.append(created.json()["data"]["createIssue"]["issue"]["id"])
        for body in ("first", "elsewhere", "second", "third"):
            target = issues[1] if body == "elsewhere" else issues[0]
            await gql(app.http, COMMENT, {"i": target, "b": body}, token=token)
        (first,) = await _fetch(
            database,
            "SELECT e.id, e.created_at FROM events e JOIN comments c ON c.id = e.comment_id"
            " WHERE c.body = 'first' AND e.project_id = $1",
            committed["project_id"],
        )

        async with app.websocket() as socket:
            await open_socket(socket, token)
            await _subscribe(
                socket, COMMENTS, {"i": issues[0], "after": encode_event_cursor(*first)}
            )
            replayed = [await _next(socket, "issueCommentAdded") for _ in range(2)]

    assert [e["comment"]["body"] for e in replayed] == ["second", "third"]


async def test_a_cursor_older_than_the_log_keeps_gets_resync_then_live_events(
    database: Database, committed: dict[str, Any]
) -> None:
    token = await access_token(database, committed["user"])
    old = encode_event_cursor(1, datetime.now(UTC) - timedelta(days=8))
    async with running_app(database) as app, app.websocket() as socket:
        await open_socket(socket, token)
        await _subscribe(socket, RESUME, {"p": committed["project"], "after": old})
        first = await _next(socket)
        for attempt in range(100):  # then live, once the subscription is registered
            await gql(
                app.http, CREATE, {"p": committed["project"], "t": f"now {attempt}"}, token=token
            )
            try:
                message = await socket.receive_json(timeout=0.5)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the subscription never went live")

    assert first == {"id": None, "kind": "RESYNC", "cursor": None, "issue": None}
    assert message["payload"]["data"]["issueEvents"]["kind"] == "OPENED"


async def test_a_malformed_cursor_is_refused(database: Database, committed: dict[str, Any]) -> None:
    token = await access_token(database, committed["user"])
    async with running_app(database) as app, app.websocket() as socket:
        await open_socket(socket, token)
        await _subscribe(socket, RESUME, {"p": committed["project"], "after": "not-a-cursor"})
        message = await socket.receive_json(timeout=WAIT)
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]


async def test_the_purge_keeps_what_timelines_show_and_the_young(
    conn: asyncpg.Connection, make: Any
) -> None:
    user = await make.user()
    project = await make.project(await make.organization())
    issue = await make.issue(project, user)
    rows = [
        ("UPDATED", "{}", 10),  # old, shows nothing: goes
        ("OPENED", "{}", 10),  # old, shows nothing: goes
        ("UPDATED", '{"previous_title": "x", "title": "y"}', 10),  # a rename: stays
        ("CLOSED", "{}", 10),  # stays
        ("UPDATED", "{}", 1),  # young: stays
    ]
    for kind, payload, days in rows:
        await conn.execute(
            "INSERT INTO events (kind, project_id, issue_id, payload, created_at)"
            " VALUES ($1, $2, $3, $4::jsonb, now() - make_interval(days => $5))",
            kind,
            project,
            issue,
            payload,
            days,
        )

    purged = await purge_events(conn, 7 * 86_400)

    assert purged == 2
    left = await conn.fetch(
        "SELECT kind, payload::text FROM events WHERE issue_id = $1 ORDER BY id", issue
    )
    assert [r[0] for r in left] == ["UPDATED", "CLOSED", "UPDATED"]


@pytest.mark.parametrize("read", ["load", "load_all"])
async def test_a_reader_cancelled_mid_read_fails_no_other_reader_of_shared_loaders(
    conn: asyncpg.Connection, make: Any, read: str
) -> None:
    """Subscribers of one event share loaders: one that disconnects while the event is
    being resolved (its task cancelled while it waits on a loader) must not fail the
    others waiting on the same read."""
    user = await make.user()
    loaders = Loaders(Session.on_connection(conn), shared=True)

    async def reader() -> Any:
        if read == "load":
            return await loaders.user_by_id.load(user)
        return (await loaders.user_by_id.load_all([user]))[0]

    leaving, staying = asyncio.create_task(reader()), asyncio.create_task(reader())
    await asyncio.sleep(0)  # both wait on the loader's one pending read
    leaving.cancel()

    await asyncio.wait({staying}, timeout=WAIT)  # (never raises: the checks below tell)
    assert staying.done() and not staying.cancelled()
    assert staying.result().id == user
    assert leaving.cancelled()


async def test_a_transfer_is_replayed_to_the_project_it_left_and_the_one_it_joined(
    database: Database, committed: dict[str, Any]
) -> None:
    token = await access_token(database, committed["user"])
    [(target,)] = await _fetch(
        database,
        "INSERT INTO projects (organization_id, key, name, visibility)"
        " SELECT organization_id, 'TO', 'Target', 'PUBLIC' FROM projects WHERE id = $1"
        " RETURNING id",
        committed["project_id"],
    )
    async with running_app(database) as app:
        created = await gql(
            app.http, CREATE, {"p": committed["project"], "t": "moving"}, token=token
        )
        issue = created.json()["data"]["createIssue"]["issue"]["id"]
        [(opened_id, opened_at)] = await _fetch(
            database,
            "SELECT id, created_at FROM events WHERE project_id = $1 AND kind = 'OPENED'"
            " ORDER BY id DESC LIMIT 1",
            committed["project_id"],
        )
        moved = await gql(
            app.http,
            """mutation($i: ID!, $p: ID!) { transferIssue(input: {issueId: $i, projectId: $p})
            { userErrors { code } } }""",
            {"i": issue, "p": encode_id("Project", target)},
            token=token,
        )
        assert moved.json()["data"]["transferIssue"]["userErrors"] == []
        after = encode_event_cursor(opened_id, opened_at)

        replayed = {}
        for name, project in (
            ("left", committed["project"]),
            ("joined", encode_id("Project", target)),
        ):
            async with app.websocket() as socket:
                await open_socket(socket, token)
                await _subscribe(socket, RESUME, {"p": project, "after": after})
                replayed[name] = await _next(socket)
        async with app.websocket() as socket:  # an issue's comments end where it moved
            await open_socket(socket, token)
            await _subscribe(socket, COMMENTS, {"i": issue, "after": after})
            last = await _next(socket, "issueCommentAdded")
            complete = await socket.receive_json(timeout=WAIT)

    assert replayed["left"] == replayed["joined"]
    assert replayed["left"]["kind"] == "TRANSFERRED"
    assert replayed["left"]["issue"] == {"title": "moving"}
    assert (last["kind"], last["cursor"]) == ("TRANSFERRED", replayed["left"]["cursor"])
    assert complete["type"] == "complete"
