"""Events written to subscribers without waking their tasks (execution/fanout.py, Live),
over real sockets to uvicorn serving the app in this process: in order and once each when
a socket cannot take a frame at once, a RESYNC instead of an unbounded backlog for a
subscriber that cannot keep up, and nothing after `complete`.

A socket that cannot take a frame at once is made so by refusing the direct write of the
operations a test names (`_Frames.write_next` says False, as it does when the socket's
buffer is full), and a slow client by holding their sends (`_send_later`) until the test
lets them go."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import execution.fanout
from core.db import Database
from server.websocket import _Connection, _Frames
from tests.conftest import RunningApp, running_app
from tests.servers import ServedSocket
from tests.sessions import access_token
from tests.test_sessions import CREATE, gql, open_socket

EVENTS = """subscription($p: ID!) { issueEvents(projectId: $p) { kind issue { title } } }"""
WAIT = 20  # seconds: a bound against hanging, not a measurement
QUIET = 1.0  # seconds without a message that count as "nothing more came"


@dataclass
class Throttle:
    """Which operations' direct writes are refused (`refused`: every one, or every other
    one with `alternate`) and whose later sends wait for `gate`."""

    refused: set[str] = field(default_factory=set)
    alternate: bool = False
    held: set[str] = field(default_factory=set)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    written: int = 0  # frames written at once for the refused operations
    deferred: int = 0  # and frames they had to send later


@pytest.fixture
def throttle(monkeypatch: pytest.MonkeyPatch) -> Throttle:
    throttle = Throttle()
    write_next, send_later = _Frames.write_next, _Connection._send_later

    def refusing(frames: _Frames, prefix: bytes, payload: bytes) -> bool:
        for operation in throttle.refused:
            if prefix.startswith(b'{"id":"' + operation.encode() + b'"'):
                if not throttle.alternate or (throttle.written + throttle.deferred) % 2:
                    throttle.deferred += 1
                    return False
                throttle.written += 1
        return write_next(frames, prefix, payload)

    async def holding(
        connection: _Connection, operation_id: str, prefix: bytes, payload: Any
    ) -> bool:
        if operation_id in throttle.held:
            await throttle.gate.wait()
        return await send_later(connection, operation_id, prefix, payload)

    monkeypatch.setattr(_Frames, "write_next", refusing)
    monkeypatch.setattr(_Connection, "_send_later", holding)
    return throttle


@dataclass
class Subscriber:
    app: RunningApp
    socket: ServedSocket
    token: str
    project: str
    received: dict[str, list[str]] = field(default_factory=dict)  # titles (or kind) by id

    async def subscribe(self, *operations: str) -> None:
        """Subscribe each operation; return once every one has received an event (they
        register asynchronously)."""
        for operation in operations:
            self.received[operation] = []
            payload = {"query": EVENTS, "variables": {"p": self.project}}
            await self.socket.send_json({"id": operation, "type": "subscribe", "payload": payload})
        for attempt in range(100):
            await self.create(f"probe {attempt}")
            with contextlib.suppress(TimeoutError):
                while not all(self.received[o] for o in operations):
                    await self.receive(timeout=0.5)
            if all(self.received[o] for o in operations):
                break
        else:
            pytest.fail("the subscriptions never delivered")
        await self.quiet()
        for operation in operations:
            self.received[operation] = []

    async def create(self, title: str) -> None:
        created = await gql(self.app.http, CREATE, {"p": self.project, "t": title}, self.token)
        assert created.json().get("errors") is None, created.json()

    async def receive(self, timeout: float = WAIT) -> None:
        message = await self.socket.receive_json(timeout=timeout)
        assert message["type"] == "next", message
        event = message["payload"]["data"]["issueEvents"]
        issue = event["issue"]
        self.received[message["id"]].append(issue["title"] if issue else event["kind"])

    async def until(self, operation: str, count: int) -> None:
        while len(self.received[operation]) < count:
            await self.receive()

    async def quiet(self) -> None:
        """Take what still comes, until nothing does for a while."""
        with contextlib.suppress(TimeoutError):
            while True:
                await self.receive(timeout=QUIET)


@pytest.fixture
async def subscriber(database: Database, committed: dict[str, Any]) -> AsyncIterator[Subscriber]:
    token = await access_token(database, committed["user"])
    async with running_app(database, served=True) as app, app.served_websocket() as socket:
        await open_socket(socket, token)
        yield Subscriber(app, socket, token, committed["project"])


async def test_events_arrive_in_order_once_each_when_a_socket_cannot_take_them_at_once(
    subscriber: Subscriber, throttle: Throttle
) -> None:
    """The first event is written at once, the second cannot be and waits (held) for the
    client: every later one queues behind it, although the socket could take them."""
    await subscriber.subscribe("slow", "steady")
    throttle.refused = throttle.held = {"slow"}
    throttle.alternate = True
    titles = [f"event {n}" for n in range(8)]
    for title in titles:
        await subscriber.create(title)
    await subscriber.until("steady", len(titles))  # every event was handed to both
    throttle.gate.set()
    await subscriber.until("slow", len(titles))
    await subscriber.quiet()

    assert subscriber.received == {"slow": titles, "steady": titles}
    assert throttle.written >= 1 and throttle.deferred >= 1  # both ways were taken


async def test_a_subscriber_that_cannot_keep_up_gets_resync_instead_of_a_growing_backlog(
    subscriber: Subscriber, throttle: Throttle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for three events waiting: the first event is being sent (held), three
    more wait, the fifth finds no room: those waiting are dropped, and RESYNC (fetch again)
    takes their place. Once the client reads again, it gets the first event, RESYNC, and
    what comes after."""
    monkeypatch.setattr(execution.fanout, "INBOX_LIMIT", 3)
    await subscriber.subscribe("slow", "steady")
    throttle.refused = throttle.held = {"slow"}
    titles = [f"event {n}" for n in range(5)]
    for title in titles:
        await subscriber.create(title)
    await subscriber.until("steady", len(titles))  # every event was handed to both
    throttle.gate.set()
    await subscriber.until("slow", 2)
    await subscriber.create("later")
    await subscriber.until("slow", 3)
    await subscriber.until("steady", len(titles) + 1)
    await subscriber.quiet()

    assert subscriber.received == {
        "slow": ["event 0", "RESYNC", "later"],
        "steady": [*titles, "later"],
    }


async def test_nothing_is_written_for_an_operation_after_its_complete(
    subscriber: Subscriber,
) -> None:
    await subscriber.subscribe("ended", "going")
    await subscriber.socket.send_json({"id": "ended", "type": "complete"})
    for n in range(3):
        await subscriber.create(f"event {n}")
    await subscriber.until("going", 3)
    await subscriber.quiet()

    assert subscriber.received == {"ended": [], "going": ["event 0", "event 1", "event 2"]}
