"""Entry points: node(id:), nodes(ids:), user, organization, and what anonymous viewers see."""

from __future__ import annotations

from typing import Any

import asyncpg

from execution.ids import encode_id
from tests.conftest import Run

NODE = "query($id: ID!) { node(id: $id) { __typename id } }"


async def test_every_type_round_trips_through_node(run: Run, conn: asyncpg.Connection) -> None:
    ids = {
        "User": await conn.fetchval("SELECT id FROM users WHERE login = 'alice'"),
        "Organization": await conn.fetchval("SELECT id FROM organizations WHERE slug = 'acme'"),
        "Project": await conn.fetchval("SELECT id FROM projects WHERE key = 'WEB'"),
        "Issue": await conn.fetchval(
            "SELECT i.id FROM issues i JOIN projects p ON"
            " p.id = i.project_id WHERE p.key = 'WEB' LIMIT 1"
        ),
        "Label": await conn.fetchval(
            "SELECT l.id FROM labels l JOIN projects p ON"
            " p.id = l.project_id WHERE p.key = 'WEB' LIMIT 1"
        ),
        "Comment": await conn.fetchval(
            "SELECT c.id FROM comments c JOIN issues i ON"
            " i.id = c.issue_id JOIN projects p ON"
            " p.id = i.project_id WHERE p.key = 'WEB' LIMIT 1"
        ),
    }
    for type_name, pk in ids.items():
        global_id = encode_id(type_name, pk)
        outcome = await run(NODE, {"id": global_id})
        assert outcome.data == {"node": {"__typename": type_name, "id": global_id}}


async def test_nodes_keeps_order_and_answers_null_for_missing(run: Run) -> None:
    ids = [encode_id("User", 2), encode_id("Issue", 10**12), encode_id("User", 1)]
    outcome = await run("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})
    assert outcome.data == {"nodes": [{"id": ids[0]}, None, {"id": ids[2]}]}
    assert len(outcome.statements) == 2  # users in one batch, issues in another


async def test_malformed_ids_are_bad_user_input(run: Run) -> None:
    for bad in [
        "",
        "!!!",
        encode_id("Secret", 1),
        "VXNlcjphYmM",
        encode_id("User", 0),
        "VXNlcjotMQ",
        "VXNlcjox\x00",
    ]:
        outcome = await run(NODE, {"id": bad})
        assert outcome.codes == ["BAD_USER_INPUT"], bad
        assert outcome.data == {"node": None}


async def test_too_many_ids_is_bad_user_input(run: Run) -> None:
    ids = [encode_id("User", n) for n in range(1, 102)]
    outcome = await run("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})
    assert outcome.codes == ["BAD_USER_INPUT"]
    assert "At most 100" in outcome.errors[0]["message"]
    assert outcome.statements == []


async def test_private_project_does_not_exist_for_anonymous(
    run: Run, conn: asyncpg.Connection, make: Any
) -> None:
    user = await make.user()
    org = await make.organization(slug="hidden-things")
    private = await make.project(org, key="SECRET", visibility="PRIVATE")
    await make.project(org, key="OPEN", visibility="PUBLIC")
    issue = await make.issue(private, user)
    comment = await make.comment(issue, user)
    label = await make.label(private)

    for type_name, pk in [
        ("Project", private),
        ("Issue", issue),
        ("Comment", comment),
        ("Label", label),
    ]:
        outcome = await run(NODE, {"id": encode_id(type_name, pk)})
        assert outcome.data == {"node": None} and outcome.errors == [], type_name
    outcome = await run(
        '{ organization(slug: "hidden-things") { project(key: "SECRET") { key }'
        " projects { totalCount nodes { key } } } }"
    )
    assert outcome.data == {
        "organization": {"project": None, "projects": {"totalCount": 1, "nodes": [{"key": "OPEN"}]}}
    }
    login = await conn.fetchval("SELECT login FROM users WHERE id = $1", user)
    outcome = await run(
        "query($l: String!) { user(login: $l) { authoredIssues { totalCount } } }", {"l": login}
    )
    assert outcome.data == {"user": {"authoredIssues": {"totalCount": 0}}}


async def test_email_is_forbidden_on_its_path_only(run: Run) -> None:
    outcome = await run('{ user(login: "ALICE") { login name email } viewer { login } }')
    assert outcome.data == {
        "user": {"login": "alice", "name": "Alice Liddell", "email": None},
        "viewer": None,
    }
    assert outcome.codes == ["FORBIDDEN"]
    assert outcome.errors[0]["path"] == ["user", "email"]


async def test_members_carry_roles(run: Run) -> None:
    outcome = await run(
        '{ organization(slug: "acme") { members(first: 2) { totalCount'
        " edges { role node { login } } } } }"
    )
    members = outcome.data["organization"]["members"]
    assert members["edges"] == [
        {"role": "OWNER", "node": {"login": "alice"}},
        {"role": "MEMBER", "node": {"login": "bob"}},
    ]
    assert members["totalCount"] > 2


async def test_user_organizations_and_missing_entry_points(run: Run) -> None:
    outcome = await run(
        '{ user(login: "alice") { organizations { nodes { slug } } }'
        ' nobody: user(login: "nobody-here") { login }'
        ' organization(slug: "no-such-org") { name } }'
    )
    assert outcome.data == {
        "user": {"organizations": {"nodes": [{"slug": "acme"}]}},
        "nobody": None,
        "organization": None,
    }
