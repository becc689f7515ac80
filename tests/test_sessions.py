"""Sessions through the real app: every way a session ends stops its access tokens at once
(401 with the reason) and closes its WebSockets with 4401; `viewer.sessions`; what a
signed-in request costs. (Across two server processes: tests/test_subscriptions.py.)"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

import httpx
import pytest

from core.db import Database
from tests.conftest import running_app
from tests.servers import AppSocket, Socket, SocketClosed
from tests.sessions import access_token, tokens

SIGN_UP = """mutation($i: SignUpInput!) { signUp(input: $i) {
  tokens { accessToken refreshToken } userErrors { code } } }"""
LOG_IN = """mutation($i: LogInInput!) { logIn(input: $i) {
  tokens { accessToken refreshToken } userErrors { code } } }"""
REFRESH = """mutation($t: String!) { refreshToken(input: {refreshToken: $t}) {
  tokens { accessToken refreshToken } } }"""
LOG_OUT = "mutation($t: String) { logOut(input: {refreshToken: $t}) { revoked } }"
REVOKE = """mutation($s: ID!) { revokeSession(input: {sessionId: $s}) {
  revokedSessionId userErrors { code } } }"""
CHANGE = """mutation($c: String!, $n: String!) { changePassword(input:
  {currentPassword: $c, newPassword: $n}) { endedSessions userErrors { field code } } }"""
SESSIONS = """{ viewer { sessions { totalCount nodes {
  id createdAt lastUsedAt client ipAddress isCurrent } } } }"""
VIEWER = "{ viewer { login } }"
PASSWORD = "correct horse"
EVENTS = "subscription($p: ID!) { issueEvents(projectId: $p) { kind issue { title } } }"
CREATE = """mutation($p: ID!, $t: String!) { createIssue(input: {projectId: $p, title: $t}) {
  issue { id } } }"""
_n = itertools.count(1)


async def gql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    **headers: str,
) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )


async def sign_up(http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """A new account, signed in: its login and its first session's tokens."""
    login = f"sess-{uuid.uuid4().hex[:8]}-{next(_n)}"
    data = {"login": login, "email": f"{login}@example.test", "password": PASSWORD}
    body = (await gql(http, SIGN_UP, {"i": data})).json()
    assert body["data"]["signUp"]["userErrors"] == [], body
    return login, body["data"]["signUp"]["tokens"]


async def log_in(
    http: httpx.AsyncClient, login: str, password: str = PASSWORD, **headers: str
) -> dict[str, str]:
    body = (
        await gql(http, LOG_IN, {"i": {"login": login, "password": password}}, **headers)
    ).json()
    assert body["data"]["logIn"]["userErrors"] == [], body
    tokens: dict[str, str] = body["data"]["logIn"]["tokens"]
    return tokens


def assert_ended(response: httpx.Response, why: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["extensions"]["reason"] == "SESSION_ENDED"
    assert error["message"] == f"The session has ended: {why}. Sign in again."
    assert "data" not in response.json()


async def live(http: httpx.AsyncClient, tokens: dict[str, str]) -> bool:
    response = await gql(http, VIEWER, token=tokens["accessToken"])
    return response.status_code == 200


async def sessions_of(http: httpx.AsyncClient, tokens: dict[str, str]) -> list[dict[str, Any]]:
    body = (await gql(http, SESSIONS, token=tokens["accessToken"])).json()
    nodes: list[dict[str, Any]] = body["data"]["viewer"]["sessions"]["nodes"]
    assert body["data"]["viewer"]["sessions"]["totalCount"] == len(nodes)
    return nodes


async def session_rows(database: Database, login: str) -> list[tuple[Any, ...]]:
    """The user's sessions (id, end, reason) and their password hash, to see what changed."""
    connection = await database.acquire()
    try:
        rows = await connection.fetch(
            "SELECT s.id, s.ended_at, s.end_reason, u.password_hash FROM sessions s JOIN users u"
            " ON u.id = s.user_id WHERE u.login = $1 ORDER BY s.id",
            login,
        )
    finally:
        await database.release(connection)
    return [tuple(row) for row in rows]


# -- each way a session ends ------------------------------------------------------------------


async def test_log_out_ends_that_sessions_access_tokens_at_once(client: httpx.AsyncClient) -> None:
    login, first = await sign_up(client)
    second = await log_in(client, login)
    out = (await gql(client, LOG_OUT, {"t": first["refreshToken"]})).json()
    assert out["data"] == {"logOut": {"revoked": True}}
    assert_ended(await gql(client, VIEWER, token=first["accessToken"]), "it was signed out")
    assert await live(client, second)


async def test_log_out_without_a_refresh_token_ends_the_requests_session(
    client: httpx.AsyncClient,
) -> None:
    login, first = await sign_up(client)
    second = await log_in(client, login)
    out = (await gql(client, LOG_OUT, {"t": None}, token=first["accessToken"])).json()
    assert out["data"] == {"logOut": {"revoked": True}}
    assert_ended(await gql(client, VIEWER, token=first["accessToken"]), "it was signed out")
    refreshed = (await gql(client, REFRESH, {"t": first["refreshToken"]})).json()
    assert refreshed["errors"][0]["extensions"]["reason"] == "SESSION_ENDED"
    assert await live(client, second)
    anonymous = (await gql(client, LOG_OUT, {"t": None})).json()
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_reused_refresh_token_ends_the_session_and_its_access_tokens(
    client: httpx.AsyncClient,
) -> None:
    login, first = await sign_up(client)
    other = await log_in(client, login)
    rotated = (await gql(client, REFRESH, {"t": first["refreshToken"]})).json()
    newer = rotated["data"]["refreshToken"]["tokens"]
    assert await live(client, newer) and await live(client, first)  # same session, both live

    replayed = (await gql(client, REFRESH, {"t": first["refreshToken"]})).json()

    assert replayed["errors"][0]["extensions"]["reason"] == "SESSION_ENDED"
    used_twice = "one of its refresh tokens was used twice, so it was revoked"
    assert_ended(await gql(client, VIEWER, token=newer["accessToken"]), used_twice)
    assert_ended(await gql(client, VIEWER, token=first["accessToken"]), used_twice)
    assert await live(client, other)


async def test_revoke_session_ends_another_session_of_the_viewer(
    client: httpx.AsyncClient, database: Database
) -> None:
    login, phone = await sign_up(client)
    laptop = await log_in(client, login)
    listed = await sessions_of(client, laptop)
    assert [s["isCurrent"] for s in listed] == [True, False]  # newest first: the laptop's
    phone_id = listed[1]["id"]

    revoked = (await gql(client, REVOKE, {"s": phone_id}, token=laptop["accessToken"])).json()

    assert revoked["data"]["revokeSession"] == {"revokedSessionId": phone_id, "userErrors": []}
    assert_ended(await gql(client, VIEWER, token=phone["accessToken"]), "it was revoked")
    assert [s["id"] for s in await sessions_of(client, laptop)] == [listed[0]["id"]]
    again = (await gql(client, REVOKE, {"s": phone_id}, token=laptop["accessToken"])).json()
    assert again["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    # another user cannot end it: the same answer as for a session that does not exist
    _, stranger = await sign_up(client)
    before = await session_rows(database, login)
    theirs = (
        await gql(client, REVOKE, {"s": listed[0]["id"]}, token=stranger["accessToken"])
    ).json()
    assert theirs["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert theirs["data"] == {"revokeSession": None} or theirs["data"] is None
    assert await session_rows(database, login) == before
    assert await live(client, laptop)


async def test_change_password_ends_every_other_session(
    client: httpx.AsyncClient, database: Database
) -> None:
    login, first = await sign_up(client)
    current, third = await log_in(client, login), await log_in(client, login)
    before = await session_rows(database, login)

    wrong = (
        await gql(
            client,
            CHANGE,
            {"c": "not it at all", "n": "a new secret"},
            token=current["accessToken"],
        )
    ).json()
    short = (
        await gql(client, CHANGE, {"c": PASSWORD, "n": "short"}, token=current["accessToken"])
    ).json()
    assert wrong["data"]["changePassword"] == {
        "endedSessions": 0,
        "userErrors": [{"field": ["input", "currentPassword"], "code": "INVALID_CREDENTIALS"}],
    }
    assert short["data"]["changePassword"]["userErrors"] == [
        {"field": ["input", "newPassword"], "code": "TOO_SHORT"}
    ]
    assert await session_rows(database, login) == before  # refused: nothing written
    assert await live(client, first)

    changed = (
        await gql(
            client, CHANGE, {"c": PASSWORD, "n": "a new secret"}, token=current["accessToken"]
        )
    ).json()

    assert changed["data"]["changePassword"] == {"endedSessions": 2, "userErrors": []}
    for ended in (first, third):
        response = await gql(client, VIEWER, token=ended["accessToken"])
        assert_ended(response, "the account's password was changed")
    assert await live(client, current)
    old = (await gql(client, LOG_IN, {"i": {"login": login, "password": PASSWORD}})).json()
    assert old["data"]["logIn"]["userErrors"] == [{"code": "INVALID_CREDENTIALS"}]
    assert await live(client, await log_in(client, login, "a new secret"))


async def test_change_password_needs_a_signed_in_viewer(client: httpx.AsyncClient) -> None:
    body = (await gql(client, CHANGE, {"c": PASSWORD, "n": "a new secret"})).json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# -- viewer.sessions ------------------------------------------------------------------------


async def test_viewer_sessions_lists_the_live_sessions_to_their_user_only(
    database: Database,
) -> None:
    async with running_app(database) as app:
        http = app.http
        login, first = await sign_up(http)
        phone = await log_in(http, login, **{"user-agent": "Phone/1.0"})
        listed = await sessions_of(http, phone)
        assert [(s["client"], s["ipAddress"], s["isCurrent"]) for s in listed] == [
            ("Phone/1.0", app.address, True),
            ("python-httpx/" + httpx.__version__, app.address, False),
        ]
        assert all(s["createdAt"] <= s["lastUsedAt"] for s in listed)
        page = (
            await gql(
                http,
                "{ viewer { sessions(first: 1) { nodes { isCurrent }"
                " pageInfo { hasNextPage } } } }",
                token=phone["accessToken"],
            )
        ).json()
        assert page["data"]["viewer"]["sessions"] == {
            "nodes": [{"isCurrent": True}],
            "pageInfo": {"hasNextPage": True},
        }
        # anyone else, signed in or not, sees an empty list, as if there were none
        _, stranger = await sign_up(http)
        theirs = f'{{ user(login: "{login}") {{ sessions {{ totalCount nodes {{ id }} }} }} }}'
        for token in (stranger["accessToken"], None):
            seen = (await gql(http, theirs, token=token)).json()
            assert seen["data"]["user"]["sessions"] == {"totalCount": 0, "nodes": []}
        # an ended session is no longer listed
        await gql(http, LOG_OUT, {"t": first["refreshToken"]})
        assert [s["isCurrent"] for s in await sessions_of(http, phone)] == [True]


async def test_last_used_moves_when_the_session_refreshes_not_with_each_request(
    client: httpx.AsyncClient, database: Database
) -> None:
    """Each request only reads its session (no write on the way); refreshing notes the use."""
    login, tokens = await sign_up(client)
    last_used = (
        "SELECT last_used_at > now() - interval '1 minute' FROM sessions"
        " WHERE user_id = (SELECT id FROM users WHERE login = $1)"
    )
    connection = await database.acquire()
    try:
        await connection.execute(
            "UPDATE sessions SET last_used_at = now() - interval '5 minutes' WHERE user_id ="
            " (SELECT id FROM users WHERE login = $1)",
            login,
        )
        read = await gql(client, VIEWER, token=tokens["accessToken"])
        after_request = await connection.fetchval(last_used, login)
        await gql(client, REFRESH, {"t": tokens["refreshToken"]})
        after_refresh = await connection.fetchval(last_used, login)
    finally:
        await database.release(connection)
    assert read.status_code == 200
    assert (after_request, after_refresh) == (False, True)


async def test_a_signed_in_request_costs_the_statements_it_did_before_sessions(
    client: httpx.AsyncClient,
) -> None:
    """The session is checked in the statement that loads the viewer: `{ viewer { login } }`
    signed in is 1 statement, as it was before sessions; a project's page of issues (the
    organization, then the project with its issues written inside) 2 more."""
    _, tokens = await sign_up(client)
    viewer = await gql(client, VIEWER, token=tokens["accessToken"])
    issues = await gql(
        client,
        '{ organization(slug: "acme") { project(key: "WEB") { issues(first: 5)'
        " { nodes { title author { login } } } } } }",
        token=tokens["accessToken"],
    )
    assert viewer.headers["server-timing"] == 'sql;desc="1 statements"'
    assert issues.headers["server-timing"] == 'sql;desc="3 statements"'


# -- WebSockets -----------------------------------------------------------------------------


async def open_socket(socket: Socket, token: str) -> None:
    await socket.send_json(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    )
    assert await socket.receive_json() == {"type": "connection_ack"}


async def subscribed(http: httpx.AsyncClient, socket: AppSocket, token: str, project: str) -> None:
    """Subscribe to the project's events; return once one arrived (the subscription is
    registered asynchronously)."""
    await socket.send_json(
        {"id": "e", "type": "subscribe", "payload": {"query": EVENTS, "variables": {"p": project}}}
    )
    for attempt in range(100):
        await gql(http, CREATE, {"p": project, "t": f"probe {attempt}"}, token=token)
        try:
            message = await socket.receive_json(timeout=0.5)
        except TimeoutError:
            continue
        assert message["type"] == "next", message
        return
    pytest.fail("the subscription never delivered")


async def drain(socket: AppSocket) -> list[dict[str, Any]]:
    """The messages until the socket closes; the close code last."""
    messages: list[Any] = []
    while True:
        try:
            messages.append(await socket.receive_json(timeout=20))
        except SocketClosed as closed:
            return [*messages, closed.code]


async def test_a_websocket_closes_with_4401_when_its_session_ends_and_gets_nothing_after(
    database: Database, committed: dict[str, Any]
) -> None:
    watched = await access_token(database, committed["user"])
    writer = await access_token(database, committed["user"])
    async with running_app(database) as app, app.websocket() as socket:
        await open_socket(socket, watched)
        await subscribed(app.http, socket, writer, committed["project"])
        await drain_pending(socket)

        ended = (await gql(app.http, LOG_OUT, {"t": None}, token=watched)).json()
        await gql(app.http, CREATE, {"p": committed["project"], "t": "after the end"}, token=writer)

        assert ended["data"] == {"logOut": {"revoked": True}}
        messages = await drain(socket)
    assert messages[-1] == 4401
    titles = [m["payload"]["data"]["issueEvents"]["issue"]["title"] for m in messages[:-1]]
    assert "after the end" not in titles  # (late probes may still arrive before the close)


async def drain_pending(socket: AppSocket) -> None:
    """Read the probes' events still on their way."""
    while True:
        try:
            await socket.receive_json(timeout=0.5)
        except TimeoutError:
            return


async def test_a_websocket_closes_with_4401_when_its_access_token_expires(
    database: Database, committed: dict[str, Any]
) -> None:
    async with running_app(database) as app, app.websocket() as socket:
        token = await access_token(database, committed["user"], ttl=4)
        expires = tokens().verify(token).expires_at.timestamp()
        await open_socket(socket, token)
        await socket.send_json(
            {
                "id": "e",
                "type": "subscribe",
                "payload": {"query": EVENTS, "variables": {"p": committed["project"]}},
            }
        )
        messages = await drain(socket)
        closed = time.time()
    assert messages == [4401]
    assert closed >= expires - 0.1  # not before the token expired (timers may run early)


async def test_a_websocket_with_an_ended_session_is_refused_at_init(
    database: Database, committed: dict[str, Any]
) -> None:
    token = await access_token(database, committed["user"])
    async with running_app(database) as app:
        await gql(app.http, LOG_OUT, {"t": None}, token=token)
        async with app.websocket() as socket:
            await socket.send_json(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            )
            with pytest.raises(SocketClosed) as closed:
                await socket.receive_json()
    assert closed.value.code == 4403


LISTENING = """SELECT count(*) > 0 FROM pg_stat_activity
WHERE application_name = 'issuegraph-listener' AND datname = current_database()"""


async def test_the_session_ends_even_while_the_listener_was_away(
    database: Database, committed: dict[str, Any]
) -> None:
    """A session that ends while a process's LISTEN connection is down: on reconnecting,
    the hub asks which watched sessions are still live and closes the others' sockets."""
    watched = await access_token(database, committed["user"])
    async with running_app(database) as app, app.websocket() as socket:
        await open_socket(socket, watched)
        connection = await database.acquire()
        try:
            for _ in range(200):  # until the app's listener is connected (polled: it is in
                if await connection.fetchval(LISTENING):  # another task of the app)
                    break
                await asyncio.sleep(0.05)
            # the end commits right after the listener is cut off: before it listens again
            async with connection.transaction():
                await connection.execute(
                    "UPDATE sessions SET ended_at = now(), end_reason = 'REVOKED' WHERE id ="
                    " (SELECT max(id) FROM sessions WHERE user_id = $1)",
                    committed["user"],
                )
                await connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                    " application_name = 'issuegraph-listener' AND datname = current_database()"
                )
        finally:
            await database.release(connection)
        assert await drain(socket) == [4401]
