"""deleteIssue and transferIssue: who may, what moves with the issue, what the log says."""

from __future__ import annotations

from typing import Any

import asyncpg

from execution.ids import encode_id
from tests.conftest import Run

TRANSFER = """mutation($issue: ID!, $project: ID!) {
  transferIssue(input: {issueId: $issue, projectId: $project}) {
    issue { id number identifier url bodyHTML project { key }
            labels { nodes { name } } comments { totalCount nodes { bodyHTML } } }
    userErrors { field code message } } }"""
DELETE = """mutation($issue: ID!) {
  deleteIssue(input: {issueId: $issue}) {
    deletedIssueId project { key issues { totalCount } } userErrors { code message } } }"""
NODE = """query($id: ID!) { node(id: $id) { ... on Issue { identifier
  viewerCanDelete viewerCanTransfer } } }"""


async def _org(make: Any) -> dict[str, Any]:
    ids = {name: await make.user(login=f"mv-{name}") for name in ("admin", "member", "root")}
    await make.conn.execute("UPDATE users SET is_site_admin = true WHERE id = $1", ids["root"])
    org = await make.organization(slug="mv-org")
    await make.member(org, ids["admin"], "ADMIN")
    await make.member(org, ids["member"], "MEMBER")
    web = await make.project(org, key="MVW")
    ops = await make.project(org, key="MVO", visibility="PRIVATE")
    await make.conn.execute("UPDATE projects SET issue_count = 7 WHERE id = $1", ops)
    issue = await make.issue(web, ids["member"], body="see #1")
    for name in ("bug", "web-only"):
        label = await make.label(web, name=name)
        await make.conn.execute("INSERT INTO issue_labels VALUES ($1, $2)", issue, label)
    await make.label(ops, name="bug")
    await make.comment(issue, ids["member"], body="also #1")
    await make.conn.execute(
        "INSERT INTO events (kind, project_id, issue_id) VALUES ('OPENED', $1, $2)", web, issue
    )
    other = await make.organization(slug="mv-other")
    await make.member(other, ids["admin"], "ADMIN")
    foreign = await make.project(other, key="MVX")
    return {
        "ids": ids,
        "web": web,
        "ops": ops,
        "issue_pk": issue,
        "issue": encode_id("Issue", issue),
        "ops_id": encode_id("Project", ops),
        "foreign_id": encode_id("Project", foreign),
        "web_id": encode_id("Project", web),
    }


async def test_an_admin_moves_an_issue_which_keeps_its_id_and_takes_the_next_number(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    org = await _org(make)

    outcome = await run(TRANSFER, {"issue": org["issue"], "project": org["ops_id"]}, "mv-admin")

    assert outcome.errors == []
    moved = outcome.data["transferIssue"]["issue"]
    assert outcome.data["transferIssue"]["userErrors"] == []
    assert (moved["id"], moved["number"], moved["identifier"]) == (org["issue"], 8, "MVO-8")
    assert moved["url"].endswith("/mv-org/MVO/issues/8")
    assert moved["project"] == {"key": "MVO"}
    assert moved["labels"]["nodes"] == [{"name": "bug"}]  # by name; web-only came off
    assert "/mv-org/MVO/issues/1" in moved["bodyHTML"]
    assert moved["comments"]["totalCount"] == 1
    assert "/mv-org/MVO/issues/1" in moved["comments"]["nodes"][0]["bodyHTML"]
    # the old global id still names it, wherever it is now
    found = await run(NODE, {"id": org["issue"]}, "mv-admin")
    assert found.data["node"]["identifier"] == "MVO-8"
    assert found.data["node"]["viewerCanTransfer"] is True
    event = await conn.fetchrow(
        "SELECT kind, project_id, actor_id, (payload->>'from_project_id')::bigint FROM events"
        " WHERE issue_id = $1 AND kind <> 'MENTIONED' ORDER BY id DESC",
        org["issue_pk"],
    )
    # the event belongs to the project it joined and names the one it left
    assert tuple(event) == ("issue_transferred", org["ops"], org["ids"]["admin"], org["web"])
    assert await conn.fetchval("SELECT issue_count FROM projects WHERE id = $1", org["ops"]) == 8


async def test_a_move_out_of_the_organization_or_in_place_is_refused(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    org = await _org(make)
    for target in (org["foreign_id"], org["web_id"]):
        outcome = await run(TRANSFER, {"issue": org["issue"], "project": target}, "mv-admin")
        [error] = outcome.data["transferIssue"]["userErrors"]
        assert (error["field"], error["code"]) == (["input", "projectId"], "INVALID")
    row = await conn.fetchrow(
        "SELECT project_id, number FROM issues WHERE id = $1", org["issue_pk"]
    )
    assert tuple(row) == (org["web"], 1)


async def test_a_member_may_neither_move_nor_delete(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    org = await _org(make)
    moved = await run(TRANSFER, {"issue": org["issue"], "project": org["ops_id"]}, "mv-member")
    deleted = await run(DELETE, {"issue": org["issue"]}, "mv-member")
    assert moved.codes == ["FORBIDDEN"] and deleted.codes == ["FORBIDDEN"]
    flags = await run(NODE, {"id": org["issue"]}, "mv-member")
    assert flags.data["node"]["viewerCanDelete"] is False
    assert flags.data["node"]["viewerCanTransfer"] is False
    assert (
        await conn.fetchval("SELECT count(*) FROM events WHERE issue_id = $1", org["issue_pk"]) == 1
    )
    row = await conn.fetchrow(
        "SELECT project_id, number FROM issues WHERE id = $1", org["issue_pk"]
    )
    assert tuple(row) == (org["web"], 1)


async def test_an_admin_or_a_site_admin_deletes_an_issue_and_its_project_hears_of_it(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    org = await _org(make)
    second = encode_id("Issue", await make.issue(org["web"], org["ids"]["member"]))
    for viewer, issue in (("mv-admin", org["issue"]), ("mv-root", second)):
        outcome = await run(DELETE, {"issue": issue}, viewer)
        assert outcome.errors == []
        assert outcome.data["deleteIssue"]["deletedIssueId"] == issue
        gone = await run(NODE, {"id": issue}, viewer)
        assert gone.data["node"] is None
    payload = outcome.data["deleteIssue"]
    assert payload["project"] == {"key": "MVW", "issues": {"totalCount": 0}}
    assert (
        await conn.fetchval("SELECT count(*) FROM comments WHERE issue_id = $1", org["issue_pk"])
        == 0
    )
    events = await conn.fetch(
        "SELECT kind, project_id, actor_id FROM events WHERE issue_id = $1", org["issue_pk"]
    )
    # the earlier events went with the issue; one says it is gone, and outlives it
    assert [tuple(e) for e in events] == [("issue_deleted", org["web"], org["ids"]["admin"])]
