"""Subscriptions over WebSocket, across two real server processes on one database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from domain.auth import Tokens
from execution.ids import encode_id
from server.websocket import text_frame_header
from tests.conftest import TEST_SETTINGS
from tests.servers import server_processes
from tests.sessions import access_token, tokens

EVENTS = """subscription($p: ID!) { issueEvents(projectId: $p) {
  kind issue { number title state } actor { login } comment { body } } }"""
COMMENTS = """subscription($i: ID!) { issueCommentAdded(issueId: $i) {
  kind comment { body } issue { number } } }"""
WAIT = 20  # seconds: a bound against hanging, not a measurement


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[list[str]]:
    with server_processes(
        2, database_url, JWT_SECRET=TEST_SETTINGS.jwt_secret or "", BCRYPT_ROUNDS="4"
    ) as urls:
        yield urls


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[dict[str, Any]]:
    """A committed organization: owner and member, a private and a public project."""
    connection = await asyncpg.connect(database_url)
    tag = uuid.uuid4().hex[:8]
    users = {}
    for name in ("owner", "member"):
        users[name] = await connection.fetchval(
            "INSERT INTO users (login, email, password_hash) VALUES ($1, $1 || '@x.test', '!')"
            " RETURNING id",
            f"sub-{name}-{tag}",
        )
    org = await connection.fetchval(
        "INSERT INTO organizations (slug, name) VALUES ($1, $1) RETURNING id", f"sub-{tag}"
    )
    await connection.execute(
        "INSERT INTO memberships VALUES ($1, $2, 'OWNER'), ($1, $3, 'MEMBER')",
        org,
        users["owner"],
        users["member"],
    )
    private = await connection.fetchval(
        "INSERT INTO projects (organization_id, key, name, visibility) VALUES ($1, 'SECRET',"
        " 'S', 'PRIVATE') RETURNING id",
        org,
    )
    public = await connection.fetchval(
        "INSERT INTO projects (organization_id, key, name, visibility) VALUES ($1, 'OPEN',"
        " 'O', 'PUBLIC') RETURNING id",
        org,
    )
    owner = await access_token(connection, users["owner"])
    member = await access_token(connection, users["member"])
    await connection.close()
    yield {
        "org": encode_id("Organization", org),
        "private": encode_id("Project", private),
        "public": encode_id("Project", public),
        "member_id": encode_id("User", users["member"]),
        "owner_pk": users["owner"],
        "member_pk": users["member"],
        "owner": owner,
        "member": member,
        "org_tag": tag,
    }


def _ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/graphql"


async def _open(base: str, token: str | None) -> ClientConnection:
    ws = await connect(_ws_url(base), subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert ack == {"type": "connection_ack"}
    return ws


async def _subscribe(ws: ClientConnection, op: str, query: str, **variables: Any) -> None:
    await ws.send(
        json.dumps(
            {"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
    )


async def _next(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return message


async def _mutate(base: str, token: str, query: str, **variables: Any) -> Any:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"authorization": f"Bearer {token}"},
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def _until_subscribed(
    base: str, token: str, project: str, *sockets: ClientConnection
) -> None:
    """Subscriptions register asynchronously: create probe issues in the project until each
    socket has received one, then read what is still on its way (until a second of quiet).
    (One probe is not enough: on a busy machine it may commit before a subscription is
    registered, and its event then reaches nobody.)"""
    waiting = list(sockets)
    for attempt in range(40):
        await _mutate(
            base,
            token,
            """mutation($p: ID!, $t: String!) { createIssue(input: {projectId: $p, title: $t})
            { issue { id } } }""",
            p=project,
            t=f"probe {attempt}",
        )
        for ws in list(waiting):
            with contextlib.suppress(TimeoutError):
                message = json.loads(await asyncio.wait_for(ws.recv(), 1))
                assert _is_probe(message), message
                waiting.remove(ws)
        if not waiting:
            break
    assert not waiting, "a subscription never started"
    for ws in sockets:
        with contextlib.suppress(TimeoutError):
            while True:
                assert _is_probe(json.loads(await asyncio.wait_for(ws.recv(), 1)))


def _is_probe(message: dict[str, Any]) -> bool:
    event = message["payload"]["data"]["issueEvents"]
    return event["kind"] == "OPENED" and event["issue"]["title"].startswith("probe")


CREATE = """mutation($p: ID!, $t: String!) { createIssue(input: {projectId: $p, title: $t}) {
  issue { id } } }"""


async def test_events_reach_subscribers_on_another_process_and_follow_access(
    servers: list[str], world: dict[str, Any]
) -> None:
    a, b = servers
    owner_ws = await _open(a, world["owner"])
    member_ws = await _open(a, world["member"])
    await _subscribe(owner_ws, "1", EVENTS, p=world["private"])
    await _subscribe(member_ws, "1", EVENTS, p=world["private"])
    await _subscribe(member_ws, "2", EVENTS, p=world["public"])
    await _until_subscribed(b, world["owner"], world["private"], owner_ws, member_ws)
    await _until_subscribed(b, world["owner"], world["public"], member_ws)

    created = await _mutate(b, world["owner"], CREATE, p=world["private"], t="Made on B")
    issue = created["createIssue"]["issue"]["id"]
    to_owner, to_member = await _next(owner_ws), await _next(member_ws)

    expected = {
        "kind": "OPENED",
        "issue": {
            "number": to_owner["payload"]["data"]["issueEvents"]["issue"]["number"],
            "title": "Made on B",
            "state": "OPEN",
        },
        "actor": {"login": to_owner["payload"]["data"]["issueEvents"]["actor"]["login"]},
        "comment": None,
    }
    assert to_owner == {"id": "1", "type": "next", "payload": {"data": {"issueEvents": expected}}}
    assert to_member == to_owner

    await _mutate(
        b,
        world["owner"],
        """mutation($o: ID!, $u: ID!) { removeMember(input:
        {organizationId: $o, userId: $u}) { role } }""",
        o=world["org"],
        u=world["member_id"],
    )
    await _mutate(
        b,
        world["owner"],
        """mutation($i: ID!) { closeIssue(input: {issueId: $i})
        { issue { id } } }""",
        i=issue,
    )
    await _mutate(b, world["owner"], CREATE, p=world["public"], t="Public news")

    assert (await _next(owner_ws))["payload"]["data"]["issueEvents"]["kind"] == "CLOSED"
    after_removal = await _next(member_ws)
    assert after_removal["id"] == "2", "a removed member must not get private events"
    assert after_removal["payload"]["data"]["issueEvents"]["issue"]["title"] == "Public news"
    await owner_ws.close()
    await member_ws.close()


async def test_comment_subscription_sees_only_its_issue(
    servers: list[str], world: dict[str, Any]
) -> None:
    a, b = servers
    one = await _mutate(b, world["owner"], CREATE, p=world["public"], t="one")
    two = await _mutate(b, world["owner"], CREATE, p=world["public"], t="two")
    ws = await _open(a, None)
    await _subscribe(ws, "c", COMMENTS, i=one["createIssue"]["issue"]["id"])
    comment = """mutation($i: ID!, $b: String!) { addComment(input: {issueId: $i, body: $b})
        { comment { id } } }"""
    message = None
    for attempt in range(50):  # until the subscription is registered on server a
        await _mutate(
            b,
            world["owner"],
            comment,
            i=two["createIssue"]["issue"]["id"],
            b=f"elsewhere {attempt}",
        )
        await _mutate(
            b, world["owner"], comment, i=one["createIssue"]["issue"]["id"], b=f"here {attempt}"
        )
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            break
        except TimeoutError:
            continue
    assert message is not None
    event = message["payload"]["data"]["issueCommentAdded"]
    assert event["kind"] == "COMMENTED" and event["comment"]["body"].startswith("here")
    await ws.close()


async def test_hidden_project_cannot_be_subscribed(
    servers: list[str], world: dict[str, Any]
) -> None:
    ws = await _open(servers[0], None)
    await _subscribe(ws, "x", EVENTS, p=world["private"])
    message = await _next(ws)
    assert message["type"] == "error" and message["id"] == "x"
    assert message["payload"][0]["extensions"]["code"] == "NOT_FOUND"
    await ws.close()


async def test_lost_listener_reconnects_and_asks_to_resync(
    servers: list[str], world: dict[str, Any], database_url: str
) -> None:
    a, b = servers
    ws = await _open(a, world["owner"])
    await _subscribe(ws, "r", EVENTS, p=world["public"])
    await _until_subscribed(b, world["owner"], world["public"], ws)
    connection = await asyncpg.connect(database_url)
    killed = await connection.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE"
        " application_name = 'issuegraph-listener' AND datname = current_database()"
    )
    await connection.close()
    assert killed == 4  # each process's event hub and webhook delivery task listen
    resync = await _next(ws)
    assert resync["payload"]["data"]["issueEvents"] == {
        "kind": "RESYNC",
        "issue": None,
        "actor": None,
        "comment": None,
    }
    await _mutate(b, world["owner"], CREATE, p=world["public"], t="After reconnect")
    again = await _next(ws)
    assert again["payload"]["data"]["issueEvents"]["issue"]["title"] == "After reconnect"
    await ws.close()


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ("wrong-protocol", 4406),
        ("subscribe-first", 4401),
        ("bad-token", 4403),
        ("duplicate-id", 4409),
        ("second-init", 4429),
        ("not-json", 4400),
    ],
)
async def test_protocol_violations_close_with_the_protocols_codes(
    servers: list[str], world: dict[str, Any], steps: str, code: int
) -> None:
    url = _ws_url(servers[0])
    protocols = ["graphql-ws"] if steps == "wrong-protocol" else ["graphql-transport-ws"]
    try:
        async with connect(url, subprotocols=protocols) as ws:  # type: ignore[arg-type]
            if steps == "subscribe-first":
                await _subscribe(ws, "1", EVENTS, p=world["public"])
            elif steps == "bad-token":
                await ws.send(
                    json.dumps(
                        {"type": "connection_init", "payload": {"Authorization": "Bearer forged"}}
                    )
                )
            elif steps == "not-json":
                await ws.send("{nope")
            else:
                await ws.send(json.dumps({"type": "connection_init"}))
                await ws.recv()
                if steps == "second-init":
                    await ws.send(json.dumps({"type": "connection_init"}))
                else:
                    await _subscribe(ws, "1", EVENTS, p=world["public"])
                    await _subscribe(ws, "1", EVENTS, p=world["public"])
            await asyncio.wait_for(ws.recv(), WAIT)
            pytest.fail("the server should have closed the connection")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == code
    except Exception as refused:  # a refused handshake (wrong subprotocol)
        assert steps == "wrong-protocol", refused


async def test_idle_subscriptions_hold_no_database_connection(
    database_url: str, world: dict[str, Any]
) -> None:
    with server_processes(
        1, database_url, JWT_SECRET=TEST_SETTINGS.jwt_secret or "", DB_POOL_MAX="2"
    ) as (server,):
        sockets = []
        for n in range(6):  # three times the pool
            ws = await _open(server, world["owner"])
            await _subscribe(ws, str(n), EVENTS, p=world["public"])
            sockets.append(ws)
        waiting = set(sockets)
        for _ in range(20):  # probe until every subscriber has resolved an event
            await _mutate(server, world["owner"], CREATE, p=world["public"], t="probe")
            for ws in list(waiting):
                try:
                    await asyncio.wait_for(ws.recv(), 2)
                    waiting.discard(ws)
                except TimeoutError:
                    pass
            if not waiting:
                break
        assert not waiting
        async with httpx.AsyncClient(base_url=server) as http:
            response = await http.post(
                "/graphql", timeout=WAIT, json={"query": '{ organization(slug: "acme") { name } }'}
            )
        assert response.json()["data"] == {"organization": {"name": "Acme Inc."}}
        for ws in sockets:
            await ws.close()


async def test_a_session_ended_on_one_process_closes_its_sockets_on_the_other(
    servers: list[str], world: dict[str, Any], database_url: str
) -> None:
    a, b = servers
    watched = await access_token(database_url, world["owner_pk"])
    ws = await _open(a, watched)
    await _subscribe(ws, "1", EVENTS, p=world["private"])
    await _until_subscribed(b, world["owner"], world["private"], ws)

    started = time.monotonic()
    await _mutate(b, watched, "mutation { logOut(input: {}) { revoked } }")
    await _mutate(b, world["owner"], CREATE, p=world["private"], t="After the end")

    seen = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            seen.append(await _next(ws))
    noticed = time.monotonic() - started
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4401,
        "Unauthorized: the session has ended",
    )
    assert seen == []  # the event committed after the end never came
    assert noticed < 10  # LISTEN/NOTIFY: in practice well under a second


async def test_a_socket_closes_with_4401_when_its_token_expires_and_hears_nothing_after(
    servers: list[str], world: dict[str, Any], database_url: str
) -> None:
    token = await access_token(database_url, world["owner_pk"], ttl=4)
    expires = tokens().verify(token).expires_at.timestamp()
    ws = await _open(servers[0], token)
    await _subscribe(ws, "1", EVENTS, p=world["private"])
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await _next(ws)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4401,
        "Unauthorized: the access token has expired",
    )
    assert time.time() >= expires - 0.1


async def test_a_refused_token_closes_with_4403_and_a_reason_that_fits_a_close_frame(
    servers: list[str], world: dict[str, Any]
) -> None:
    """The longest refusal (a token signed with another key) is cut to the 123 bytes a
    close frame's reason may hold."""
    forged = Tokens(
        "another-key-" + "y" * 32, TEST_SETTINGS.jwt_issuer, TEST_SETTINGS.jwt_audience, 60
    )
    token = forged.issue(world["owner_pk"], 1).token
    async with connect(_ws_url(servers[0]), subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    reason = closed.value.rcvd.reason
    assert reason.startswith("Forbidden: The access token's signature does not match")
    assert len(reason.encode()) == 123


MOVES = """subscription($p: ID!) { issueEvents(projectId: $p) {
  kind issueId issue { title project { key } } actor { login } } }"""


async def test_a_move_reaches_both_projects_and_a_deletion_outlives_the_issue(
    servers: list[str], world: dict[str, Any]
) -> None:
    a, b = servers
    created = await _mutate(b, world["owner"], CREATE, p=world["public"], t="moving")
    issue = created["createIssue"]["issue"]["id"]
    ws = await _open(a, world["owner"])
    await _subscribe(ws, "public", MOVES, p=world["public"])
    await _subscribe(ws, "private", MOVES, p=world["private"])
    await _subscribe(ws, "comments", COMMENTS, i=issue)
    await _until_subscribed(b, world["owner"], world["public"], ws)
    await _until_subscribed(b, world["owner"], world["private"], ws)

    await _mutate(
        b,
        world["owner"],
        """mutation($i: ID!, $p: ID!) { transferIssue(input: {issueId: $i, projectId: $p})
        { issue { id } } }""",
        i=issue,
        p=world["private"],
    )
    received = {}
    for _ in range(4):  # each subscription's event, and the comment subscription's end
        message = await _next(ws)
        received[message["id"], message["type"]] = message.get("payload")
    moved = {"issueEvents": {
        "kind": "TRANSFERRED", "issueId": issue,
        "issue": {"title": "moving", "project": {"key": "SECRET"}},
        "actor": {"login": f"sub-owner-{world['org_tag']}"},
    }}  # fmt: skip
    assert received["public", "next"] == {"data": moved}
    assert received["private", "next"] == {"data": moved}
    assert received["comments", "next"]["data"]["issueCommentAdded"]["kind"] == "TRANSFERRED"
    assert ("comments", "complete") in received  # it followed the issue as far as it could

    await _mutate(
        b,
        world["owner"],
        "mutation($i: ID!) { deleteIssue(input: {issueId: $i}) { deletedIssueId } }",
        i=issue,
    )
    gone = await _next(ws)
    assert gone == {"id": "private", "type": "next", "payload": {"data": {"issueEvents": {
        "kind": "DELETED", "issueId": issue, "issue": None,
        "actor": {"login": f"sub-owner-{world['org_tag']}"},
    }}}}  # fmt: skip
    await ws.close()


VIEWER_EVENTS = """subscription($p: ID!) { issueEvents(projectId: $p) {
  kind issue { title viewerCanClose viewerSubscription } actor { login email } } }"""
ISSUE_AS_VIEWER = """query($i: ID!) { node(id: $i) { ... on Issue {
  title viewerCanClose viewerSubscription } } }"""


async def _issue_alone(base: str, token: str | None, issue: str) -> Any:
    """The issue's viewer-dependent fields as this viewer reads them in a query of its own."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            "/graphql", json={"query": ISSUE_AS_VIEWER, "variables": {"i": issue}}, headers=headers
        )
    return response.json()["data"]["node"]


async def _another_member(database_url: str, world: dict[str, Any]) -> tuple[str, str]:
    """A second MEMBER of the organization (the same scope as the first): login, token."""
    connection = await asyncpg.connect(database_url)
    login = f"sub-author-{world['org_tag']}"
    user = await connection.fetchval(
        "INSERT INTO users (login, email, password_hash) VALUES ($1, $1 || '@x.test', '!')"
        " RETURNING id",
        login,
    )
    await connection.execute(
        "INSERT INTO memberships SELECT id, $2, 'MEMBER' FROM organizations WHERE slug = $1",
        f"sub-{world['org_tag']}",
        user,
    )
    token = await access_token(connection, user)
    await connection.close()
    return login, token


async def test_subscribers_of_one_event_each_get_what_they_would_alone(
    servers: list[str], world: dict[str, Any], database_url: str
) -> None:
    """An event is executed once for every subscriber who gets the same payload: the same
    selection, scope and, when the selection reads viewer-dependent fields, viewer. Two
    anonymous sockets, two of the issue's author (a MEMBER), another MEMBER's (the same
    scope), all on one event: each sees its own viewerCanClose, viewerSubscription and
    email, as a query of its own reads them; and of two subscribers with the same selection
    and scope, the one who may no longer read the project gets nothing."""
    a, b = servers
    author_login, author_token = await _another_member(database_url, world)
    anonymous = [await _open(a, None), await _open(a, None)]
    authors = [await _open(a, author_token), await _open(a, author_token)]
    member = await _open(a, world["member"])
    everyone = [*anonymous, *authors, member]
    for ws in everyone:
        await _subscribe(ws, "v", VIEWER_EVENTS, p=world["public"])
    owner = await _open(a, world["owner"])
    for ws in (owner, member):
        await _subscribe(ws, "p", EVENTS, p=world["private"])
    await _until_subscribed(b, world["owner"], world["public"], *everyone)
    await _until_subscribed(b, world["owner"], world["private"], owner, member)

    created = await _mutate(b, author_token, CREATE, p=world["public"], t="Seen by all")
    issue = created["createIssue"]["issue"]["id"]
    got = {ws: (await _next(ws))["payload"] for ws in everyone}

    for ws, token in [(authors[0], author_token), (member, world["member"]), (anonymous[0], None)]:
        assert got[ws]["data"]["issueEvents"]["issue"] == await _issue_alone(b, token, issue)
    assert got[authors[0]] == {
        "data": {
            "issueEvents": {
                "kind": "OPENED",
                "issue": {
                    "title": "Seen by all",
                    "viewerCanClose": True,
                    "viewerSubscription": "SUBSCRIBED",
                },
                "actor": {"login": author_login, "email": f"{author_login}@x.test"},
            }
        }
    }
    assert got[member]["data"]["issueEvents"]["issue"] == {
        "title": "Seen by all",
        "viewerCanClose": False,
        "viewerSubscription": "UNSUBSCRIBED",
    }
    assert got[anonymous[0]]["data"]["issueEvents"]["issue"]["viewerSubscription"] is None
    for ws in (member, anonymous[0]):
        assert got[ws]["data"]["issueEvents"]["actor"] == {"login": author_login, "email": None}
        [error] = got[ws]["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["path"] == ["issueEvents", "actor", "email"]
    assert got[anonymous[1]] == got[anonymous[0]] and got[authors[1]] == got[authors[0]]

    await _mutate(
        b,
        world["owner"],
        """mutation($o: ID!, $u: ID!) { removeMember(input:
        {organizationId: $o, userId: $u}) { role } }""",
        o=world["org"],
        u=world["member_id"],
    )
    await _mutate(b, world["owner"], CREATE, p=world["private"], t="Members only")
    await _mutate(b, world["owner"], CREATE, p=world["public"], t="Public again")
    to_owner = await _next(owner)
    assert to_owner["id"] == "p"
    assert to_owner["payload"]["data"]["issueEvents"]["issue"]["title"] == "Members only"
    after_removal = await _next(member)
    assert after_removal["id"] == "v", "a removed member must not get private events"
    assert after_removal["payload"]["data"]["issueEvents"]["issue"]["title"] == "Public again"
    for ws in [*everyone, owner]:
        await ws.close()


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 70_000])
def test_a_next_message_written_straight_to_the_socket_is_the_frame_websockets_writes(
    size: int,
) -> None:
    """`next` messages skip the WebSocket library's framing (server/websocket.py): every
    length a payload can have gets the header the library itself would write."""
    data = b"x" * size
    frame = Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])
    assert text_frame_header(size) + data == frame
