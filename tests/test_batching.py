"""Nested lists cost one SQL statement per level, whatever their sizes."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest

from core import encoding
from domain.context import build_context
from domain.policy import ANONYMOUS
from execution.documents import format_errors
from loaders.rows import COLUMNS
from tests.conftest import RecordingSession, Run, services_with, viewer_for
from tests.conftest import _compiled as compiled_executor

NESTED = """
query Nested($slug: String!, $n: Int!) {
  organization(slug: $slug) {
    projects(first: $n) {
      nodes {
        key
        issues(first: $n) {
          nodes {
            number
            author { login }
            assignee { login }
            labels(first: $n) { nodes { name } }
            comments(first: $n) { nodes { body author { login } } }
          }
        }
      }
    }
  }
}
"""
# The same, but each issue asks Python (a permission of the viewer's): PostgreSQL writes
# none of the projects or issues, so each list is read by a statement of its own.
IN_PYTHON = NESTED.replace("number\n", "number viewerCanClose\n")
assert IN_PYTHON != NESTED
# organization, projects, issues, users (authors and assignees together), labels, comments,
# comment authors: one statement per level.
LEVELS = 7


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "member"])
async def test_nested_query_costs_one_statement_per_level_at_any_size(
    run: Run, make: Any, signed_in: bool
) -> None:
    user = await make.user()
    slug = await make.tree(20, user, visibility="PRIVATE" if signed_in else "PUBLIC")
    viewer = None
    if signed_in:
        org = await make.conn.fetchval("SELECT id FROM organizations WHERE slug = $1", slug)
        await make.member(org, user, "MEMBER")
        viewer = await viewer_for(
            make.conn, await make.conn.fetchval("SELECT login FROM users WHERE id = $1", user)
        )

    small = await run(NESTED, {"slug": slug, "n": 2}, viewer=viewer)
    large = await run(NESTED, {"slug": slug, "n": 20}, viewer=viewer)

    assert small.errors == [] and large.errors == []
    projects = large.data["organization"]["projects"]["nodes"]
    assert len(projects) == 20
    assert all(len(p["issues"]["nodes"]) == 20 for p in projects)
    issue = projects[0]["issues"]["nodes"][0]
    assert len(issue["labels"]["nodes"]) == 20 and len(issue["comments"]["nodes"]) == 20
    assert len(small.statements) == len(large.statements) == LEVELS


async def test_access_flags_and_emails_add_a_constant_number_of_statements(
    run: Run, make: Any
) -> None:
    user = await make.user()
    slug = await make.tree(8, user)
    org = await make.conn.fetchval("SELECT id FROM organizations WHERE slug = $1", slug)
    admin = await make.user(login="batch-admin")
    await make.member(org, admin, "ADMIN")
    await make.conn.execute(  # the authors of issues and comments are members
        "INSERT INTO memberships (organization_id, user_id, role) SELECT DISTINCT $1::bigint,"
        " author_id, 'MEMBER' FROM comments WHERE author_id <> $2",
        org,
        user,
    )
    await make.member(org, user, "MEMBER")
    query = """query($s: String!, $n: Int!) { organization(slug: $s) { projects(first: $n) {
      nodes { viewerCanUpdate issues(first: $n) { nodes { viewerCanUpdate viewerCanClose
        author { email } comments(first: $n) { nodes { viewerCanDelete
          author { email } } } } } } } } }"""

    small = await run(query, {"s": slug, "n": 2}, viewer="batch-admin")
    large = await run(query, {"s": slug, "n": 8}, viewer="batch-admin")

    assert small.errors == [] and large.errors == []  # an admin reads members' emails
    # organization, projects, issues, issue authors and their organizations, comments,
    # comment authors and their organizations: the access flags reuse rows already loaded
    assert len(small.statements) == len(large.statements) == 8


async def test_total_count_runs_only_when_selected(run: Run, make: Any) -> None:
    user = await make.user()
    slug = await make.tree(3, user)
    query = "query($s: String!) { organization(slug: $s) { projects { %s nodes { key } } } }"

    without = await run(query % "", {"s": slug})
    with_count = await run(query % "totalCount", {"s": slug})

    assert without.errors == [] and with_count.errors == []
    assert with_count.data["organization"]["projects"]["totalCount"] == 3
    assert not any("count(" in sql for sql, _ in without.statements)
    assert len(with_count.statements) == len(without.statements) + 1


async def test_total_counts_of_many_parents_are_one_statement(run: Run, make: Any) -> None:
    user = await make.user()
    slug = await make.tree(5, user)
    query = """query($s: String!) { organization(slug: $s) { projects {
        nodes { issues(first: 1) { totalCount } labels(first: 1) { totalCount } } } } }"""

    outcome = await run(query, {"s": slug})

    counts = [sql for sql, _ in outcome.statements if "count(" in sql]
    assert len(counts) == 2
    assert outcome.data["organization"]["projects"]["nodes"][0]["issues"]["totalCount"] == 5


# (issues that ask Python, `viewerCanClose`, are read by statements of their own)
LEAN = """query($slug: String!) { organization(slug: $slug) { projects(first: 2) { nodes {
  issues(first: 2) { nodes { number viewerCanClose author { login }
    comments(first: 2) { nodes { id } } } }
} } } }"""
FULL = """query($slug: String!) { organization(slug: $slug) { projects(first: 2) { nodes {
  issues(first: 2) { nodes { number viewerCanClose title body author { login name createdAt }
    comments(first: 2) { nodes { id body updatedAt } } } }
} } } }"""


async def test_a_query_reads_only_the_optional_columns_it_selects(
    conn: asyncpg.Connection, make: Any
) -> None:
    slug = await make.tree(2, await make.user())

    async def statements(query: str) -> dict[str, str]:
        session = RecordingSession(conn)
        context = build_context(session, ANONYMOUS, services_with())
        result = await compiled_executor.execute(
            compiled_executor.prepare(query), context, {"slug": slug}
        )
        await session.close()
        assert not result.errors
        return {table: sql for sql, _ in session.log for table in TABLES if table in sql}

    lean, full = await statements(LEAN), await statements(FULL)
    for table, column in [("comments c", "body"), ("comments c", "updated_at")]:
        assert f"NULL AS {column}" in lean[table] and f"c.{column}" in full[table]
    for column in ("title", "body"):
        assert f"NULL AS {column}" in lean["issues i"] and f"i.{column}" in full["issues i"]
    # the authors come with the issues that point to them
    for column in ("name", "created_at"):
        assert f"NULL AS {column}" in lean["issues i"] and f"j0.{column}" in full["issues i"]
    # what access rules, keys and orders read is always there
    assert "i.author_id" in lean["issues i"] and "i.created_at" in lean["issues i"]


TABLES = ("comments c", "issues i")


async def compiled_statements(
    conn: asyncpg.Connection, query: str, variables: dict[str, Any]
) -> tuple[Any, list[str]]:
    session = RecordingSession(conn)
    context = build_context(session, ANONYMOUS, services_with())
    result = await compiled_executor.execute(compiled_executor.prepare(query), context, variables)
    await session.close()
    assert not result.errors, result.errors
    return as_sent(result.data), [sql for sql, _ in session.log]


def as_sent(data: Any) -> Any:
    """Data as the client reads it: objects PostgreSQL wrote are JSON text until encoded."""
    return orjson.loads(encoding.dumps(data))


@pytest.mark.parametrize("size", [2, 20])
@pytest.mark.parametrize(
    ("query", "expected"),
    # PostgreSQL writes the organization whole, with its projects, their issues, labels,
    # comments and authors inside
    [(NESTED, 1), (IN_PYTHON, 5)],
    # the organization, then one statement per list: projects, issues (with authors and
    # assignees), labels, comments (with authors)
    ids=["written", "in-python"],
)
async def test_compiled_queries_cost_one_statement_per_list_level(
    conn: asyncpg.Connection, run: Run, make: Any, size: int, query: str, expected: int
) -> None:
    """Authors and assignees come in the statement of the issues and comments that point
    to them, and lists inside an object PostgreSQL writes in its statement: the count of
    statements does not depend on the sizes."""
    user = await make.user()
    slug = await make.tree(20, user)
    variables = {"slug": slug, "n": size}

    data, statements = await compiled_statements(conn, query, variables)

    projects = data["organization"]["projects"]["nodes"]
    assert len(projects) == size and all(len(p["issues"]["nodes"]) == size for p in projects)
    authors = [i["author"] for p in projects for i in p["issues"]["nodes"]]
    assert all(author and author["login"] for author in authors)
    assert len(statements) == expected
    assert not any(sql.lstrip().startswith("SELECT u.") for sql in statements)
    assert data == (await run(query, variables)).data  # the standard executor's answer


async def test_a_joined_row_is_the_row_its_loader_reads(
    conn: asyncpg.Connection, make: Any
) -> None:
    """A user read with an issue is the user of `user(login:)`: same fields, same access."""
    author = await make.user(login="joined-author", name="Joined Author")
    slug = await make.tree(1, author)
    query = """query($slug: String!) { organization(slug: $slug) { projects(first: 1) {
      nodes { issues(first: 1) { nodes { author { id login name createdAt email } } } } } }
      user(login: "joined-author") { id login name createdAt } }"""

    session = RecordingSession(conn)
    context = build_context(session, ANONYMOUS, services_with())
    result = await compiled_executor.execute(
        compiled_executor.prepare(query), context, {"slug": slug}
    )
    await session.close()

    data = as_sent(result.data)
    issue = data["organization"]["projects"]["nodes"][0]["issues"]["nodes"][0]
    found = {k: v for k, v in issue["author"].items() if k != "email"}
    assert found == {**data["user"]}
    assert found["name"] == "Joined Author"
    assert issue["author"]["email"] is None  # anonymous viewers read no emails
    assert [e["extensions"]["code"] for e in format_errors(result.errors)] == ["FORBIDDEN"]


async def test_rows_know_which_columns_may_be_null(conn: asyncpg.Connection) -> None:
    """The compiled executor checks for NULL only where a table allows it: the row types'
    `… | None` annotations must be exactly the columns without NOT NULL."""
    for columns in COLUMNS.values():
        nullable = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1"
            " AND is_nullable = 'YES' AND column_name = ANY($2::text[])",
            columns.table,
            list(columns.names),
        )
        assert {r["column_name"] for r in nullable} == columns.nullable, columns.table
