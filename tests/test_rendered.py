"""Objects PostgreSQL writes as JSON (loaders/rendered.py) are the objects Python builds.

`run` answers each query through graphql-core and through the compiled executor and
asserts the same JSON; these tests choose values where the two could part (escapes,
unicode, timestamps with and without fractions, nulls, aliases, ids) and check that the
compiled answer really came from PostgreSQL's text.

A list is written inside its parent's text too (its connection: nodes, edges, cursors,
pageInfo, totalCount), so a subtree of lists costs the one statement that reads its top
rows; the lists inside keep the viewer's scope, the filters, the orders and the cursors
that their page loaders apply.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from domain.context import build_context
from domain.policy import ANONYMOUS
from tests.conftest import RecordingSession, Run, services_with
from tests.conftest import _compiled as compiled_executor

AWKWARD = 'quote " backslash \\ slash / tab \t newline \n nul-free \u0001 é 😀 </script>'

ISSUE_PAGE = """
query($slug: String!) {
  organization(slug: $slug) {
    projects(first: 2) {
      nodes {
        issues(first: 5) {
          nodes {
            id number
            # the organization is written whole, lists and all
            author { __typename id login name isSiteAdmin createdAt }
            assignee { login }
            comments(first: 5) {
              edges { cursor node { id kind: __typename body createdAt when: updatedAt
                                    author { login name createdAt } } }
            }
          }
        }
        labels(first: 3) { nodes { name color createdAt } }
      }
    }
  }
}
"""


async def fragments(conn: asyncpg.Connection, query: str, variables: dict[str, Any]) -> int:
    """How many objects of the compiled answer PostgreSQL wrote."""
    return (await written(conn, query, variables))[0]


async def written(
    conn: asyncpg.Connection, query: str, variables: dict[str, Any]
) -> tuple[int, int]:
    """How many objects of the compiled answer (for an anonymous viewer) PostgreSQL wrote,
    and how many statements the compiled executor ran."""
    session = RecordingSession(conn)
    context = build_context(session, ANONYMOUS, services_with())
    result = await compiled_executor.execute(compiled_executor.prepare(query), context, variables)
    await session.close()
    found = 0
    pending = [result.data]
    while pending:
        value = pending.pop()
        if isinstance(value, orjson.Fragment):
            found += 1
        elif isinstance(value, dict):
            pending += value.values()
        elif isinstance(value, list):
            pending += value
    return found, len(session.log)


async def test_written_objects_read_as_the_objects_python_builds(
    run: Run, conn: asyncpg.Connection, make: Any
) -> None:
    author = await make.user(name=AWKWARD, login="awkward-author")
    commenter = await make.user(name="Ünïcode 名前")
    organization = await make.organization(slug="rendered-org")
    project = await make.project(organization)
    await make.label(project, name=AWKWARD[:40], created_at=datetime(2026, 3, 1, tzinfo=UTC))
    whole = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    fraction = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    first = await make.issue(project, author, created_at=whole, assignee_id=commenter)
    second = await make.issue(project, author, created_at=fraction)  # no assignee
    await make.comment(first, commenter, body=AWKWARD, created_at=whole, updated_at=fraction)
    await make.comment(first, author, body="", created_at=fraction, updated_at=whole)
    await make.comment(second, commenter, body="**bold** `code`", created_at=whole)

    outcome = await run(ISSUE_PAGE, {"slug": "rendered-org"})  # both executors, same JSON

    issues = outcome.data["organization"]["projects"]["nodes"][0]["issues"]["nodes"]
    assert issues[0]["author"]["name"] == AWKWARD
    assert issues[0]["author"]["createdAt"].endswith("Z")
    assert issues[1]["assignee"] is None
    comments = [edge["node"] for edge in issues[0]["comments"]["edges"]]
    assert comments[0]["body"] == AWKWARD and comments[0]["kind"] == "Comment"
    assert comments[0]["createdAt"] == "2026-01-02T03:04:05Z"
    assert comments[0]["when"] == "2026-01-02T03:04:05.120000Z"
    assert comments[0]["author"]["name"] == "Ünïcode 名前"
    # the organization, its project, its issues, their authors, assignees and comments
    assert await fragments(conn, ISSUE_PAGE, {"slug": "rendered-org"}) == 1


async def test_objects_that_ask_python_are_built_in_python(
    run: Run, conn: asyncpg.Connection, make: Any
) -> None:
    """A viewer-dependent field (the email rule, a permission) keeps its object in Python;
    the answers stay the same."""
    author = await make.user(email="hidden@example.test")
    slug = await make.tree(2, author)
    query = """query($slug: String!) { organization(slug: $slug) { projects(first: 2) {
      nodes { issues(first: 2) { nodes { viewerCanClose author { login email } } } } } } }"""

    outcome = await run(query, {"slug": slug})

    issues = outcome.data["organization"]["projects"]["nodes"][0]["issues"]["nodes"]
    assert issues[0]["author"]["email"] is None  # anonymous viewers read no emails
    assert await fragments(conn, query, {"slug": slug}) == 0


async def test_an_object_from_a_list_that_writes_none_is_built_in_python(
    run: Run, conn: asyncpg.Connection, make: Any
) -> None:
    """Search results are read by a statement that writes no objects: the same issue
    selection answers from the rows instead."""
    author = await make.user()
    organization = await make.organization()
    project = await make.project(organization)
    await make.issue(project, author, title="zanzibar quokka")
    query = """{ searchIssues(query: "zanzibar quokka") {
      nodes { number title state createdAt author { login } } } }"""

    outcome = await run(query)

    assert [i["title"] for i in outcome.data["searchIssues"]["nodes"]] == ["zanzibar quokka"]


SUBTREE = """
query($slug: String!, $after: String, $states: [IssueState!]) {
  organization(slug: $slug) {
    projects(first: 10) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges {
        cursor
        node {
          __typename key visibility
          first: issues(first: 2) {
            pageInfo { hasNextPage endCursor __typename }
            edges { __typename cursor node { number title } }
          }
          later: issues(first: 2, after: $after, filterBy: {states: $states}) {
            totalCount
            nodes {
              number priority assignee { login }
              labels(last: 2) { totalCount nodes { name } }
            }
          }
          byPriority: issues(last: 3, orderBy: {field: PRIORITY, direction: DESC}) {
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            edges { cursor node { number priority updatedAt comments(first: 1) { nodes { id } } } }
          }
          none: labels(first: 0) { pageInfo { hasNextPage startCursor endCursor } nodes { name } }
        }
      }
    }
  }
}
"""


async def test_a_subtree_of_lists_is_written_by_one_statement(
    run: Run, conn: asyncpg.Connection, make: Any
) -> None:
    """Lists inside lists, as a Relay client asks for them (edges, cursors, pageInfo,
    totalCount, forward and backward, filtered and reordered), cost the same statements
    at two sizes, and their answers are the standard executor's (`run` compares)."""
    author = await make.user(login="subtree-author")
    small, large = await make.tree(2, author), await make.tree(4, author)
    cursor = (await run(SUBTREE, {"slug": small}, viewer=None)).data["organization"]
    after = cursor["projects"]["edges"][0]["node"]["first"]["pageInfo"]["endCursor"]

    variables = {"after": after, "states": ["OPEN"]}
    counts = [await written(conn, SUBTREE, {"slug": s, **variables}) for s in (small, large)]

    # (objects written, statements): the organization by its slug, every list inside it in
    # its text
    assert counts == [(1, 1), (1, 1)]
    outcome = await run(SUBTREE, {"slug": large, "after": after})
    projects = outcome.data["organization"]["projects"]
    assert projects["totalCount"] == 4 and len(projects["edges"]) == 4
    first = projects["edges"][0]["node"]
    assert [e["node"]["number"] for e in first["first"]["edges"]] == [4, 3]  # oldest first
    assert first["first"]["pageInfo"] == {
        "hasNextPage": True,
        "endCursor": first["first"]["edges"][1]["cursor"],
        "__typename": "PageInfo",
    }
    assert first["byPriority"]["pageInfo"]["hasPreviousPage"] is True
    assert first["none"] == {
        "pageInfo": {"hasNextPage": True, "startCursor": None, "endCursor": None},
        "nodes": [],
    }


async def test_written_lists_keep_the_viewers_scope(
    run: Run, conn: asyncpg.Connection, make: Any
) -> None:
    """A private project inside a written list is there for a member only."""
    member = await make.user(login="subtree-member")
    slug = await make.tree(2, member)
    organization = await conn.fetchval("SELECT id FROM organizations WHERE slug = $1", slug)
    await make.member(organization, member)
    private = await make.project(organization, key="HIDDEN", visibility="PRIVATE")
    await make.issue(private, member, title="private issue")

    anonymous = await run(SUBTREE, {"slug": slug})
    signed_in = await run(SUBTREE, {"slug": slug}, viewer="subtree-member")

    def keys(outcome: Any) -> list[str]:
        return [e["node"]["key"] for e in outcome.data["organization"]["projects"]["edges"]]

    assert "HIDDEN" not in keys(anonymous) and "HIDDEN" in keys(signed_in)
    assert anonymous.data["organization"]["projects"]["totalCount"] == 2
    assert signed_in.data["organization"]["projects"]["totalCount"] == 3


async def test_a_list_whose_arguments_are_refused_reports_its_error(run: Run, make: Any) -> None:
    """A malformed cursor deep in a written subtree is the same BAD_USER_INPUT error, at
    the same path, as the standard executor reports, and the null it leaves propagates
    as there (to the organization: every field between is non-null)."""
    author = await make.user()
    slug = await make.tree(2, author)

    outcome = await run(SUBTREE, {"slug": slug, "after": "not-a-cursor"})

    assert set(outcome.codes) == {"BAD_USER_INPUT"}
    assert outcome.errors[0]["path"][:3] == ["organization", "projects", "edges"]
    assert outcome.errors[0]["path"][-1] == "later"
    assert outcome.data == {"organization": None}
