"""Webhook deliveries against real receivers (HTTP servers that check each signature): on
time, retried, logged, turned off after failures, redelivered, refused at private
addresses, never redirected; across server processes, at least once at the receiver and
exactly once in the log; and again after a server is killed in the middle of one.

The tests set WEBHOOK_ALLOW_PRIVATE to reach their receivers on this machine (but the one
that checks the guard), and a backoff of a fraction of a second."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from core import observability
from core.db import Database
from domain.webhooks.delivery import GONE
from loaders.writes.deliveries import INTERRUPTED
from tests.conftest import TEST_SETTINGS, running_app
from tests.receivers import WAIT, eventually, receiver
from tests.servers import server_processes, spawn_server
from tests.sessions import access_token

SECRET = "a webhook's secret"
FAST = {
    "webhook_allow_private": True,
    "webhook_retry_base": 0.05,
    "webhook_retry_max": 0.2,
    # far beyond the tests' waits: what arrives in time was woken by the event's NOTIFY
    "webhook_poll_interval": 120,
}
ENV = {
    "JWT_SECRET": TEST_SETTINGS.jwt_secret or "",
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_RETRY_BASE": "0.05",
    "WEBHOOK_RETRY_MAX": "0.2",
}
CREATE_HOOK = """mutation($input: CreateWebhookInput!) { createWebhook(input: $input) {
  webhook { id } } }"""
OPEN_ISSUE = """mutation($p: ID!, $t: String!) { createIssue(input: {projectId: $p, title: $t}) {
  issue { id number } } }"""
LOG = """query($id: ID!) { node(id: $id) { ... on Webhook { active disabledReason
  deliveries(first: 10) { nodes { id guid state event attemptCount isRedelivery payload
    attempts { nodes { statusCode durationMs error } } } } } } }"""


async def _graphql(http: httpx.AsyncClient, token: str, query: str, **variables: Any) -> Any:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=WAIT,
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def _hook(http: httpx.AsyncClient, token: str, project: str, url: str, **more: Any) -> str:
    given = {"projectId": project, "url": url, "events": ["OPENED"], "secret": SECRET} | more
    data = await _graphql(http, token, CREATE_HOOK, input=given)
    return str(data["createWebhook"]["webhook"]["id"])


async def _log(http: httpx.AsyncClient, token: str, hook: str) -> Any:
    return (await _graphql(http, token, LOG, id=hook))["node"]


async def _settled_log(http: httpx.AsyncClient, token: str, hook: str) -> Any:
    """The hook's log once no delivery is PENDING (a receiver hears of a delivery before
    its outcome is recorded)."""
    found: Any = None

    async def settled() -> bool:
        nonlocal found
        found = await _log(http, token, hook)
        return all(d["state"] != "PENDING" for d in found["deliveries"]["nodes"])

    await eventually(settled)
    return found


def _attempts(outcome: str) -> float:
    """Webhook attempts of this outcome counted so far in this process (/metrics)."""
    found = observability.registry.get_sample_value(
        "issuegraph_webhook_attempts_total", {"outcome": outcome}
    )
    return found or 0.0


@pytest.fixture
async def admin(database: Database, committed: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The committed organization's ADMIN with a token; its hooks are deleted afterwards."""
    yield committed | {"token": await access_token(database, committed["user"])}
    connection = await database.acquire()
    try:
        await connection.execute(
            "DELETE FROM webhooks WHERE project_id = $1", committed["project_id"]
        )
    finally:
        await database.release(connection)


async def test_an_event_reaches_the_receiver_signed_at_once_and_is_logged(
    database: Database, admin: dict[str, Any]
) -> None:
    token = admin["token"]
    with receiver(SECRET) as got:
        async with running_app(database, **FAST) as app:
            hook = await _hook(app.http, token, admin["project"], got.url)
            issue = (await _graphql(app.http, token, OPEN_ISSUE, p=admin["project"], t="Hooked"))[
                "createIssue"
            ]["issue"]
            await got.until(lambda: len(got.delivered()) == 1)
            log = await _settled_log(app.http, token, hook)
    request = got.received[0]
    assert request.signed and request.status == 200
    assert request.headers["x-issuegraph-event"] == "OPENED"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == got.url.split("/")[2]
    body = request.json
    assert body["event"]["kind"] == "OPENED"
    assert body["issue"]["id"] == issue["id"] and body["issue"]["title"] == "Hooked"
    assert body["issue"]["number"] == issue["number"] and body["issue"]["state"] == "OPEN"
    assert body["project"] == {"id": admin["project"], "key": "WS", "name": "WebSocket"}
    assert body["actor"]["login"].startswith("ws-")
    (delivery,) = log["deliveries"]["nodes"]
    assert delivery["guid"] == request.delivery and delivery["state"] == "DELIVERED"
    assert delivery["payload"] == request.body.decode() and delivery["event"] == "OPENED"
    (attempt,) = delivery["attempts"]["nodes"]
    assert attempt["statusCode"] == 200 and attempt["error"] is None
    assert attempt["durationMs"] >= 0


async def test_a_failing_receiver_gets_it_once_it_succeeds_and_every_attempt_is_logged(
    database: Database, admin: dict[str, Any]
) -> None:
    token = admin["token"]
    retrying, delivered = _attempts("retrying"), _attempts("delivered")
    with receiver(SECRET, fail_first=3) as got:
        async with running_app(database, **FAST) as app:
            hook = await _hook(app.http, token, admin["project"], got.url)
            await _graphql(app.http, token, OPEN_ISSUE, p=admin["project"], t="Retried")
            await got.until(lambda: len(got.delivered()) == 1)
            log = await _settled_log(app.http, token, hook)
    assert [r.status for r in got.received] == [500, 500, 500, 200]
    assert _attempts("retrying") - retrying == 3 and _attempts("delivered") - delivered == 1
    assert all(r.signed for r in got.received)
    assert len({r.delivery for r in got.received}) == 1  # one delivery, tried four times
    assert len({r.body for r in got.received}) == 1
    (delivery,) = log["deliveries"]["nodes"]
    assert delivery["state"] == "DELIVERED" and delivery["attemptCount"] == 4
    attempts = delivery["attempts"]["nodes"]
    assert [(a["statusCode"], a["error"]) for a in attempts] == [
        *[(500, "The receiver answered 500.")] * 3,
        (200, None),
    ]
    assert all(a["durationMs"] is not None for a in attempts)


async def test_a_hook_failing_for_the_whole_window_is_turned_off_then_redelivered(
    database: Database, admin: dict[str, Any]
) -> None:
    token = admin["token"]
    with receiver(SECRET, fail_first=10**9) as got:
        async with running_app(database, **FAST, webhook_failure_window=1.0) as app:
            hook = await _hook(app.http, token, admin["project"], got.url)
            await _graphql(app.http, token, OPEN_ISSUE, p=admin["project"], t="Doomed")

            async def turned_off() -> bool:
                return (await _log(app.http, token, hook))["active"] is False

            await eventually(turned_off)
            log = await _settled_log(app.http, token, hook)
            reason = log["disabledReason"]
            assert reason.startswith("Every delivery failed for 1 second; the last: ")
            assert reason.endswith("The receiver answered 500.")
            (failed,) = log["deliveries"]["nodes"]
            assert failed["state"] == "FAILED"
            assert failed["attemptCount"] == len(got.received) >= 1

            got.fail_first = 0
            again = """mutation($h: ID!, $d: ID!) {
              updateWebhook(input: {webhookId: $h, active: true}) { webhook { active } }
              redeliverWebhookDelivery(input: {deliveryId: $d}) { delivery { id } } }"""
            await _graphql(app.http, token, again, h=hook, d=failed["id"])
            await got.until(lambda: len(got.delivered()) == 1)
            log = await _settled_log(app.http, token, hook)
    assert log["active"] is True and log["disabledReason"] is None
    redelivered, original = log["deliveries"]["nodes"]  # newest first
    assert redelivered["isRedelivery"] and redelivered["state"] == "DELIVERED"
    assert redelivered["payload"] == original["payload"]
    assert got.delivered()[0].delivery == redelivered["guid"] != original["guid"]
    assert got.delivered()[0].body.decode() == original["payload"]


async def test_without_the_setting_a_delivery_to_a_private_address_is_refused(
    database: Database, admin: dict[str, Any]
) -> None:
    """A hook whose host turns private after it was created (DNS), or that was made while
    the setting was on, is refused at each attempt: the guard runs before every request."""
    token = admin["token"]
    with receiver(SECRET) as got:
        connection = await database.acquire()
        try:
            hook_id = await connection.fetchval(
                "INSERT INTO webhooks (organization_id, project_id, url, events, secret)"
                " SELECT organization_id, id, $2, '{OPENED}', $3 FROM projects WHERE id = $1"
                " RETURNING id",
                admin["project_id"],
                got.url,
                SECRET,
            )
        finally:
            await database.release(connection)
        settings = FAST | {"webhook_allow_private": False}
        async with running_app(database, **settings) as app:
            await _graphql(app.http, token, OPEN_ISSUE, p=admin["project"], t="Guarded")

            async def refused() -> bool:
                return bool(await _errors(database, hook_id))

            await eventually(refused)
    error = (await _errors(database, hook_id))[0]
    assert "127.0.0.1 is a loopback address" in error
    assert got.received == []


async def _errors(database: Database, hook_id: int) -> list[str]:
    connection = await database.acquire()
    try:
        rows = await connection.fetch(
            "SELECT a.error FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.webhook_id = $1 AND a.error IS NOT NULL",
            hook_id,
        )
    finally:
        await database.release(connection)
    return [r[0] for r in rows]


async def test_redirects_are_not_followed(database: Database, admin: dict[str, Any]) -> None:
    token = admin["token"]
    with receiver(SECRET) as target, receiver(SECRET, redirect_to=target.url) as redirecting:
        async with running_app(database, **FAST) as app:
            hook = await _hook(app.http, token, admin["project"], redirecting.url)
            await _graphql(app.http, token, OPEN_ISSUE, p=admin["project"], t="Moved")
            await redirecting.until(lambda: len(redirecting.received) >= 2)
            log = await _log(app.http, token, hook)
            assert log["deliveries"]["nodes"][0]["attempts"]["nodes"][0]["durationMs"] is not None
    assert target.received == []
    error = log["deliveries"]["nodes"][0]["attempts"]["nodes"][0]["error"]
    assert error == f"The receiver answered 302 to {target.url}: redirects are not followed."


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[str, str]:
    """A certificate for localhost, signed by itself, and its key (files)."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is not installed"
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", key, "-out", cert, "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_checks_the_certificate_against_the_hooks_host_name(
    database: Database, admin: dict[str, Any], self_signed: tuple[str, str]
) -> None:
    """The request goes to the address the guard checked, yet TLS asks for the hook's host
    name (SNI) and verifies the certificate against it: a self-signed one is refused."""
    token = admin["token"]
    with receiver(SECRET, tls=self_signed) as got:
        async with running_app(database, **FAST) as app:
            hook = await _hook(app.http, token, admin["project"], got.url)
            await _graphql(app.http, token, OPEN_ISSUE, p=admin["project"], t="Encrypted")

            async def refused() -> bool:
                deliveries = (await _log(app.http, token, hook))["deliveries"]["nodes"]
                attempts = deliveries[0]["attempts"]["nodes"] if deliveries else []
                return any(a["error"] for a in attempts)

            await eventually(refused)
            log = await _log(app.http, token, hook)
    error = log["deliveries"]["nodes"][0]["attempts"]["nodes"][0]["error"]
    assert error.startswith("Could not connect: ") and "CERTIFICATE_VERIFY_FAILED" in error
    assert "localhost" in got.server_names and got.received == []


async def test_finished_deliveries_are_deleted_after_the_retention(
    database: Database, admin: dict[str, Any]
) -> None:
    connection = await database.acquire()
    try:
        hook = await connection.fetchval(
            "INSERT INTO webhooks (organization_id, project_id, url, events, secret, active)"
            " SELECT organization_id, id, 'https://93.184.216.34/', '{OPENED}', 's', false"
            " FROM projects WHERE id = $1 RETURNING id",
            admin["project_id"],
        )
        kept = await connection.fetch(
            "INSERT INTO webhook_deliveries (webhook_id, kind, state, created_at, finished_at)"
            " VALUES ($1, 'OPENED', 'DELIVERED', now() - interval '31 days',"
            "         now() - interval '31 days'),"
            "        ($1, 'OPENED', 'FAILED', now() - interval '2 days', now() - interval '1 day'),"
            "        ($1, 'OPENED', 'PENDING', now() - interval '40 days', NULL)"
            " RETURNING id, state",
            hook,
        )
        await connection.execute(
            "INSERT INTO webhook_attempts (delivery_id, status_code) SELECT id, 200"
            " FROM webhook_deliveries WHERE webhook_id = $1",
            hook,
        )
        async with running_app(database):  # its delivery task starts by deleting old ones
            left = await connection.fetch(
                "SELECT d.state, count(a.id) FROM webhook_deliveries d LEFT JOIN"
                " webhook_attempts a ON a.delivery_id = d.id WHERE d.webhook_id = $1"
                " GROUP BY d.id ORDER BY d.id",
                hook,
            )
    finally:
        await database.release(connection)
    assert [r["state"] for r in kept] == ["DELIVERED", "FAILED", "PENDING"]
    assert [tuple(r) for r in left] == [("FAILED", 1), ("PENDING", 1)]


async def test_a_delivery_whose_event_is_gone_fails_at_once(
    database: Database, admin: dict[str, Any]
) -> None:
    with receiver(SECRET) as got:
        connection = await database.acquire()
        try:
            delivery = await connection.fetchval(
                "WITH hook AS (INSERT INTO webhooks"
                " (organization_id, project_id, url, events, secret)"
                " SELECT organization_id, id, $2, '{OPENED}', 's' FROM projects WHERE id = $1"
                " RETURNING id)"
                " INSERT INTO webhook_deliveries (webhook_id, event_id, kind)"
                " SELECT id, 0, 'OPENED' FROM hook RETURNING id",
                admin["project_id"],
                got.url,
            )

            async def failed() -> bool:
                state = "SELECT state FROM webhook_deliveries WHERE id = $1"
                return bool(await connection.fetchval(state, delivery) == "FAILED")

            async with running_app(database, **FAST):
                await eventually(failed)
            errors = await connection.fetch(
                "SELECT error FROM webhook_attempts WHERE delivery_id = $1", delivery
            )
        finally:
            await database.release(connection)
    assert [r["error"] for r in errors] == [GONE] and got.received == []


async def _delivered(database_url: str, hook: str, count: int) -> list[asyncpg.Record]:
    """The hook's deliveries once `count` of them are DELIVERED."""
    found: list[asyncpg.Record] = []

    async def done() -> bool:
        nonlocal found
        found = await _deliveries(database_url, hook)
        return sum(r["state"] == "DELIVERED" for r in found) == count

    await eventually(done)
    return found


async def _deliveries(database_url: str, hook: str) -> list[asyncpg.Record]:
    from execution.ids import decode_id

    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetch(
            "SELECT d.guid::text, d.state, d.attempts, d.event_id,"
            " array_agg(a.status_code ORDER BY a.id) AS statuses,"
            " array_agg(a.error ORDER BY a.id) AS errors,"
            " array_agg(a.duration_ms ORDER BY a.id) AS durations"
            " FROM webhook_deliveries d LEFT JOIN webhook_attempts a ON a.delivery_id = d.id"
            " WHERE d.webhook_id = $1 GROUP BY d.id ORDER BY d.id",
            decode_id(hook)[1],
        )
    finally:
        await connection.close()


async def test_two_processes_deliver_each_event_once_in_the_log_and_at_the_receiver(
    database_url: str, admin: dict[str, Any]
) -> None:
    token, events = admin["token"], 20
    with receiver(SECRET) as got, server_processes(2, database_url, **ENV) as urls:
        clients = [httpx.AsyncClient(base_url=url) for url in urls]
        try:
            hook = await _hook(clients[0], token, admin["project"], got.url)
            for n in range(events):  # through both processes
                await _graphql(clients[n % 2], token, OPEN_ISSUE, p=admin["project"], t=f"#{n}")
            await got.until(lambda: len({r.delivery for r in got.delivered()}) == events)
            logged = await _delivered(database_url, hook, events)
        finally:
            for client in clients:
                await client.aclose()
    assert len(logged) == events and len({r["event_id"] for r in logged}) == events
    assert all(r["state"] == "DELIVERED" and r["statuses"] == [200] for r in logged)
    assert {r["guid"] for r in logged} == {r.delivery for r in got.delivered()}
    assert all(r.signed for r in got.received)


async def test_a_server_killed_mid_delivery_delivers_it_after_restart(
    database_url: str, admin: dict[str, Any]
) -> None:
    token = admin["token"]
    env = ENV | {"WEBHOOK_TIMEOUT": "4"}  # a lease of 9 s
    with receiver(SECRET, hold_first=True) as got:
        url, first = spawn_server(database_url, **env)
        try:
            async with httpx.AsyncClient(base_url=url) as http:
                hook = await _hook(http, token, admin["project"], got.url)
                await _graphql(http, token, OPEN_ISSUE, p=admin["project"], t="Interrupted")
            await got.until(got.held.is_set)  # the request is on the wire ...
        finally:
            first.kill()  # ... when its server dies
            first.wait()
        _, second = spawn_server(database_url, **env)
        try:
            await got.until(lambda: len(got.delivered()) == 1)
            (logged,) = await _delivered(database_url, hook, 1)
        finally:
            _stop(second)
    assert logged["state"] == "DELIVERED" and logged["attempts"] == 2
    assert logged["statuses"] == [None, 200]
    assert logged["errors"] == [INTERRUPTED, None] and logged["durations"][0] is None
    assert got.delivered()[0].delivery == logged["guid"]


async def test_an_attempt_under_way_when_the_server_stops_finishes_and_is_logged(
    database: Database, database_url: str, admin: dict[str, Any]
) -> None:
    """The server stops while the receiver holds the request: the attempt gets its answer
    within the shutdown bound and is logged DELIVERED, rather than cancelled and left to its
    lease (to be sent again once the lease ends)."""
    token = admin["token"]
    with receiver(SECRET, hold_first=True, answer_held=True) as got:
        running = running_app(database, **FAST)
        app = await running.__aenter__()
        try:
            hook = await _hook(app.http, token, admin["project"], got.url)
            await _graphql(app.http, token, OPEN_ISSUE, p=admin["project"], t="Stopping")
            await got.until(got.held.is_set)  # the request is on the wire ...
        finally:
            stopping = asyncio.create_task(running.__aexit__(None, None, None))
        hub = app.state.hub
        await got.until(lambda: not hub.connected.is_set())  # ... when the server stops
        got.release.set()
        await asyncio.wait_for(stopping, WAIT)
        (logged,) = await _deliveries(database_url, hook)
    assert logged["state"] == "DELIVERED" and logged["attempts"] == 1
    assert logged["statuses"] == [200] and len(got.delivered()) == 1


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def test_a_hook_on_the_project_an_issue_left_hears_of_its_transfer_and_of_a_deletion(
    database: Database, admin: dict[str, Any]
) -> None:
    from execution.ids import encode_id

    token = admin["token"]
    connection = await database.acquire()
    try:
        target = await connection.fetchval(
            "INSERT INTO projects (organization_id, key, name, visibility)"
            " SELECT organization_id, 'WT', 'Target', 'PUBLIC' FROM projects WHERE id = $1"
            " RETURNING id",
            admin["project_id"],
        )
    finally:
        await database.release(connection)
    with receiver(SECRET) as got:
        async with running_app(database, **FAST) as app:
            await _hook(
                app.http, token, admin["project"], got.url, events=["TRANSFERRED", "DELETED"]
            )
            issues = [
                (await _graphql(app.http, token, OPEN_ISSUE, p=admin["project"], t=title))[
                    "createIssue"
                ]["issue"]["id"]
                for title in ("Moved", "Deleted")
            ]
            await _graphql(
                app.http,
                token,
                """mutation($i: ID!, $p: ID!) { transferIssue(input: {issueId: $i,
                   projectId: $p}) { userErrors { code } } }""",
                i=issues[0],
                p=encode_id("Project", target),
            )
            await _graphql(
                app.http,
                token,
                "mutation($i: ID!) { deleteIssue(input: {issueId: $i}) { deletedIssueId } }",
                i=issues[1],
            )
            await got.until(lambda: len(got.delivered()) == 2)
    bodies = {r.headers["x-issuegraph-event"]: r.json for r in got.delivered()}
    moved, deleted = bodies["issue_transferred"], bodies["issue_deleted"]
    assert moved["issue"]["id"] == issues[0] and moved["issue"]["title"] == "Moved"
    assert moved["project"]["key"] == "WT"  # where it went
    assert moved["fromProject"] == {"id": admin["project"], "key": "WS", "name": "WebSocket"}
    assert deleted["issue"] == {"id": issues[1]}  # gone: its id alone
    assert deleted["project"]["key"] == "WS" and deleted["fromProject"] is None
