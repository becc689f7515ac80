"""What a newcomer meets first: one timestamp format, the production profile's safe
defaults, and `make run`'s start-up (a real server process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import ValidationError

from core import seed
from core.seed import DEMO_USERS
from core.settings import Settings
from tests.conftest import TEST_SCALE, TEST_SETTINGS, _with_database, app_client
from tests.servers import command_line_server

SECRET = {"JWT_SECRET": TEST_SETTINGS.jwt_secret or "", "BCRYPT_ROUNDS": "4"}
WAIT = 30  # seconds: a bound against hanging, not a measurement
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


async def test_every_timestamp_is_rfc3339_in_utc_with_z(client: Any) -> None:
    query = """{ rateLimit { resetAt } organization(slug: "acme") { createdAt
      projects(first: 1) { nodes { issues(first: 1) { nodes { createdAt updatedAt } } } } } }"""
    body = (await client.post("/graphql", json={"query": query})).json()
    reset = body["data"]["rateLimit"]["resetAt"]
    assert reset == body["extensions"]["cost"]["resetAt"]
    issue = body["data"]["organization"]["projects"]["nodes"][0]["issues"]["nodes"][0]
    for moment in (reset, body["data"]["organization"]["createdAt"], *issue.values()):
        assert RFC3339_UTC.match(moment), moment


@pytest.mark.parametrize("executor", ["compiled", "standard"])
async def test_both_executors_write_the_same_timestamps(database: Any, executor: str) -> None:
    query = '{ organization(slug: "acme") { createdAt } }'
    async with app_client(database, executor=executor) as http:
        body = (await http.post("/graphql", json={"query": query})).json()
    assert RFC3339_UTC.match(body["data"]["organization"]["createdAt"])


# --- make run: the closing lines, a SEED_SCALE that did not apply -------------------------


def wait_for(path: Path, text: str) -> str:
    """The file's content once it holds `text` (the server writes it when it answers)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        content = path.read_text(encoding="utf-8") if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{path.name} never said {text!r}: {content!r}")


def test_make_run_says_where_the_api_is_and_how_to_sign_in(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    env = SECRET | {"LOG_JSON": "true", "SEED_SCALE": str(TEST_SCALE)}
    with command_line_server(database_url, log, **env) as (url, _process):
        said = wait_for(log.with_suffix(".stdout"), "Ctrl-C")
        for login, _name, _email, password, _bio, _admin in DEMO_USERS:  # they work
            query = "mutation($i: LogInInput!) { logIn(input: $i) { viewer { login } } }"
            variables = {"i": {"login": login, "password": password}}
            answer = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables})
            assert answer.json()["data"]["logIn"]["viewer"] == {"login": login}
    assert f"GraphQL   {url}/graphql" in said
    assert f"GraphiQL  open {url}/graphql in a browser" in said
    assert "alice / alice-in-acme, bob / bob-builds-web" in said
    assert "SEED_SCALE" not in said  # the test database holds the scale asked for
    assert "Stop      Ctrl-C" in said
    assert said.count("\n") < 10, "a few lines, not a page"


def test_a_seed_scale_that_cannot_apply_says_how_to_start_over(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    env = SECRET | {"LOG_JSON": "true", "SEED_SCALE": "0.5"}
    with command_line_server(database_url, log, **env):
        said = wait_for(log.with_suffix(".stdout"), "Ctrl-C")
    assert f"SEED_SCALE is 0.5, but the database holds demo data of scale {TEST_SCALE:g}" in said
    assert "`make reset` loads 0.5" in said
    (warning,) = [
        line
        for line in map(json.loads, log.read_text().splitlines())
        if "SEED_SCALE" in line["event"]
    ]
    assert warning["level"] == "warning" and "make reset" in warning["event"]


# --- the production profile ---------------------------------------------------------------

PRODUCTION = {"app_env": "production", "database_url": "postgresql://db/app"}


def test_production_turns_off_graphiql_introspection_and_suggestions() -> None:
    production = Settings(_env_file=None, jwt_secret="s" * 32, **PRODUCTION)  # type: ignore[call-arg]
    assert (production.graphiql, production.introspection, production.field_suggestions) == (
        False,
        False,
        None,  # as introspection
    )
    development = Settings(_env_file=None, app_env="development")  # type: ignore[call-arg]
    assert (development.graphiql, development.introspection, development.field_suggestions) == (
        True,
        True,
        None,
    )
    switched = Settings(  # type: ignore[call-arg]
        _env_file=None, jwt_secret="s" * 32, graphiql=True, field_suggestions=True, **PRODUCTION
    )
    assert (switched.graphiql, switched.introspection, switched.field_suggestions) == (
        True,
        False,
        True,
    )


@pytest.mark.parametrize(
    ("overrides", "needs"),
    [
        ({"database_url": None, "jwt_secret": "s" * 32}, "DATABASE_URL"),
        ({"jwt_secret": None}, "JWT_SECRET of at least 32 characters"),
        ({"jwt_secret": "short"}, "JWT_SECRET of at least 32 characters"),
    ],
)
def test_production_refuses_to_start_without_its_database_and_secret(
    overrides: dict[str, Any], needs: str
) -> None:
    with pytest.raises(ValidationError, match=needs):
        Settings(_env_file=None, **(PRODUCTION | overrides))  # type: ignore[call-arg]


def test_the_command_line_says_why_production_cannot_start(tmp_path: Path) -> None:
    environment = os.environ | {"APP_ENV": "production", "LOG_JSON": "true"}
    environment.pop("JWT_SECRET", None)
    done = subprocess.run(
        [sys.executable, "-m", "server", "run"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=tmp_path,  # no .env
    )
    assert done.returncode == 2
    (line,) = [json.loads(line) for line in done.stderr.splitlines()]
    assert line["level"] == "error"
    assert line["event"].startswith("cannot start: APP_ENV=production needs")
    assert "JWT_SECRET of at least 32 characters" in line["event"]


async def test_a_production_server_hides_the_schema(database: Any) -> None:
    profile = Settings(_env_file=None, jwt_secret="s" * 32, **PRODUCTION)  # type: ignore[call-arg]
    resolved = profile.model_dump(
        include={"app_env", "graphiql", "introspection", "field_suggestions"}
    )
    async with app_client(database, **resolved) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        introspection = await http.post(
            "/graphql", json={"query": "{ __schema { types { name } } }"}
        )
        typo = await http.post(
            "/graphql", json={"query": '{ organisation(slug: "acme") { name } }'}
        )
    assert "text/html" not in page.headers["content-type"]
    assert "GraphiQL" not in page.text
    refused = introspection.json()["errors"]
    assert {e["extensions"]["code"] for e in refused} == {"GRAPHQL_VALIDATION_FAILED"}
    assert "introspection" in refused[0]["message"].lower()
    (unknown,) = typo.json()["errors"]
    assert "Did you mean" not in unknown["message"]
    assert "organisation" in unknown["message"]


# --- make reset ---------------------------------------------------------------------------


def reset(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = os.environ | {"DATABASE_URL": url, "BCRYPT_ROUNDS": "4"} | env
    return subprocess.run(
        [sys.executable, "-m", "server", "reset"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def users_and_scale(url: str) -> tuple[int, float | None]:
    connection = await asyncpg.connect(url)
    try:
        users = await connection.fetchval("SELECT count(*) FROM users")
        return int(users), await seed.loaded_scale(connection)
    finally:
        await connection.close()


async def test_reset_loads_the_demo_data_again_at_seed_scale(database_url: str) -> None:
    name = f"issuegraph_reset_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(database_url, name)
    try:
        assert reset(url, SEED_SCALE="0.02").returncode == 0
        assert await users_and_scale(url) == (40, 0.02)
        assert reset(url, SEED_SCALE="0.05").returncode == 0
        assert await users_and_scale(url) == (100, 0.05)

        production = {"APP_ENV": "production", "JWT_SECRET": "s" * 32, "SEED_SCALE": "0.02"}
        refused = reset(url, **production)
        assert refused.returncode == 2
        assert "refused under APP_ENV=production" in refused.stderr
        assert await users_and_scale(url) == (100, 0.05)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
