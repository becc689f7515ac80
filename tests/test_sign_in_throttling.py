"""Sign-in throttling through the real HTTP app: failures slow down the (account, client
address) pair with a growing wait, an address that fails very often waits whatever the
account, and nobody can lock a user out from another address."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.db import Database
from domain.auth import SignInThrottle, client_network
from loaders.accounts import Failures
from tests.conftest import TEST_SETTINGS, RunningApp, running_app

LOG_IN = """mutation($i: LogInInput!) { logIn(input: $i) {
  viewer { login } userErrors { code } } }"""
SIGN_UP = """mutation($i: SignUpInput!) { signUp(input: $i) { userErrors { code } } }"""
PASSWORD = "correct horse"
THROTTLE = SignInThrottle.of(TEST_SETTINGS)


async def log_in(http: httpx.AsyncClient, login: str, password: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": LOG_IN, "variables": {"i": {"login": login, "password": password}}},
    )
    body: dict[str, Any] = response.json()
    return body


def outcome(body: dict[str, Any]) -> str | int:
    """ "ok", "wrong" (INVALID_CREDENTIALS), or the seconds to wait (RATE_LIMITED)."""
    if body.get("errors"):
        error = body["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED", body
        assert error["message"] == (
            f"Too many failed sign-ins; try again in {error['extensions']['retryAfter']} seconds."
        )
        retry: int = error["extensions"]["retryAfter"]
        return retry
    payload = body["data"]["logIn"]
    return "ok" if payload["viewer"] else "wrong"


async def account(http: httpx.AsyncClient) -> str:
    login = f"thr-{uuid.uuid4().hex[:10]}"
    data = {"login": login, "email": f"{login}@example.test", "password": PASSWORD}
    response = await http.post("/graphql", json={"query": SIGN_UP, "variables": {"i": data}})
    assert response.json()["data"]["signUp"]["userErrors"] == []
    return login


@asynccontextmanager
async def from_address(app: RunningApp, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """Another client of the same app, from another address."""
    transport = httpx.ASGITransport(app=app.asgi, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def age_failures(database: Database, seconds: float) -> None:
    """Move every recorded failure `seconds` into the past (the clock, for the test)."""
    connection = await database.acquire()
    try:
        await connection.execute(
            "UPDATE login_failures SET failed_at = failed_at - $1::interval",
            timedelta(seconds=seconds),
        )
    finally:
        await database.release(connection)


async def fail_more(database: Database, login: str, address: str, times: int) -> None:
    """Record `times` more failures of the pair, now (as that many quick attempts would)."""
    keys = THROTTLE.keys(login, address)
    connection = await database.acquire()
    try:
        await connection.execute(
            "INSERT INTO login_failures (key) SELECT $1 FROM generate_series(1, $2)",
            keys.pair,
            times,
        )
    finally:
        await database.release(connection)


async def pair_failures(database: Database, login: str, address: str) -> int:
    connection = await database.acquire()
    try:
        key = THROTTLE.keys(login, address).pair
        return int(
            await connection.fetchval("SELECT count(*) FROM login_failures WHERE key = $1", key)
        )
    finally:
        await database.release(connection)


async def test_failures_slow_the_pair_down_with_a_growing_wait(database: Database) -> None:
    async with running_app(database) as app, from_address(app, "198.51.100.7") as elsewhere:
        login = await account(app.http)
        free = [outcome(await log_in(app.http, login, "wrong horse")) for _ in range(5)]
        await fail_more(database, login, app.address, 3)  # 8 failures: a wait of 2^3 s

        waiting = outcome(await log_in(app.http, login, PASSWORD))  # even the right one
        counted = await pair_failures(database, login, app.address)  # (a refusal is no failure)
        from_elsewhere = outcome(await log_in(elsewhere, login, PASSWORD))
        await age_failures(database, 8)
        signed_in = outcome(await log_in(app.http, login, PASSWORD))
        fresh = outcome(await log_in(app.http, login, "wrong horse"))

    assert free == ["wrong"] * 5
    assert isinstance(waiting, int) and 6 <= waiting <= 8
    assert counted == 8
    assert from_elsewhere == "ok"  # never locked out from another address
    assert signed_in == "ok"
    assert fresh == "wrong"  # signing in cleared the pair's failures


@pytest.mark.parametrize(
    ("failures", "seconds_ago", "wait"),
    [
        (4, 0, 0),
        (5, 0, 1),
        (5, 1, 0),
        (6, 0, 2),
        (8, 3, 5),
        (14, 0, 512),
        (15, 0, 900),  # 1,024 s: capped at LOGIN_MAX_DELAY
        (60, 100, 800),
    ],
)
def test_the_wait_doubles_with_each_failure_up_to_the_cap(
    failures: int, seconds_ago: int, wait: int
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    last = now - timedelta(seconds=seconds_ago)
    pair = Failures(failures, last - timedelta(minutes=5), last)
    assert THROTTLE.wait(pair, None, now) == wait


async def test_failures_against_unknown_accounts_never_lock_a_real_account(
    database: Database,
) -> None:
    async with running_app(database) as app, from_address(app, "198.51.100.8") as elsewhere:
        real = await account(app.http)
        unknown = [outcome(await log_in(app.http, "nobody-at-all", "guess")) for _ in range(6)]
        # ... nor do failures against a real account lock it from another address
        attacked = [outcome(await log_in(elsewhere, real, "guess")) for _ in range(6)]
        assert outcome(await log_in(app.http, real, PASSWORD)) == "ok"
    assert unknown[:5] == ["wrong"] * 5 and isinstance(unknown[5], int)
    assert attacked[:5] == ["wrong"] * 5 and isinstance(attacked[5], int)


async def test_an_address_that_fails_very_often_waits_whatever_the_account(
    database: Database,
) -> None:
    async with (
        running_app(database, login_address_max_failures=6) as app,
        from_address(app, "198.51.100.9") as elsewhere,
    ):
        real = await account(app.http)
        spraying = [outcome(await log_in(app.http, f"user-{n}", "guess")) for n in range(6)]
        stopped = outcome(await log_in(app.http, real, PASSWORD))
        other_address = outcome(await log_in(elsewhere, real, PASSWORD))
    assert spraying == ["wrong"] * 6
    window = TEST_SETTINGS.login_address_window
    assert isinstance(stopped, int) and window - 10 <= stopped <= window
    assert other_address == "ok"


async def test_throttling_looks_the_same_for_known_and_unknown_accounts(
    database: Database,
) -> None:
    async with running_app(database) as app:
        real = await account(app.http)
        for login in (real, "nobody-here-either"):
            await fail_more(database, login, app.address, 8)
        known = await log_in(app.http, real, "guess")
        unknown = await log_in(app.http, "nobody-here-either", "guess")
    assert known.keys() == unknown.keys()
    waits = [outcome(known), outcome(unknown)]
    assert all(isinstance(wait, int) and 6 <= wait <= 8 for wait in waits), waits


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("not an address", "not an address"),
        (None, "unknown"),
    ],
)
def test_an_ipv6_client_counts_by_its_64_network(address: str | None, counted_as: str) -> None:
    assert client_network(address) == counted_as
