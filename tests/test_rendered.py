"""Objects PostgreSQL writes as JSON (loaders/rendered.py) are the objects Python builds.

`run` answers each query through graphql-core and through the compiled executor and
asserts the same JSON; these tests choose values where the two could part (escapes,
unicode, timestamps with and without fractions, nulls, aliases, ids) and check that the
compiled answer really came from PostgreSQL's text.
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
            # an issue with a comment list is built in Python; its author is written
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
    return found


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
    # 2 authors, 1 assignee, 3 comments, 1 label
    assert await fragments(conn, ISSUE_PAGE, {"slug": "rendered-org"}) == 7


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
