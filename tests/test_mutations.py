"""Mutations: access, validation, transactions, conflicts, retries, fresh payloads."""

from __future__ import annotations

from typing import Any

import asyncpg

from execution.ids import encode_id
from tests.conftest import Run


async def _team(make: Any) -> dict[str, Any]:
    """acme-like: an organization with owner, admin, member, an outsider; a public project
    with an issue by the member assigned to the admin, and two labels."""
    ids = {
        name: await make.user(login=f"mut-{name}")
        for name in ("owner", "admin", "member", "other", "outsider")
    }
    org = await make.organization(slug="mut-org")
    for name, role in [
        ("owner", "OWNER"),
        ("admin", "ADMIN"),
        ("member", "MEMBER"),
        ("other", "MEMBER"),
    ]:
        await make.member(org, ids[name], role)
    project = await make.project(org, key="MUT")
    await make.conn.execute("UPDATE projects SET issue_count = 1 WHERE id = $1", project)
    issue = await make.issue(project, ids["member"], number=1, assignee_id=ids["admin"])
    bug = await make.label(project, name="bug")
    other_project = await make.project(org, key="ELSE")
    foreign = await make.label(other_project, name="foreign")
    return {
        "ids": ids,
        "org": encode_id("Organization", org),
        "org_pk": org,
        "project": encode_id("Project", project),
        "project_pk": project,
        "issue": encode_id("Issue", issue),
        "issue_pk": issue,
        "bug": encode_id("Label", bug),
        "foreign": encode_id("Label", foreign),
    }


CREATE_ISSUE = """mutation($input: CreateIssueInput!) { createIssue(input: $input) {
  issue { number title priority state author { login } labels { nodes { name } } }
  userErrors { field code message } clientMutationId } }"""


async def _count(conn: asyncpg.Connection, sql: str, *args: Any) -> int:
    return int(await conn.fetchval(sql, *args))


async def test_member_opens_an_issue_with_the_next_number_and_an_event(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make)
    outcome = await run(
        CREATE_ISSUE,
        {
            "input": {
                "projectId": team["project"],
                "title": "  Crash on save ",
                "priority": 4,
                "clientMutationId": "c-1",
            }
        },
        viewer="mut-member",
    )
    assert outcome.errors == []
    assert outcome.data["createIssue"] == {
        "issue": {
            "number": 2,
            "title": "Crash on save",
            "priority": 4,
            "state": "OPEN",
            "author": {"login": "mut-member"},
            "labels": {"nodes": []},
        },
        "userErrors": [],
        "clientMutationId": "c-1",
    }
    assert (
        await _count(
            conn,
            "SELECT count(*) FROM events WHERE project_id = $1 AND kind = 'OPENED'",
            team["project_pk"],
        )
        == 1
    )


async def test_refusals_change_nothing(run: Run, make: Any, conn: asyncpg.Connection) -> None:
    team = await _team(make)
    before = await _count(conn, "SELECT count(*) FROM issues")
    forbidden = await run(
        CREATE_ISSUE, {"input": {"projectId": team["project"], "title": "x"}}, viewer="mut-outsider"
    )
    anonymous = await run(CREATE_ISSUE, {"input": {"projectId": team["project"], "title": "x"}})
    invalid = await run(
        CREATE_ISSUE,
        {
            "input": {
                "projectId": team["project"],
                "title": "  ",
                "body": "b" * 65_537,
                "priority": 7,
            }
        },
        viewer="mut-member",
    )
    triage = await run(
        CREATE_ISSUE,
        {"input": {"projectId": team["project"], "title": "x", "labelIds": [team["bug"]]}},
        viewer="mut-member",
    )
    foreign = await run(
        CREATE_ISSUE,
        {"input": {"projectId": team["project"], "title": "x", "labelIds": [team["foreign"]]}},
        viewer="mut-admin",
    )
    assert forbidden.codes == ["FORBIDDEN"] and forbidden.data == {"createIssue": None}
    assert anonymous.codes == ["UNAUTHENTICATED"]
    assert triage.codes == ["FORBIDDEN"]
    assert foreign.codes == ["BAD_USER_INPUT"]
    assert [(e["field"], e["code"]) for e in invalid.data["createIssue"]["userErrors"]] == [
        (["input", "title"], "TOO_SHORT"),
        (["input", "body"], "TOO_LONG"),
        (["input", "priority"], "INVALID"),
    ]
    assert await _count(conn, "SELECT count(*) FROM issues") == before
    assert (
        await _count(conn, "SELECT issue_count FROM projects WHERE id = $1", team["project_pk"])
        == 1
    )


async def test_a_retried_create_returns_the_first_result(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make)
    variables = {
        "input": {"projectId": team["project"], "title": "Once", "clientMutationId": "retry-1"}
    }
    first = await run(CREATE_ISSUE, variables, viewer="mut-member")
    again = await run(CREATE_ISSUE, variables, viewer="mut-member")
    other_viewer = await run(CREATE_ISSUE, variables, viewer="mut-admin")
    assert first.data == again.data
    assert other_viewer.data["createIssue"]["issue"]["number"] == 3
    assert (
        await _count(
            conn,
            "SELECT count(*) FROM issues WHERE project_id = $1 AND title = 'Once'",
            team["project_pk"],
        )
        == 2
    )


UPDATE_ISSUE = """mutation($input: UpdateIssueInput!) { updateIssue(input: $input) {
  issue { title priority updatedAt assignee { login } } userErrors { field code } } }"""


async def test_update_rights_follow_the_rules(run: Run, make: Any) -> None:
    team = await _team(make)
    own = await run(
        UPDATE_ISSUE, {"input": {"issueId": team["issue"], "title": "Renamed"}}, viewer="mut-member"
    )
    not_author = await run(
        UPDATE_ISSUE, {"input": {"issueId": team["issue"], "title": "No"}}, viewer="mut-other"
    )
    author_triage = await run(
        UPDATE_ISSUE, {"input": {"issueId": team["issue"], "priority": 0}}, viewer="mut-member"
    )
    admin = await run(
        UPDATE_ISSUE,
        {"input": {"issueId": team["issue"], "priority": 0, "assigneeId": None}},
        viewer="mut-admin",
    )
    assert own.data["updateIssue"]["issue"]["title"] == "Renamed"
    assert not_author.codes == ["FORBIDDEN"] and author_triage.codes == ["FORBIDDEN"]
    assert admin.data["updateIssue"]["issue"] | {"updatedAt": None} == {
        "title": "Renamed",
        "priority": 0,
        "assignee": None,
        "updatedAt": None,
    }


async def test_a_stale_expected_updated_at_is_a_conflict(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make)
    read = await run(
        "query($id: ID!) { node(id: $id) { ... on Issue { updatedAt } } }", {"id": team["issue"]}
    )
    seen = read.data["node"]["updatedAt"]
    first = await run(
        UPDATE_ISSUE,
        {"input": {"issueId": team["issue"], "title": "Mine", "expectedUpdatedAt": seen}},
        viewer="mut-member",
    )
    second = await run(
        UPDATE_ISSUE,
        {"input": {"issueId": team["issue"], "title": "Theirs", "expectedUpdatedAt": seen}},
        viewer="mut-admin",
    )
    assert first.data["updateIssue"]["userErrors"] == []
    assert second.data["updateIssue"] == {
        "issue": None,
        "userErrors": [{"field": ["input", "expectedUpdatedAt"], "code": "CONFLICT"}],
    }
    assert await conn.fetchval("SELECT title FROM issues WHERE id = $1", team["issue_pk"]) == "Mine"


async def test_close_and_reopen_by_assignee_record_events(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make)
    close = "mutation($id: ID!) { closeIssue(input: {issueId: $id}) { issue { state } } }"
    reopen = "mutation($id: ID!) { reopenIssue(input: {issueId: $id}) { issue { state } } }"
    closed = await run(close, {"id": team["issue"]}, viewer="mut-admin")
    closed_again = await run(close, {"id": team["issue"]}, viewer="mut-admin")
    refused = await run(reopen, {"id": team["issue"]}, viewer="mut-other")
    reopened = await run(reopen, {"id": team["issue"]}, viewer="mut-member")
    assert closed.data == closed_again.data == {"closeIssue": {"issue": {"state": "CLOSED"}}}
    assert refused.codes == ["FORBIDDEN"]
    assert reopened.data == {"reopenIssue": {"issue": {"state": "OPEN"}}}
    kinds = [
        r[0]
        for r in await conn.fetch(
            "SELECT kind FROM events WHERE issue_id = $1 ORDER BY id", team["issue_pk"]
        )
    ]
    assert kinds == ["CLOSED", "REOPENED"]


async def test_payloads_read_after_each_write_see_it(run: Run, make: Any) -> None:
    team = await _team(make)
    document = """mutation($issue: ID!, $label: ID!) {
      before: updateIssue(input: {issueId: $issue}) { issue { labels { totalCount } } }
      added: addLabelsToIssue(input: {issueId: $issue, labelIds: [$label]}) {
        issue { labels { totalCount nodes { name } } } }
      removed: removeLabelsFromIssue(input: {issueId: $issue, labelIds: [$label]}) {
        issue { labels { totalCount } } } }"""
    outcome = await run(
        document, {"issue": team["issue"], "label": team["bug"]}, viewer="mut-admin"
    )
    assert outcome.errors == []
    assert outcome.data["before"]["issue"]["labels"]["totalCount"] == 0
    assert outcome.data["added"]["issue"]["labels"] == {"totalCount": 1, "nodes": [{"name": "bug"}]}
    assert outcome.data["removed"]["issue"]["labels"]["totalCount"] == 0


async def test_labels_of_another_project_are_refused(run: Run, make: Any) -> None:
    team = await _team(make)
    outcome = await run(
        """mutation($i: ID!, $l: ID!) { addLabelsToIssue(input: {issueId: $i,
        labelIds: [$l]}) { issue { id } userErrors { field code } } }""",
        {"i": team["issue"], "l": team["foreign"]},
        viewer="mut-admin",
    )
    assert outcome.data["addLabelsToIssue"] == {
        "issue": None,
        "userErrors": [{"field": ["input", "labelIds"], "code": "NOT_FOUND"}],
    }


async def test_comments(run: Run, make: Any, conn: asyncpg.Connection) -> None:
    team = await _team(make)
    added = await run(
        """mutation($i: ID!) { addComment(input: {issueId: $i, body: "First"}) {
        comment { id body author { login } } issue { comments { totalCount } } } }""",
        {"i": team["issue"]},
        viewer="mut-other",
    )
    comment = added.data["addComment"]["comment"]
    edit = """mutation($c: ID!, $b: String!) { updateComment(input: {commentId: $c, body: $b})
        { comment { body } userErrors { code } } }"""
    by_author = await run(edit, {"c": comment["id"], "b": "Edited"}, viewer="mut-other")
    by_admin = await run(edit, {"c": comment["id"], "b": "Hijacked"}, viewer="mut-admin")
    empty = await run(edit, {"c": comment["id"], "b": " "}, viewer="mut-other")
    deleted = await run(
        """mutation($c: ID!) { deleteComment(input: {commentId: $c}) {
        deletedCommentId issue { comments { totalCount } } } }""",
        {"c": comment["id"]},
        viewer="mut-admin",
    )
    assert comment["author"] == {"login": "mut-other"}
    assert added.data["addComment"]["issue"]["comments"]["totalCount"] == 1
    assert by_author.data["updateComment"]["comment"] == {"body": "Edited"}
    assert by_admin.codes == ["FORBIDDEN"]
    assert empty.data["updateComment"]["userErrors"] == [{"code": "TOO_SHORT"}]
    assert deleted.data["deleteComment"] == {
        "deletedCommentId": comment["id"],
        "issue": {"comments": {"totalCount": 0}},
    }
    assert (
        await _count(
            conn,
            "SELECT count(*) FROM events WHERE issue_id = $1 AND kind = 'COMMENTED'",
            team["issue_pk"],
        )
        == 1
    )


ROLE = """mutation($o: ID!, $u: ID!, $r: MembershipRole!) { updateMemberRole(input:
  {organizationId: $o, userId: $u, role: $r}) { role userErrors { code } } }"""
REMOVE = """mutation($o: ID!, $u: ID!) { removeMember(input: {organizationId: $o, userId: $u})
  { role userErrors { code } } }"""


async def test_owners_and_the_last_owner(run: Run, make: Any, conn: asyncpg.Connection) -> None:
    team = await _team(make)
    owner = encode_id("User", team["ids"]["owner"])
    member = encode_id("User", team["ids"]["member"])
    admin_grants_owner = await run(
        ROLE, {"o": team["org"], "u": member, "r": "OWNER"}, viewer="mut-admin"
    )
    demote_last = await run(ROLE, {"o": team["org"], "u": owner, "r": "ADMIN"}, viewer="mut-owner")
    leave_last = await run(REMOVE, {"o": team["org"], "u": owner}, viewer="mut-owner")
    promote = await run(ROLE, {"o": team["org"], "u": member, "r": "OWNER"}, viewer="mut-owner")
    now_demote = await run(ROLE, {"o": team["org"], "u": owner, "r": "ADMIN"}, viewer="mut-owner")
    assert admin_grants_owner.codes == ["FORBIDDEN"]
    assert demote_last.data["updateMemberRole"]["userErrors"] == [{"code": "LAST_OWNER"}]
    assert leave_last.data["removeMember"]["userErrors"] == [{"code": "LAST_OWNER"}]
    assert promote.data["updateMemberRole"] == {"role": "OWNER", "userErrors": []}
    assert now_demote.data["updateMemberRole"] == {"role": "ADMIN", "userErrors": []}
    roles = dict(
        await conn.fetch(
            "SELECT user_id, role FROM memberships WHERE organization_id = $1", team["org_pk"]
        )
    )
    assert roles[team["ids"]["owner"]] == "ADMIN" and roles[team["ids"]["member"]] == "OWNER"


async def test_members_are_added_and_removed_by_admins(run: Run, make: Any) -> None:
    team = await _team(make)
    add = """mutation($o: ID!, $l: String!) { addMember(input: {organizationId: $o,
        login: $l}) { role user { login } userErrors { code } } }"""
    added = await run(add, {"o": team["org"], "l": "mut-outsider"}, viewer="mut-admin")
    twice = await run(add, {"o": team["org"], "l": "mut-outsider"}, viewer="mut-admin")
    nobody = await run(add, {"o": team["org"], "l": "no-such-login"}, viewer="mut-admin")
    by_member = await run(add, {"o": team["org"], "l": "alice"}, viewer="mut-member")
    leaves = await run(
        REMOVE,
        {"o": team["org"], "u": encode_id("User", team["ids"]["outsider"])},
        viewer="mut-outsider",
    )
    assert added.data["addMember"] == {
        "role": "MEMBER",
        "user": {"login": "mut-outsider"},
        "userErrors": [],
    }
    assert twice.data["addMember"]["userErrors"] == [{"code": "ALREADY_MEMBER"}]
    assert nobody.data["addMember"]["userErrors"] == [{"code": "NOT_FOUND"}]
    assert by_member.codes == ["FORBIDDEN"]
    assert leaves.data["removeMember"] == {"role": None, "userErrors": []}


async def test_organizations_projects_and_labels(run: Run, make: Any) -> None:
    created = await run(
        """mutation { createOrganization(input: {slug: "fresh-org",
        name: "Fresh"}) { organization { id slug viewerRole } userErrors { code } } }""",
        viewer="carol",
    )
    org = created.data["createOrganization"]["organization"]
    taken = await run(
        """mutation { createOrganization(input: {slug: "acme", name: "A"}) {
        userErrors { field code } } }""",
        viewer="carol",
    )
    project = await run(
        """mutation($o: ID!) { createProject(input: {organizationId: $o,
        key: "NEW", name: "New", visibility: PUBLIC}) { project { id key visibility } } }""",
        {"o": org["id"]},
        viewer="carol",
    )
    pid = project.data["createProject"]["project"]["id"]
    bad_key = await run(
        """mutation($o: ID!) { createProject(input: {organizationId: $o,
        key: "new", name: "x"}) { userErrors { field code } } }""",
        {"o": org["id"]},
        viewer="carol",
    )
    label = await run(
        """mutation($p: ID!) { createLabel(input: {projectId: $p, name: "ui",
        color: "#ABCDEF"}) { label { name color } } }""",
        {"p": pid},
        viewer="carol",
    )
    bad_color = await run(
        """mutation($p: ID!) { createLabel(input: {projectId: $p,
        name: "ux", color: "red"}) { userErrors { field code } } }""",
        {"p": pid},
        viewer="carol",
    )
    archived = await run(
        """mutation($p: ID!) { archiveProject(input: {projectId: $p}) {
        project { archivedAt } } }""",
        {"p": pid},
        viewer="carol",
    )
    after = await run(CREATE_ISSUE, {"input": {"projectId": pid, "title": "Late"}}, viewer="carol")
    assert org["slug"] == "fresh-org" and org["viewerRole"] == "OWNER"
    assert taken.data["createOrganization"]["userErrors"] == [
        {"field": ["input", "slug"], "code": "TAKEN"}
    ]
    assert project.data["createProject"]["project"]["visibility"] == "PUBLIC"
    assert bad_key.data["createProject"]["userErrors"] == [
        {"field": ["input", "key"], "code": "INVALID"}
    ]
    assert label.data["createLabel"]["label"] == {"name": "ui", "color": "#abcdef"}
    assert bad_color.data["createLabel"]["userErrors"] == [
        {"field": ["input", "color"], "code": "INVALID"}
    ]
    assert archived.data["archiveProject"]["project"]["archivedAt"] is not None
    assert after.data["createIssue"]["userErrors"] == [
        {
            "field": None,
            "code": "ARCHIVED",
            "message": "The project is archived and takes no changes.",
        }
    ]


async def test_writes_to_hidden_or_missing_objects_are_not_found(run: Run) -> None:
    ops = await run("""{ organization(slug: "acme") { id } }""")
    assert ops.errors == []
    hidden = await run(
        """mutation($i: ID!) { closeIssue(input: {issueId: $i}) {
        issue { id } } }""",
        {"i": encode_id("Issue", 10**12)},
        viewer="carol",
    )
    wrong_type = await run(
        """mutation($i: ID!) { closeIssue(input: {issueId: $i}) {
        issue { id } } }""",
        {"i": encode_id("User", 1)},
        viewer="carol",
    )
    assert hidden.codes == ["NOT_FOUND"]
    assert wrong_type.codes == ["BAD_USER_INPUT"]


async def test_demo_data_takes_new_issues_after_its_last_number(
    run: Run, conn: asyncpg.Connection
) -> None:
    project = await conn.fetchrow(
        "SELECT p.id, max(i.number) AS last FROM projects p JOIN"
        " issues i ON i.project_id = p.id WHERE p.key = 'WEB'"
        " GROUP BY p.id"
    )
    outcome = await run(
        CREATE_ISSUE,
        {"input": {"projectId": encode_id("Project", project["id"]), "title": "New on WEB"}},
        viewer="bob",
    )
    assert outcome.errors == []
    assert outcome.data["createIssue"]["issue"]["number"] == project["last"] + 1
