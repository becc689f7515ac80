"""Past the 10,000th issue, a page is still an index seek from the cursor, never OFFSET."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from tests.conftest import Run

PAGE = """
query($org: String!, $after: String, $order: IssueOrder) {
  organization(slug: $org) { project(key: "DEEP") {
    issues(first: 50, after: $after, orderBy: $order) {
      nodes { number } pageInfo { endCursor }
    }
  } }
}
"""


async def _deep_project(make: Any, conn: asyncpg.Connection, size: int) -> str:
    user = await make.user()
    org = await make.organization(slug="deep-org")
    project = await make.project(org, key="DEEP")
    await conn.execute(
        """
        INSERT INTO issues (project_id, number, title, author_id, priority, created_at,
                            updated_at)
        SELECT $1, g, 'Issue ' || g, $2, g % 5, timestamptz '2026-01-01' + g * interval '1 s',
               timestamptz '2026-01-01' + g * interval '1 s'
        FROM generate_series(1, $3) g
        """,
        project,
        user,
        size,
    )
    await conn.execute("ANALYZE issues")
    return "deep-org"


async def test_page_past_ten_thousand_is_an_index_seek(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    slug = await _deep_project(make, conn, 12_000)
    for order in [None, {"field": "PRIORITY", "direction": "DESC"}]:
        cursor = None
        for _ in range(2):  # walk a little, then jump far with a cursor taken from deep down
            page = await run(PAGE, {"org": slug, "after": cursor, "order": order})
            cursor = page.data["organization"]["project"]["issues"]["pageInfo"]["endCursor"]
        deep = await _cursor_at(run, slug, order, 10_500)

        outcome = await run(PAGE, {"org": slug, "after": deep, "order": order})

        numbers = [n["number"] for n in outcome.data["organization"]["project"]["issues"]["nodes"]]
        assert len(numbers) == 50
        sql, args = outcome.statements[-1]
        assert "OFFSET" not in sql.upper()
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        nodes = list(_plan_nodes(json.loads(plan)[0]["Plan"]))
        scans = [n for n in nodes if n.get("Relation Name") == "issues"]
        assert [n["Node Type"] for n in scans] == ["Index Scan"], nodes
        # the project's index, or (here, where one project holds every issue, as cheap)
        # the index of the same order across projects that searchIssues walks
        assert scans[0]["Index Name"] in {
            "issues_project_created",
            "issues_project_priority",
            "issues_created",
            "issues_priority",
        }
        assert not any(n["Node Type"] == "Sort" for n in nodes)


async def _cursor_at(run: Run, slug: str, order: Any, position: int) -> str:
    """The cursor of the issue at `position` in `order`, reached by walking 100 at a time."""
    query = PAGE.replace("first: 50", "first: 100")
    cursor = None
    for _ in range(position // 100):
        page = await run(query, {"org": slug, "after": cursor, "order": order})
        cursor = page.data["organization"]["project"]["issues"]["pageInfo"]["endCursor"]
    assert cursor is not None
    return cursor


def _plan_nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)
