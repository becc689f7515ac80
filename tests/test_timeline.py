"""Issue.timelineItems: comments and events from the log every mutation writes, oldest first,
paged by cursor, filtered by type, one statement per list level."""

from __future__ import annotations

from typing import Any

import asyncpg

from execution.ids import encode_id
from tests.conftest import Run

TIMELINE = """query($id: ID!, $first: Int, $after: String, $last: Int, $before: String,
                    $types: [IssueTimelineItemType!]) {
  node(id: $id) { ... on Issue {
    timelineItems(first: $first, after: $after, last: $last, before: $before,
                  itemTypes: $types) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor }
      nodes {
        __typename
        ... on Comment { body author { login } }
        ... on ClosedEvent { actor { login } createdAt }
        ... on ReopenedEvent { actor { login } }
        ... on RenamedTitleEvent { actor { login } previousTitle currentTitle }
        ... on LabeledEvent { actor { login } label { name } }
        ... on UnlabeledEvent { label { name } }
        ... on AssignedEvent { actor { login } assignee { login } }
        ... on UnassignedEvent { assignee { login } }
        ... on TransferredEvent { actor { login } fromProject { key } }
        ... on MentionedEvent { actor { login } user { login } comment { body } }
      } } } } }"""


async def _team(make: Any) -> dict[str, Any]:
    ids = {name: await make.user(login=f"tl-{name}") for name in ("owner", "member", "other")}
    org = await make.organization(slug="tl-org")
    await make.member(org, ids["owner"], "OWNER")
    await make.member(org, ids["member"], "MEMBER")
    await make.member(org, ids["other"], "MEMBER")
    project = await make.project(org, key="TL")
    old_project = await make.project(org, key="OLD", visibility="PRIVATE")
    bug = await make.label(project, name="bug")
    ui = await make.label(project, name="ui")
    return {
        "ids": ids,
        "org": org,
        "project": encode_id("Project", project),
        "project_pk": project,
        "old_project": old_project,
        "bug": encode_id("Label", bug),
        "ui": encode_id("Label", ui),
    }


async def _history(run: Run, team: dict[str, Any]) -> str:
    """An issue opened with an assignee and a label, then renamed and reassigned, commented
    on, labelled, unlabelled, closed and reopened."""
    created = await run(
        """mutation($input: CreateIssueInput!) { createIssue(input: $input) {
           issue { id } userErrors { code } } }""",
        {
            "input": {
                "projectId": team["project"],
                "title": "First title",
                "assigneeId": encode_id("User", team["ids"]["member"]),
                "labelIds": [team["bug"]],
            }
        },
        viewer="tl-owner",
    )
    issue = created.data["createIssue"]["issue"]["id"]
    steps = [
        (
            "mutation($i: ID!, $a: ID) { updateIssue(input: {issueId: $i, title: "
            '"Second title", assigneeId: $a}) { userErrors { code } } }',
            {"a": encode_id("User", team["ids"]["other"])},
        ),
        (
            'mutation($i: ID!) { addComment(input: {issueId: $i, body: "Looks good"}) '
            "{ userErrors { code } } }",
            {},
        ),
        (
            "mutation($i: ID!, $l: ID!) { addLabelsToIssue(input: {issueId: $i, "
            "labelIds: [$l]}) { userErrors { code } } }",
            {"l": team["ui"]},
        ),
        (
            "mutation($i: ID!, $l: ID!) { removeLabelsFromIssue(input: {issueId: $i, "
            "labelIds: [$l]}) { userErrors { code } } }",
            {"l": team["bug"]},
        ),
        ("mutation($i: ID!) { closeIssue(input: {issueId: $i}) { userErrors { code } } }", {}),
        ("mutation($i: ID!) { reopenIssue(input: {issueId: $i}) { userErrors { code } } }", {}),
        (  # a body-only update shows nothing in the timeline
            'mutation($i: ID!) { updateIssue(input: {issueId: $i, body: "more"}) '
            "{ userErrors { code } } }",
            {},
        ),
    ]
    for document, variables in steps:
        outcome = await run(document, {"i": issue, **variables}, viewer="tl-owner")
        assert outcome.errors == [], outcome.errors
    return str(issue)


async def test_the_timeline_tells_what_happened_oldest_first(run: Run, make: Any) -> None:
    team = await _team(make)
    issue = await _history(run, team)

    outcome = await run(TIMELINE, {"id": issue}, viewer="tl-member")

    assert outcome.errors == []
    timeline = outcome.data["node"]["timelineItems"]
    owner = {"login": "tl-owner"}
    assert timeline["totalCount"] == 10
    assert [{k: v for k, v in n.items() if k != "createdAt"} for n in timeline["nodes"]] == [
        {"__typename": "AssignedEvent", "actor": owner, "assignee": {"login": "tl-member"}},
        {"__typename": "LabeledEvent", "actor": owner, "label": {"name": "bug"}},
        {
            "__typename": "RenamedTitleEvent",
            "actor": owner,
            "previousTitle": "First title",
            "currentTitle": "Second title",
        },
        {"__typename": "UnassignedEvent", "assignee": {"login": "tl-member"}},
        {"__typename": "AssignedEvent", "actor": owner, "assignee": {"login": "tl-other"}},
        {"__typename": "Comment", "body": "Looks good", "author": owner},
        {"__typename": "LabeledEvent", "actor": owner, "label": {"name": "ui"}},
        {"__typename": "UnlabeledEvent", "label": {"name": "bug"}},
        {"__typename": "ClosedEvent", "actor": owner},
        {"__typename": "ReopenedEvent", "actor": owner},
    ]


async def test_pages_of_the_timeline_follow_each_other_both_ways(run: Run, make: Any) -> None:
    team = await _team(make)
    issue = await _history(run, team)
    whole = await run(TIMELINE, {"id": issue, "first": 100})
    everything = whole.data["node"]["timelineItems"]["nodes"]

    seen: list[Any] = []
    after = None
    while True:
        page = await run(TIMELINE, {"id": issue, "first": 3, "after": after})
        assert page.errors == []
        found = page.data["node"]["timelineItems"]
        seen += found["nodes"]
        if not found["pageInfo"]["hasNextPage"]:
            break
        after = found["pageInfo"]["endCursor"]
    assert seen == everything

    last = await run(TIMELINE, {"id": issue, "last": 2})
    found = last.data["node"]["timelineItems"]
    assert found["nodes"] == everything[-2:]
    assert found["pageInfo"]["hasPreviousPage"] is True
    before = await run(
        TIMELINE, {"id": issue, "last": 3, "before": found["pageInfo"]["startCursor"]}
    )
    assert before.data["node"]["timelineItems"]["nodes"] == everything[-5:-2]


async def test_item_types_filter_the_timeline_and_its_count(run: Run, make: Any) -> None:
    team = await _team(make)
    issue = await _history(run, team)

    outcome = await run(
        TIMELINE, {"id": issue, "types": ["ISSUE_COMMENT", "CLOSED_EVENT", "ASSIGNED_EVENT"]}
    )

    timeline = outcome.data["node"]["timelineItems"]
    assert [n["__typename"] for n in timeline["nodes"]] == [
        "AssignedEvent",
        "AssignedEvent",
        "Comment",
        "ClosedEvent",
    ]
    assert timeline["totalCount"] == 4


async def test_a_bad_cursor_is_a_clear_error(run: Run, make: Any) -> None:
    team = await _team(make)
    issue = await _history(run, team)
    outcome = await run(TIMELINE, {"id": issue, "after": "bm90LWEtY3Vyc29y"})
    assert outcome.codes == ["BAD_USER_INPUT"]


async def test_a_deleted_comment_leaves_the_timeline(run: Run, make: Any) -> None:
    team = await _team(make)
    issue = await _history(run, team)
    comment = await make.conn.fetchval("SELECT id FROM comments WHERE body = 'Looks good'")
    deleted = await run(
        "mutation($c: ID!) { deleteComment(input: {commentId: $c}) { userErrors { code } } }",
        {"c": encode_id("Comment", comment)},
        viewer="tl-owner",
    )
    assert deleted.errors == []
    outcome = await run(TIMELINE, {"id": issue, "types": ["ISSUE_COMMENT"]})
    assert outcome.data["node"]["timelineItems"]["nodes"] == []


async def test_a_transfer_shows_the_project_the_issue_came_from_to_who_may_see_it(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make)
    issue = await make.issue(team["project_pk"], team["ids"]["owner"])
    await conn.execute(
        "INSERT INTO events (kind, project_id, issue_id, actor_id, payload) VALUES"
        " ('issue_transferred', $1, $2, $3, jsonb_build_object('from_project_id', $4::bigint))",
        team["project_pk"],
        issue,
        team["ids"]["owner"],
        team["old_project"],
    )
    query = {"id": encode_id("Issue", issue), "types": ["TRANSFERRED_EVENT"]}

    member = await run(TIMELINE, query, viewer="tl-member")
    anonymous = await run(TIMELINE, query)

    assert member.data["node"]["timelineItems"]["nodes"] == [
        {
            "__typename": "TransferredEvent",
            "actor": {"login": "tl-owner"},
            "fromProject": {"key": "OLD"},
        }
    ]
    # the old project is private: to others the event shows, the project does not
    assert anonymous.data["node"]["timelineItems"]["nodes"][0]["fromProject"] is None


PAGE_OF_TIMELINES = """query($slug: String!, $n: Int!) { organization(slug: $slug) {
  projects(first: 1) { nodes { issues(first: $n) { nodes { number
    timelineItems(first: 20) { totalCount nodes {
      __typename
      ... on Comment { body author { login } }
      ... on ClosedEvent { actor { login } }
      ... on LabeledEvent { label { name } actor { login } }
    } } } } } } } }"""


async def test_a_page_of_issues_with_their_timelines_costs_the_same_at_any_size(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    user = await make.user()
    slug = await make.tree(20, user)
    # every issue closed and labelled, and its comments in the log, as the mutations write
    await conn.execute(
        """INSERT INTO events (kind, project_id, issue_id, actor_id, comment_id, label_ids)
        SELECT k.kind, i.project_id, i.id, $2::bigint, NULL,
               CASE WHEN k.kind = 'LABELED' THEN ARRAY(
                   SELECT label_id FROM issue_labels WHERE issue_id = i.id) ELSE '{}' END
        FROM issues i JOIN projects p ON p.id = i.project_id
        CROSS JOIN (VALUES ('LABELED'), ('CLOSED')) AS k(kind)
        WHERE p.organization_id = (SELECT id FROM organizations WHERE slug = $1)
        UNION ALL
        SELECT 'COMMENTED', i.project_id, i.id, c.author_id, c.id, '{}'
        FROM comments c JOIN issues i ON i.id = c.issue_id JOIN projects p ON p.id = i.project_id
        WHERE p.organization_id = (SELECT id FROM organizations WHERE slug = $1)""",
        slug,
        user,
    )

    small = await run(PAGE_OF_TIMELINES, {"slug": slug, "n": 2})
    large = await run(PAGE_OF_TIMELINES, {"slug": slug, "n": 20})

    assert small.errors == [] and large.errors == []
    issues = large.data["organization"]["projects"]["nodes"][0]["issues"]["nodes"]
    assert len(issues) == 20
    assert all(len(i["timelineItems"]["nodes"]) == 20 for i in issues)
    assert issues[0]["timelineItems"]["totalCount"] == 20 + 20 + 1
    # organization, projects, issues, timelines, their count, users, labels
    assert len(small.statements) == len(large.statements) == 7


async def test_transfer_issue_writes_the_transfer_the_timeline_shows(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    team = await _team(make)
    created = await run(
        """mutation($p: ID!) { createIssue(input: {projectId: $p, title: "Moving"}) {
           issue { id } } }""",
        {"p": encode_id("Project", team["old_project"])},
        viewer="tl-owner",
    )
    issue = created.data["createIssue"]["issue"]["id"]
    moved = await run(
        """mutation($i: ID!, $p: ID!) { transferIssue(input: {issueId: $i, projectId: $p}) {
           issue { identifier } userErrors { code } } }""",
        {"i": issue, "p": team["project"]},
        viewer="tl-owner",
    )
    assert moved.errors == [] and moved.data["transferIssue"]["userErrors"] == []
    assert moved.data["transferIssue"]["issue"]["identifier"] == "TL-1"
    await run(
        """mutation($i: ID!) { addComment(input: {issueId: $i, body: "Here now"}) {
           comment { id } } }""",
        {"i": issue},
        viewer="tl-member",
    )

    member = await run(TIMELINE, {"id": issue}, viewer="tl-member")
    anonymous = await run(TIMELINE, {"id": issue})

    transfer = {"__typename": "TransferredEvent", "actor": {"login": "tl-owner"}}
    assert member.data["node"]["timelineItems"]["nodes"] == [
        {**transfer, "fromProject": {"key": "OLD"}},
        {"__typename": "Comment", "body": "Here now", "author": {"login": "tl-member"}},
    ]
    # the issue is public where it went; the private project it left is not shown
    assert anonymous.data["node"]["timelineItems"]["nodes"][0] == {**transfer, "fromProject": None}
