"""Writes under concurrency, through HTTP and the real pool (these commit)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from core.db import Database
from execution.ids import encode_id
from tests.sessions import access_token

CREATE = """mutation($p: ID!, $t: String!, $l: [ID!]) { createIssue(input: {projectId: $p,
  title: $t, labelIds: $l}) { issue { number } userErrors { code } } }"""


async def _committed_project(database: Database) -> tuple[int, int, str]:
    connection = await database.acquire()
    try:
        slug = f"conc-{uuid.uuid4().hex[:10]}"
        org = await connection.fetchval(
            "INSERT INTO organizations (slug, name) VALUES ($1, $1) RETURNING id", slug
        )
        user = await connection.fetchval(
            "INSERT INTO users (login, email, password_hash) VALUES ($1, $1 || '@x.test', '!')"
            " RETURNING id",
            slug,
        )
        await connection.execute("INSERT INTO memberships VALUES ($1, $2, 'ADMIN')", org, user)
        project = await connection.fetchval(
            "INSERT INTO projects (organization_id, key, name, visibility)"
            " VALUES ($1, 'CONC', 'Concurrency', 'PRIVATE') RETURNING id",
            org,
        )
        return project, user, slug
    finally:
        await database.release(connection)


async def test_concurrent_creates_get_unique_gap_free_numbers(
    client: Any, database: Database
) -> None:
    project, user, _ = await _committed_project(database)
    token = await access_token(database, user)
    headers = {"authorization": f"Bearer {token}"}
    project_id = encode_id("Project", project)
    bad_label = [encode_id("Label", 10**12)]  # fails inside the transaction, after numbering

    async def create(n: int) -> Any:
        labels = bad_label if n % 5 == 0 else None
        response = await client.post(
            "/graphql",
            headers=headers,
            json={"query": CREATE, "variables": {"p": project_id, "t": f"Issue {n}", "l": labels}},
        )
        return response.json()

    results = await asyncio.gather(*(create(n) for n in range(40)))

    numbers = sorted(
        r["data"]["createIssue"]["issue"]["number"]
        for r in results
        if r.get("data") and r["data"]["createIssue"]
    )
    failed = [r for r in results if r.get("errors")]
    assert len(failed) == 8 and all(
        r["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" for r in failed
    )
    assert numbers == list(range(1, 33))
    connection = await database.acquire()
    try:
        stored = [
            r[0]
            for r in await connection.fetch(
                "SELECT number FROM issues WHERE project_id = $1 ORDER BY number", project
            )
        ]
    finally:
        await database.release(connection)
    assert stored == list(range(1, 33))


async def test_concurrent_retries_with_one_client_mutation_id_create_once(
    client: Any, database: Database
) -> None:
    project, user, _ = await _committed_project(database)
    headers = {"authorization": f"Bearer {await access_token(database, user)}"}
    document = """mutation($p: ID!) { createIssue(input: {projectId: $p, title: "Retry",
      clientMutationId: "same-key"}) { issue { id number } } }"""

    results = await asyncio.gather(
        *(
            client.post(
                "/graphql",
                headers=headers,
                json={"query": document, "variables": {"p": encode_id("Project", project)}},
            )
            for _ in range(6)
        )
    )

    issues = {r.json()["data"]["createIssue"]["issue"]["id"] for r in results}
    assert len(issues) == 1
