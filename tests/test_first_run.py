"""What a newcomer meets first: one timestamp format, the production profile's safe
defaults, and `make run`'s start-up (a real server process)."""

from __future__ import annotations

import re
from typing import Any

import pytest

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
    from tests.conftest import app_client

    query = '{ organization(slug: "acme") { createdAt } }'
    async with app_client(database, executor=executor) as http:
        body = (await http.post("/graphql", json={"query": query})).json()
    assert RFC3339_UTC.match(body["data"]["organization"]["createdAt"])
