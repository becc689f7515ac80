"""Two server processes on one database and one Redis share each viewer's rate budget."""

from __future__ import annotations

import uuid

import httpx
import pytest
import redis

from tests.servers import server_processes

REDIS_URL = "redis://127.0.0.1:6379/14"


def _redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.skipif(not _redis_available(), reason="no Redis at 127.0.0.1:6379")
async def test_two_processes_share_one_budget(database_url: str) -> None:
    query = "{ organizations(first: 10) { nodes { slug } } }"  # costs 1
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    with server_processes(
        2, database_url, REDIS_URL=REDIS_URL, RATE_LIMIT_ANONYMOUS="6", JWT_SECRET=prefix + "x" * 32
    ) as (a, b):
        statuses = []
        async with httpx.AsyncClient() as http:
            for n in range(10):  # alternate between the processes
                response = await http.post(
                    f"{(a, b)[n % 2]}/graphql",
                    json={"query": query},
                    headers={"x-forwarded-for": prefix},
                )
                statuses.append(response.status_code)
                if response.status_code == 200:
                    remaining = response.json()["extensions"]["cost"]["remaining"]
    assert statuses[:6] == [200] * 6 and statuses[6:] == [429] * 4
    assert remaining == 0
