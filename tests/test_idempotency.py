"""Idempotency keys (`clientMutationId` on creates), through the real HTTP app: the same key
and the same input replay the first result; the same key with another input is the
IDEMPOTENCY_KEY_REUSED user error and writes nothing; keys last a day."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from core.db import Database
from execution.ids import decode_id
from tests.sessions import access_token

TABLES = (
    "organizations",
    "memberships",
    "projects",
    "labels",
    "issues",
    "comments",
    "events",
    "mutation_receipts",
)
REUSED = {
    "field": ["input", "clientMutationId"],
    "code": "IDEMPOTENCY_KEY_REUSED",
    "message": "This clientMutationId was used with another input within the last 24 hours: "
    "send the same input to get the first result, or a new clientMutationId for a new create.",
}
Input = Callable[[dict[str, str], str], dict[str, Any]]


@dataclass(frozen=True)
class Create:
    """A creating mutation: its name, the field of its payload that holds the new object,
    and an input (for the world, with a variant tag: another tag, another input)."""

    name: str
    input_type: str
    field: str
    input: Input

    def document(self) -> str:
        return (
            f"mutation($i: {self.input_type}!) {{ {self.name}(input: $i) {{ {self.field} {{ id }}"
            " userErrors { field code message } clientMutationId } }"
        )


CREATES = [
    Create(
        "createOrganization",
        "CreateOrganizationInput",
        "organization",
        lambda w, tag: {"slug": f"idem-{w['tag']}-{tag}", "name": f"Org {tag}"},
    ),
    Create(
        "createProject",
        "CreateProjectInput",
        "project",
        lambda w, tag: {"organizationId": w["org"], "key": f"ID{tag.upper()}", "name": tag},
    ),
    Create(
        "createLabel",
        "CreateLabelInput",
        "label",
        lambda w, tag: {"projectId": w["project"], "name": f"label {tag}", "color": "#00aa00"},
    ),
    Create(
        "createIssue",
        "CreateIssueInput",
        "issue",
        lambda w, tag: {"projectId": w["project"], "title": f"Issue {tag}"},
    ),
    Create(
        "addComment",
        "AddCommentInput",
        "comment",
        lambda w, tag: {"issueId": w["issue"], "body": f"Comment {tag}"},
    ),
]


async def counts(database: Database) -> dict[str, int]:
    connection = await database.acquire()
    try:
        return {t: await connection.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
    finally:
        await database.release(connection)


async def send(
    http: httpx.AsyncClient, token: str, create: Create, data: dict[str, Any], key: str
) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": create.document(), "variables": {"i": {**data, "clientMutationId": key}}},
        headers={"authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"][create.name]
    return payload


@pytest.fixture
async def world(
    client: httpx.AsyncClient, database: Database, committed: dict[str, Any]
) -> dict[str, str]:
    """The committed organization's ADMIN, signed in, with an issue to comment on."""
    token = await access_token(database, committed["user"])
    found = await client.post(
        "/graphql",
        json={
            "query": "query($p: ID!) { node(id: $p) { ... on Project { organization { id } } } }",
            "variables": {"p": committed["project"]},
        },
    )
    issue = await send(
        client, token, CREATES[3], {"projectId": committed["project"], "title": "Talk"}, "setup"
    )
    return {
        "token": token,
        "tag": uuid.uuid4().hex[:6],
        "org": found.json()["data"]["node"]["organization"]["id"],
        "project": committed["project"],
        "issue": issue["issue"]["id"],
        "user": str(committed["user"]),
    }


@pytest.mark.parametrize("create", CREATES, ids=[c.name for c in CREATES])
async def test_a_key_replays_its_first_result_and_refuses_another_input(
    client: httpx.AsyncClient, database: Database, world: dict[str, str], create: Create
) -> None:
    first_input, other_input = create.input(world, "a"), create.input(world, "b")

    first = await send(client, world["token"], create, first_input, "key-1")
    after_first = await counts(database)
    replayed = await send(client, world["token"], create, first_input, "key-1")
    after_replay = await counts(database)
    refused = await send(client, world["token"], create, other_input, "key-1")
    after_refusal = await counts(database)

    assert first["userErrors"] == [] and first[create.field] is not None
    assert replayed == first  # the same object, the same payload
    assert refused == {create.field: None, "userErrors": [REUSED], "clientMutationId": "key-1"}
    assert after_replay == after_refusal == after_first  # nothing written after the first
    # a new key is a new create
    again = await send(client, world["token"], create, other_input, "key-2")
    assert again["userErrors"] == [] and again[create.field] != first[create.field]


async def test_a_key_used_for_another_project_is_refused_not_answered_with_the_first(
    client: httpx.AsyncClient, database: Database, world: dict[str, str]
) -> None:
    """The reported case: a createIssue into one project, then with the same key into
    another, used to answer the first issue and create nothing, silently."""
    create = CREATES[3]
    other = await send(
        client,
        world["token"],
        CREATES[1],
        {"organizationId": world["org"], "key": "OTHER", "name": "Other", "visibility": "PRIVATE"},
        "project",
    )
    await send(client, world["token"], create, create.input(world, "web"), "k-123")
    before = await counts(database)
    elsewhere = {"projectId": other["project"]["id"], "title": "Issue web"}
    refused = await send(client, world["token"], create, elsewhere, "k-123")
    assert refused["userErrors"] == [REUSED] and refused["issue"] is None
    assert await counts(database) == before


async def test_keys_belong_to_their_viewer_and_mutation(
    client: httpx.AsyncClient, database: Database, world: dict[str, str]
) -> None:
    create = CREATES[3]
    other_admin = await access_token(database, int(world["user"]))  # another session: same viewer
    connection = await database.acquire()
    try:
        stranger = await connection.fetchval(
            "INSERT INTO users (login, email, password_hash) VALUES ($1, $1 || '@x.test', '!')"
            " RETURNING id",
            f"idem-{world['tag']}",
        )
        org_pk = decode_id(world["org"], "Organization")[1]
        await connection.execute(
            "INSERT INTO memberships VALUES ($1, $2, 'MEMBER')", org_pk, stranger
        )
    finally:
        await database.release(connection)
    theirs = await access_token(database, stranger)
    data = create.input(world, "shared")

    mine = await send(client, world["token"], create, data, "shared-key")
    same_viewer = await send(client, other_admin, create, data, "shared-key")
    other_viewer = await send(client, theirs, create, data, "shared-key")
    label = await send(
        client, world["token"], CREATES[2], CREATES[2].input(world, "k"), "shared-key"
    )

    assert same_viewer == mine  # the key is the viewer's, whichever session sends it
    assert other_viewer["userErrors"] == [] and other_viewer["issue"] != mine["issue"]
    assert label["userErrors"] == []  # another mutation: another key


async def test_keys_expire_after_a_day_and_expired_ones_are_cleaned_up(
    client: httpx.AsyncClient, database: Database, world: dict[str, str]
) -> None:
    create = CREATES[3]
    first = await send(client, world["token"], create, create.input(world, "day-1"), "daily")
    connection = await database.acquire()
    try:
        await connection.execute(
            "UPDATE mutation_receipts SET created_at = now() - interval '25 hours'"
            " WHERE user_id = $1 AND client_mutation_id = 'daily'",
            int(world["user"]),
        )
        # a day on, the key is free: another input is a new create, not a refusal
        later = await send(client, world["token"], create, create.input(world, "day-2"), "daily")
        assert later["userErrors"] == [] and later["issue"] != first["issue"]
        await connection.execute(
            "UPDATE mutation_receipts SET created_at = now() - interval '25 hours'"
            " WHERE user_id = $1 AND client_mutation_id = 'daily'",
            int(world["user"]),
        )
        await send(client, world["token"], create, create.input(world, "other"), "another key")
        left = await connection.fetchval(
            "SELECT count(*) FROM mutation_receipts WHERE created_at <= now() - interval '1 day'"
        )
    finally:
        await database.release(connection)
    assert left == 0  # the create deleted the expired receipts as it went
