"""Access rules, walked through the GraphQL API: roles × objects × actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from domain.policy import Access
from execution.ids import encode_id
from tests.conftest import Run, services_with

CHECKS = """
query($pub: ID!, $priv: ID!, $privIssue: ID!, $issue: ID!, $comment: ID!, $org: String!,
      $target: String!) {
  pub: node(id: $pub) { ... on Project { viewerCanUpdate viewerCanCreateIssues } }
  priv: node(id: $priv) { id }
  privIssue: node(id: $privIssue) { id }
  issue: node(id: $issue) {
    ... on Issue { viewerCanUpdate viewerCanTriage viewerCanClose viewerCanComment }
  }
  comment: node(id: $comment) { ... on Comment { viewerCanUpdate viewerCanDelete } }
  organization(slug: $org) {
    viewerCanAdminister viewerCanManageOwners viewerCanCreateProjects
    projects { totalCount }
  }
  user(login: $target) { email }
}
"""
COLUMNS = (
    "read_public",
    "read_private",
    "read_private_issue",
    "update_project",
    "create_issue",
    "edit_issue",
    "triage_issue",
    "close_issue",
    "comment",
    "update_comment",
    "delete_comment",
    "administer",
    "manage_owners",
    "create_projects",
    "read_email",
)
T, F = True, False
EXPECTED = {
    #            pub priv pIss updP crtI edit tria clos cmnt updC delC admn ownr crtP mail
    "anonymous": (T, F, F, F, F, F, F, F, F, F, F, F, F, F, F),
    "outsider": (T, F, F, F, F, F, F, F, F, F, F, F, F, F, F),
    "member": (T, T, T, F, T, F, F, F, T, F, F, F, F, F, F),
    "target": (T, T, T, F, T, F, F, F, T, F, F, F, F, F, T),
    "admin": (T, T, T, T, T, T, T, T, T, F, T, T, F, T, T),
    "owner": (T, T, T, T, T, T, T, T, T, F, T, T, T, T, T),
    "root": (T, T, T, T, T, T, T, T, T, T, T, T, T, T, T),
    "author": (T, F, F, F, F, T, F, T, F, T, T, F, F, F, F),
    "assignee": (T, F, F, F, F, F, F, T, F, F, F, F, F, F, F),
}


async def _world(make: Any, conn: asyncpg.Connection) -> dict[str, Any]:
    logins = ["outsider", "member", "target", "admin", "owner", "author", "assignee"]
    users = {name: await make.user(login=f"acl-{name}") for name in logins}
    org = await make.organization(slug="acl-org")
    for name, role in [
        ("member", "MEMBER"),
        ("target", "MEMBER"),
        ("admin", "ADMIN"),
        ("owner", "OWNER"),
    ]:
        await make.member(org, users[name], role)
    public = await make.project(org, key="PUB", visibility="PUBLIC")
    private = await make.project(org, key="PRIV", visibility="PRIVATE")
    issue = await make.issue(public, users["author"], assignee_id=users["assignee"])
    comment = await make.comment(issue, users["author"])
    private_issue = await make.issue(private, users["member"])
    return {
        "pub": encode_id("Project", public),
        "priv": encode_id("Project", private),
        "privIssue": encode_id("Issue", private_issue),
        "issue": encode_id("Issue", issue),
        "comment": encode_id("Comment", comment),
        "org": "acl-org",
        "target": "acl-target",
    }


def _observed(data: dict[str, Any]) -> tuple[bool, ...]:
    pub, issue, comment, org = data["pub"], data["issue"], data["comment"], data["organization"]
    return (
        pub is not None,
        data["priv"] is not None,
        data["privIssue"] is not None,
        pub["viewerCanUpdate"],
        pub["viewerCanCreateIssues"],
        issue["viewerCanUpdate"],
        issue["viewerCanTriage"],
        issue["viewerCanClose"],
        issue["viewerCanComment"],
        comment["viewerCanUpdate"],
        comment["viewerCanDelete"],
        org["viewerCanAdminister"],
        org["viewerCanManageOwners"],
        org["viewerCanCreateProjects"],
        data["user"]["email"] is not None,
    )


@pytest.mark.parametrize("role", list(EXPECTED))
async def test_role_sees_and_may_do_what_the_rules_say(
    role: str, run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    variables = await _world(make, conn)
    viewer = None if role == "anonymous" else "root" if role == "root" else f"acl-{role}"

    outcome = await run(CHECKS, variables, viewer=viewer)

    observed = dict(zip(COLUMNS, _observed(outcome.data), strict=True))
    assert observed == dict(zip(COLUMNS, EXPECTED[role], strict=True))
    reads_private = EXPECTED[role][1]
    assert outcome.data["organization"]["projects"]["totalCount"] == (2 if reads_private else 1)
    email_errors = [e for e in outcome.errors if e["path"] == ["user", "email"]]
    assert [e["extensions"]["code"] for e in email_errors] == (
        [] if EXPECTED[role][-1] else ["FORBIDDEN"]
    )
    assert len(outcome.errors) == len(email_errors)


SHIPPED = Path(__file__).resolve().parent.parent / "domain" / "access"


async def test_changing_a_policy_line_changes_behaviour(
    run: Run, make: Any, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    variables = await _world(make, conn)
    edited = tmp_path / "policy.csv"
    edited.write_text(
        (SHIPPED / "policy.csv").read_text().replace("p, public, project, read\n", "")
    )
    members_only = services_with(Access(SHIPPED / "model.conf", edited))

    before = await run(CHECKS, variables)
    after = await run(CHECKS, variables, services=members_only)
    member_after = await run(CHECKS, variables, viewer="acl-member", services=members_only)

    assert before.data["pub"] is not None
    assert after.data["pub"] is None and after.data["issue"] is None
    assert after.data["organization"]["projects"]["totalCount"] == 0
    assert member_after.data["organization"]["projects"]["totalCount"] == 2


async def test_decisions_are_made_once_per_traits_not_per_row(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    author = await make.user(login="acl-many")
    org = await make.organization(slug="acl-many-org")
    await make.member(org, author, "MEMBER")
    project = await make.project(org, key="MANY")
    for _ in range(30):
        await make.issue(project, author)
    access = Access()
    calls = 0
    enforce = access._enforcer.enforce

    def counting(*request: Any) -> bool:
        nonlocal calls
        calls += 1
        return bool(enforce(*request))

    access._enforcer.enforce = counting  # type: ignore[method-assign]
    query = """{ organization(slug: "acl-many-org") { project(key: "MANY") {
        issues(first: 30) { nodes { viewerCanUpdate viewerCanClose viewerCanComment } } } } }"""

    outcome = await run(query, viewer="acl-many", services=services_with(access))

    nodes = outcome.data["organization"]["project"]["issues"]["nodes"]
    assert len(nodes) == 30 and all(
        n == {"viewerCanUpdate": True, "viewerCanClose": True, "viewerCanComment": True}
        for n in nodes
    )
    # the scope (5 at most: projects read, webhooks managed) and one per (traits, action), not 90
    assert calls <= 8


async def test_hidden_objects_are_missing_not_forbidden(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    variables = await _world(make, conn)
    query = """query($priv: ID!) { node(id: $priv) { id }
        organization(slug: "acl-org") { project(key: "PRIV") { key } } }"""
    hidden = await run(query, variables, viewer="acl-outsider")
    missing = await run(query, {"priv": encode_id("Project", 10**15)}, viewer="acl-outsider")
    assert hidden.data == {"node": None, "organization": {"project": None}}
    assert hidden.errors == missing.errors == []
    assert missing.data["node"] is None
