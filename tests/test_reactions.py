"""Reactions on issues and comments: addReaction, removeReaction, reactionGroups, batched."""

from __future__ import annotations

from typing import Any

import asyncpg

from execution.ids import encode_id
from tests.conftest import Run

REACT = """mutation($s: ID!, $c: ReactionContent!) { addReaction(input: {subjectId: $s,
  content: $c}) { subject { __typename reactionGroups { content count viewerHasReacted } }
  userErrors { code } } }"""
UNREACT = """mutation($s: ID!, $c: ReactionContent!) { removeReaction(input: {subjectId: $s,
  content: $c}) { subject { reactionGroups { content count viewerHasReacted } } } }"""


def _shown(groups: list[dict[str, Any]]) -> dict[str, tuple[int, bool]]:
    """The groups someone chose (all eight are listed, with 0 for the others)."""
    assert [g["content"] for g in groups] == [
        "THUMBS_UP",
        "THUMBS_DOWN",
        "LAUGH",
        "HOORAY",
        "CONFUSED",
        "HEART",
        "ROCKET",
        "EYES",
    ]
    return {g["content"]: (g["count"], g["viewerHasReacted"]) for g in groups if g["count"]}


async def _world(make: Any) -> dict[str, Any]:
    users = {name: await make.user(login=f"re-{name}") for name in ("ann", "ben", "cid")}
    org = await make.organization()
    await make.member(org, users["ann"])
    public = await make.project(org)
    private = await make.project(org, visibility="PRIVATE")
    issue = await make.issue(public, users["ann"])
    comment = await make.comment(issue, users["ann"])
    hidden = await make.issue(private, users["ann"])
    return {
        "issue": encode_id("Issue", issue),
        "comment": encode_id("Comment", comment),
        "hidden": encode_id("Issue", hidden),
        "label": encode_id("Label", await make.label(public)),
    }


async def test_reactions_count_per_content_once_per_person(run: Run, make: Any) -> None:
    world = await _world(make)
    await run(REACT, {"s": world["issue"], "c": "HEART"}, viewer="re-ann")
    await run(REACT, {"s": world["issue"], "c": "HEART"}, viewer="re-ben")
    again = await run(REACT, {"s": world["issue"], "c": "HEART"}, viewer="re-ben")
    await run(REACT, {"s": world["issue"], "c": "ROCKET"}, viewer="re-ben")
    on_comment = await run(REACT, {"s": world["comment"], "c": "EYES"}, viewer="re-cid")

    groups = again.data["addReaction"]["subject"]["reactionGroups"]
    assert _shown(groups) == {"HEART": (2, True)}
    assert on_comment.data["addReaction"]["subject"]["__typename"] == "Comment"
    assert _shown(on_comment.data["addReaction"]["subject"]["reactionGroups"]) == {
        "EYES": (1, True)
    }
    removed = await run(UNREACT, {"s": world["issue"], "c": "HEART"}, viewer="re-ann")
    assert _shown(removed.data["removeReaction"]["subject"]["reactionGroups"]) == {
        "HEART": (1, False),
        "ROCKET": (1, False),
    }
    anonymous = await run(
        "query($i: ID!) { node(id: $i) { ... on Issue { reactionGroups { content count "
        "viewerHasReacted } } } }",
        {"i": world["issue"]},
    )
    assert _shown(anonymous.data["node"]["reactionGroups"]) == {
        "HEART": (1, False),
        "ROCKET": (1, False),
    }


async def test_reactions_need_a_signed_in_viewer_who_may_read_the_subject(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    world = await _world(make)

    anonymous = await run(REACT, {"s": world["issue"], "c": "HEART"})
    outsider = await run(REACT, {"s": world["hidden"], "c": "HEART"}, viewer="re-ben")
    label = await run(REACT, {"s": world["label"], "c": "HEART"}, viewer="re-ann")
    member = await run(REACT, {"s": world["hidden"], "c": "HEART"}, viewer="re-ann")

    assert anonymous.codes == ["UNAUTHENTICATED"]
    assert outsider.codes == ["NOT_FOUND"]
    assert label.codes == ["BAD_USER_INPUT"]
    assert member.errors == []
    assert await conn.fetchval("SELECT count(*) FROM reactions") == 1


REACTIONS_OF_A_PAGE = """query($slug: String!, $n: Int!) { organization(slug: $slug) {
  projects(first: 1) { nodes { issues(first: $n) { nodes {
    reactionGroups { content count viewerHasReacted }
    comments(first: $n) { nodes { reactionGroups { content count viewerHasReacted } } }
  } } } } } }"""


async def test_a_page_of_issues_and_comments_reads_reactions_in_one_statement_per_level(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    user = await make.user(login="re-many")
    slug = await make.tree(10, user)
    await conn.execute(
        """INSERT INTO reactions (issue_id, user_id, content)
        SELECT i.id, $2, c FROM issues i JOIN projects p ON p.id = i.project_id
        JOIN organizations o ON o.id = p.organization_id,
        unnest(ARRAY['HEART', 'EYES']) AS c WHERE o.slug = $1""",
        slug,
        user,
    )
    await conn.execute(
        """INSERT INTO reactions (comment_id, user_id, content)
        SELECT c.id, $2, 'LAUGH' FROM comments c JOIN issues i ON i.id = c.issue_id
        JOIN projects p ON p.id = i.project_id JOIN organizations o ON o.id = p.organization_id
        WHERE o.slug = $1""",
        slug,
        user,
    )

    small = await run(REACTIONS_OF_A_PAGE, {"slug": slug, "n": 2}, viewer="re-many")
    large = await run(REACTIONS_OF_A_PAGE, {"slug": slug, "n": 10}, viewer="re-many")

    assert small.errors == [] and large.errors == []
    issues = large.data["organization"]["projects"]["nodes"][0]["issues"]["nodes"]
    assert len(issues) == 10
    assert all(
        _shown(i["reactionGroups"]) == {"HEART": (1, True), "EYES": (1, True)} for i in issues
    )
    comments = [c for i in issues for c in i["comments"]["nodes"]]
    assert len(comments) == 100
    assert all(_shown(c["reactionGroups"]) == {"LAUGH": (1, True)} for c in comments)
    # organization, projects, issues, their reactions, comments, their reactions
    assert len(small.statements) == len(large.statements) == 6
