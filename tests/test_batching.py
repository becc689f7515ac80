"""Nested lists cost one SQL statement per level, whatever their sizes."""

from __future__ import annotations

from typing import Any

from tests.conftest import Run

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
# organization, projects, issues, users (authors and assignees together), labels, comments,
# comment authors: one statement per level.
LEVELS = 7


async def test_nested_query_costs_one_statement_per_level_at_any_size(run: Run, make: Any) -> None:
    user = await make.user()
    slug = await make.tree(20, user)

    small = await run(NESTED, {"slug": slug, "n": 2})
    large = await run(NESTED, {"slug": slug, "n": 20})

    assert small.errors == [] and large.errors == []
    projects = large.data["organization"]["projects"]["nodes"]
    assert len(projects) == 20
    assert all(len(p["issues"]["nodes"]) == 20 for p in projects)
    issue = projects[0]["issues"]["nodes"][0]
    assert len(issue["labels"]["nodes"]) == 20 and len(issue["comments"]["nodes"]) == 20
    assert len(small.statements) == len(large.statements) == LEVELS


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
