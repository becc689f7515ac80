"""Endurance: what a long-running server keeps must not grow with the traffic it serves.

Memory is measured with tracemalloc after a full collection: what the Python heap holds of
what was allocated while it traced, so the figure is the heap's own growth, not the
allocator's noise. Growth is the slope between two measurements taken after warm-up, so
what is made once (caches filling, first uses) does not count."""

from __future__ import annotations

import contextlib
import gc
import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

from core.db import Database
from tests.conftest import running_app
from tests.servers import AppSocket
from tests.sessions import access_token
from tests.test_transports import CREATE, open_graphql

SUBSCRIBERS = 20
WARM_UP_EVENTS = 40
MEASURED_EVENTS = 100
EVENTS = """subscription($p: ID!) { issueEvents(projectId: $p) {
  kind createdAt issue { number title state author { login } labels(first: 5) { nodes { name } } }
  actor { login } } }"""


@contextlib.contextmanager
def tracing() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def resident() -> int:
    """The process's resident memory in bytes (tracemalloc would make a flood of large
    documents several times slower to parse; its growth is in the hundreds of MB)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def traced() -> int:
    """The bytes the heap holds of what it allocated while tracing, after a collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def _publish(
    http: Any, token: str, project: str, count: int, sockets: list[AppSocket]
) -> None:
    """Open `count` issues; each subscriber receives each event before the next."""
    for n in range(count):
        response = await http.post(
            "/graphql",
            json={"query": CREATE, "variables": {"p": project, "t": f"Event {n}"}},
            headers={"authorization": f"Bearer {token}"},
        )
        assert "errors" not in response.json(), response.json()
        for socket in sockets:
            message = await socket.receive_json(timeout=10)
            assert message["type"] == "next", message
            assert message["payload"]["data"]["issueEvents"]["kind"] == "OPENED"


async def _subscribe_all(http: Any, token: str, project: str, sockets: list[AppSocket]) -> None:
    """Subscribe every socket, then open issues until every subscription (registered
    asynchronously) has seen one; the surplus events are read off."""
    for socket in sockets:
        await open_graphql(socket)
        payload = {"query": EVENTS, "variables": {"p": project}}
        await socket.send_json({"id": "1", "type": "subscribe", "payload": payload})
    waiting = set(range(len(sockets)))
    for _ in range(50):
        await http.post(
            "/graphql",
            json={"query": CREATE, "variables": {"p": project, "t": "Ready?"}},
            headers={"authorization": f"Bearer {token}"},
        )
        for i in sorted(waiting):
            with contextlib.suppress(TimeoutError):
                await sockets[i].receive_json(timeout=0.3)
                waiting.discard(i)
        if not waiting:
            break
    assert not waiting, "some subscriptions never started"
    for socket in sockets:  # events that reached the early subscribers meanwhile
        with contextlib.suppress(TimeoutError):
            while True:
                await socket.receive_json(timeout=0.3)


async def test_subscription_deliveries_keep_memory_flat(
    database: Database, committed: dict[str, Any]
) -> None:
    token = await access_token(database, committed["user"])
    project = committed["project"]
    async with running_app(database) as app, contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(app.websocket()) for _ in range(SUBSCRIBERS)]
        await _subscribe_all(app.http, token, project, sockets)
        with tracing():
            await _publish(app.http, token, project, WARM_UP_EVENTS, sockets)
            before = traced()
            await _publish(app.http, token, project, MEASURED_EVENTS, sockets)
            after = traced()
    deliveries = SUBSCRIBERS * MEASURED_EVENTS
    per_thousand = (after - before) * 1000 / deliveries
    assert per_thousand < 100_000, f"{per_thousand:,.0f} bytes kept per 1,000 deliveries"


def _large(n: int, aliases: int = 3_300) -> str:
    """A distinct valid document of about 10,000 tokens, refused for its aliases."""
    fields = " ".join(f"a{i}: name" for i in range(aliases))
    return f'query Flood{n} {{ organization(slug: "acme") {{ {fields} }} }}'


async def test_a_flood_of_large_refused_documents_keeps_memory_bounded(
    database: Database,
) -> None:
    async with running_app(database, refusal_cost=0) as app:
        await app.http.post("/graphql", json={"query": _large(-1)})  # first uses
        gc.collect()
        before = resident()
        for n in range(300):
            response = await app.http.post("/graphql", json={"query": _large(n)})
            code = response.json()["errors"][0]["extensions"]["code"]
            assert code == "QUERY_TOO_COMPLEX", response.json()
        gc.collect()
        after = resident()
    # each document, parsed, holds about 4 MB: 1.2 GB if the cache kept them whole
    assert after - before < 150_000_000, f"{(after - before) / 1e6:,.0f} MB kept"


async def test_the_same_refused_document_is_refused_again_without_parsing(
    database: Database,
) -> None:
    async with running_app(database) as app:
        first = await app.http.post("/graphql", json={"query": _large(0)})
        with tracing():
            again = await app.http.post("/graphql", json={"query": _large(0)})
            _, peak = tracemalloc.get_traced_memory()
    assert _without_request_ids(first.json()) == _without_request_ids(again.json())
    assert peak < 1_000_000, f"{peak:,} bytes at the peak: it was parsed again"


def _without_request_ids(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = body["errors"]
    for error in errors:
        error["extensions"].pop("requestId")
    return errors


async def test_refused_documents_spend_the_client_address_budget(database: Database) -> None:
    async with running_app(database, rate_limit_anonymous=50, refusal_cost=10) as app:
        codes = []
        for n in range(6):
            response = await app.http.post("/graphql", json={"query": f"{{ nope{n} }}"})
            codes.append(response.json()["errors"][0]["extensions"]["code"])
        budget = await app.http.post("/graphql", json={"query": "{ viewer { login } }"})
    assert codes == ["GRAPHQL_VALIDATION_FAILED"] * 5 + ["RATE_LIMITED"]
    assert budget.status_code == 429


async def test_raised_collector_thresholds_hold_no_growing_garbage_under_subscriptions(
    database: Database, committed: dict[str, Any]
) -> None:
    """The app raises the collector's thresholds (server/main.py: on large responses the
    collector otherwise costs half a request's CPU), so cyclic garbage waits longer to be
    freed. Under subscription traffic it must still be freed as it goes (the collector runs
    by itself, here about once per 7,000 deliveries) and what waits stays below one
    youngest-generation threshold of objects (a few MB), whatever the traffic."""
    from server.main import GC_THRESHOLDS

    token = await access_token(database, committed["user"])
    project = committed["project"]
    natural: list[int] = []  # objects freed by each collection the collector chose to run

    def observe(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            natural.append(info["collected"])

    async with running_app(database) as app, contextlib.AsyncExitStack() as stack:
        assert gc.get_threshold() == GC_THRESHOLDS
        sockets = [await stack.enter_async_context(app.websocket()) for _ in range(SUBSCRIBERS)]
        await _subscribe_all(app.http, token, project, sockets)
        await _publish(app.http, token, project, WARM_UP_EVENTS, sockets)
        gc.collect()
        gc.callbacks.append(observe)
        try:
            with tracing():
                await _publish(app.http, token, project, 360, sockets)
                before = tracemalloc.get_traced_memory()[0]
                gc.callbacks.remove(observe)
                waiting = gc.collect()  # the garbage not yet freed: objects
                waiting_bytes = before - tracemalloc.get_traced_memory()[0]
        finally:
            with contextlib.suppress(ValueError):
                gc.callbacks.remove(observe)
    print(f"\n[gc] 7,200 deliveries: collections freed {natural}; {waiting:,} objects")
    print(f"[gc] ({waiting_bytes:,} bytes) waiting at the end")
    assert natural and max(natural) > 0, "the collector never freed anything by itself"
    assert waiting < GC_THRESHOLDS[0], f"{waiting:,} garbage objects waiting"
