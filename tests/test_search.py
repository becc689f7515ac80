"""searchIssues: GitHub's query language over every issue the viewer may see."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest

from tests.conftest import Run

SEARCH = """
query($q: String!, $first: Int, $after: String, $last: Int, $before: String) {
  searchIssues(query: $q, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { cursor node { number title state priority } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def _titles(run: Run, query: str, viewer: str | None = None) -> list[str]:
    outcome = await run(SEARCH, {"q": query, "first": 50}, viewer=viewer)
    assert outcome.errors == [], outcome.errors
    return [e["node"]["title"] for e in outcome.data["searchIssues"]["edges"]]


async def _world(make: Any) -> dict[str, Any]:
    author = await make.user(login="s-author")
    other = await make.user(login="s-other")
    member = await make.user(login="s-member")
    org = await make.organization(slug="s-org")
    await make.member(org, member)
    await make.member(org, author)
    web = await make.project(org, key="SWEB")
    ops = await make.project(org, key="SOPS", visibility="PRIVATE")
    bug = await make.label(web, name="Bug")
    await make.issue(web, author, title="Login crash on mobile", body="the app crashes")
    second = await make.issue(
        web,
        other,
        title="Dark mode",
        body="please add a login button",
        assignee_id=author,
        priority=4,
        state="CLOSED",
    )
    await make.conn.execute("INSERT INTO issue_labels VALUES ($1, $2)", second, bug)
    await make.issue(ops, author, title="Secret crash", body="private login trouble")
    return {"org": org}


async def test_words_match_title_above_body_within_what_the_viewer_may_see(
    run: Run, make: Any
) -> None:
    await _world(make)
    assert await _titles(run, "login org:s-org") == ["Login crash on mobile", "Dark mode"]
    # a title match ranks first; equal ranks are newest first
    assert await _titles(run, "login org:s-org", "s-member") == [
        "Login crash on mobile",
        "Secret crash",
        "Dark mode",
    ]
    assert await _titles(run, "crash -mobile org:s-org", "s-member") == ["Secret crash"]
    assert await _titles(run, '"login button" org:s-org') == ["Dark mode"]


async def test_qualifiers_narrow(run: Run, make: Any) -> None:
    await _world(make)
    assert await _titles(run, "org:s-org is:closed") == ["Dark mode"]
    assert await _titles(run, "org:s-org label:bug") == ["Dark mode"]
    assert await _titles(run, "org:s-org -label:BUG sort:created-asc") == ["Login crash on mobile"]
    assert await _titles(run, "org:s-org assignee:s-author") == ["Dark mode"]
    assert await _titles(run, "org:s-org priority:>=3 author:s-other") == ["Dark mode"]
    assert await _titles(run, "project:s-org/sops", "s-member") == ["Secret crash"]
    assert await _titles(run, "project:s-org/sops") == []
    assert await _titles(run, "org:s-org author:@me", "s-author") == [
        "Secret crash",
        "Login crash on mobile",
    ]


async def test_a_bad_qualifier_names_itself_and_its_position(run: Run) -> None:
    outcome = await run(SEARCH, {"q": "crash is:open colour:red"})
    assert outcome.data is None
    [error] = outcome.errors
    extensions = error["extensions"]
    assert (extensions["code"], extensions["qualifier"], extensions["position"]) == (
        "BAD_USER_INPUT",
        "colour",
        15,
    )
    assert "`colour:`" in error["message"] and "position 15" in error["message"]


NESTED_SEARCH = """
query($q: String!, $n: Int!) {
  searchIssues(query: $q, first: $n) {
    totalCount
    nodes {
      number title identifier url bodyHTML
      author { login }
      assignee { login }
      project { key organization { slug } }
      labels(first: $n) { nodes { name } }
      comments(first: $n) { nodes { body bodyHTML author { login } } }
    }
  }
  organization(slug: "s-tree") {
    issues(first: $n, orderBy: {field: UPDATED_AT, direction: DESC}, filterBy: {states: [OPEN]}) {
      nodes { number author { login } labels(first: $n) { nodes { name } } }
    }
  }
}
"""


@pytest.mark.parametrize(
    "query", ["org:s-tree label:label-1", "issue org:s-tree sort:comments-desc"]
)
async def test_search_costs_the_same_statements_at_any_page_size(
    run: Run, make: Any, query: str
) -> None:
    user = await make.user()
    slug = await make.tree(12, user)
    await make.conn.execute("UPDATE organizations SET slug = 's-tree' WHERE slug = $1", slug)

    small = await run(NESTED_SEARCH, {"q": query, "n": 2})
    large = await run(NESTED_SEARCH, {"q": query, "n": 12})

    assert small.errors == [] and large.errors == []
    assert len(small.data["searchIssues"]["nodes"]) == 2
    assert len(large.data["searchIssues"]["nodes"]) == 12
    assert large.data["searchIssues"]["totalCount"] == 144
    assert len(large.data["organization"]["issues"]["nodes"]) == 12
    assert len(small.statements) == len(large.statements)


COUNTLESS = '{ searchIssues(query: "crash") { nodes { number } } }'
COUNTED = '{ searchIssues(query: "crash") { totalCount nodes { number } } }'


async def test_totalcount_is_counted_only_when_asked(run: Run, make: Any) -> None:
    await _world(make)
    without = await run(COUNTLESS)
    counted = await run(COUNTED)
    assert len(counted.statements) == len(without.statements) + 1
    assert not any("count(*) AS total" in sql for sql, _ in without.statements)


PROJECTS = 20
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


async def _many_issues(conn: asyncpg.Connection, make: Any, count: int) -> None:
    """`count` issues in 20 projects (a third public): words each in a quarter of them,
    `walrus` in 1 of 100, `zeppelin` in 1 of 250."""
    user = await make.user(login="s-bulk")
    org = await make.organization(slug="s-bulk")
    for n in range(PROJECTS):
        await make.project(org, key=f"B{n}", visibility="PRIVATE" if n % 3 else "PUBLIC")
    await conn.execute(
        """
        INSERT INTO issues (project_id, number, title, body, author_id, state, priority,
                            created_at, updated_at)
        SELECT p.id, g, ($3::text[])[1 + g % 8] || ' ' || ($3::text[])[1 + (g / 8) % 8],
               CASE WHEN g % 250 = 0 THEN 'zeppelin ' ELSE '' END
               || CASE WHEN g % 100 = 0 THEN 'walrus ' ELSE '' END
               || ($3::text[])[1 + (g / 64) % 8] || ' trouble and more text',
               $2, CASE WHEN g % 3 = 0 THEN 'CLOSED' ELSE 'OPEN' END, g % 5,
               now() - make_interval(mins => g), now() - make_interval(mins => g % 977)
        FROM projects p, generate_series(1, $1) g WHERE p.organization_id = $4
        """,
        count // PROJECTS,
        user,
        list(WORDS),
        org,
    )
    await conn.execute("ANALYZE issues, projects")


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _plan_nodes(child)
    return found


@pytest.mark.parametrize(
    "query",
    ["zeppelin", "zeppelin is:open sort:updated-desc", "walrus priority:>=3 is:open"],
)
async def test_word_searches_read_the_gin_index_not_the_whole_table(
    run: Run, make: Any, conn: asyncpg.Connection, query: str
) -> None:
    # 40,000 issues: enough that PostgreSQL's own costs choose the index (no planner
    # setting is changed)
    await _many_issues(conn, make, 40_000)
    outcome = await run(SEARCH, {"q": query, "first": 20}, viewer=None)
    assert outcome.errors == []
    searches = [s for s in outcome.statements if "search_vector @@" in s[0]]
    assert len(searches) == 2  # the page and its totalCount
    for sql, args in searches:
        explained = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
        plan = orjson.loads(explained)[0]["Plan"]
        nodes = _plan_nodes(plan)
        text = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
        on_issues = [n for n in nodes if n.get("Relation Name") == "issues"]
        assert not [n for n in on_issues if n["Node Type"] == "Seq Scan"], text
        assert any(n.get("Index Name") == "issues_search" for n in nodes), text


async def test_a_common_word_by_relevance_walks_the_update_order_from_the_cursor(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    # `alpha` is in about a third of 40,000 issues: ranking every match would sort
    # thousands of rows for a page. What runs instead is a walk of issues_updated that
    # stops at a page of title matches (the body-only tier and the GIN index are not
    # read), and the page after a cursor starts its walk at the cursor (an index
    # condition), not at the top.
    await _many_issues(conn, make, 40_000)
    first = await run(SEARCH, {"q": "alpha is:open", "first": 20})
    after = first.data["searchIssues"]["pageInfo"]["endCursor"]
    second = await run(SEARCH, {"q": "alpha is:open", "first": 20, "after": after})
    assert second.errors == []
    assert len(second.data["searchIssues"]["edges"]) == 20
    assert all(
        e["node"]["title"].startswith("alpha ") or " alpha" in e["node"]["title"]
        for e in second.data["searchIssues"]["edges"]
    )
    for outcome, seeks in ((first, False), (second, True)):
        [(sql, args)] = [s for s in outcome.statements if "UNION ALL" in s[0]]  # the page
        explained = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
        nodes = _plan_nodes(orjson.loads(explained)[0]["Plan"])
        ran = [n for n in nodes if n.get("Relation Name") == "issues" and n["Actual Loops"]]
        assert [n.get("Index Name") for n in ran] == ["issues_updated"], ran
        [walk] = ran
        assert walk["Actual Rows"] < 1_000  # a page of 21 where 1 issue in ~9 matches
        assert ("updated_at" in walk.get("Index Cond", "")) is seeks, walk


async def test_mentions_and_involves_find_whom_an_issue_concerns(run: Run, make: Any) -> None:
    from execution.ids import encode_id

    author = await make.user(login="m-author")
    await make.user(login="m-named")
    commenter = await make.user(login="m-commenter")
    org = await make.organization(slug="m-org")
    for user in (author, commenter):
        await make.member(org, user)
    project = encode_id("Project", await make.project(org, key="MEN"))

    async def create(title: str, body: str) -> str:
        outcome = await run(
            """mutation($p: ID!, $t: String!, $b: String!) { createIssue(input: {projectId: $p,
               title: $t, body: $b}) { issue { id } } }""",
            {"p": project, "t": title, "b": body},
            viewer="m-author",
        )
        return str(outcome.data["createIssue"]["issue"]["id"])

    await create("Named in the body", "cc @m-named")
    commented = await create("Named in a comment", "nothing here")
    await create("Nobody named", "`@m-named` in code is no mention")
    await run(
        """mutation($i: ID!) { addComment(input: {issueId: $i, body: "@M-Named look"}) {
           comment { id } } }""",
        {"i": commented},
        viewer="m-commenter",
    )

    named = ["Named in a comment", "Named in the body"]  # newest first
    assert await _titles(run, "mentions:m-named") == named
    assert await _titles(run, "org:m-org -mentions:m-named") == ["Nobody named"]
    assert await _titles(run, "involves:m-commenter") == ["Named in a comment"]
    assert await _titles(run, "involves:@me sort:created-asc", viewer="m-commenter") == [
        "Named in a comment"
    ]
    assert len(await _titles(run, "involves:m-author")) == 3
    assert await _titles(run, "mentions:m-author") == []

    listed = await run(
        """query($p: ID!) { node(id: $p) { ... on Project {
             issues(filterBy: {mentioned: "M-NAMED"}) { totalCount nodes { title } } } } }""",
        {"p": project},
    )
    assert listed.errors == []
    found = listed.data["node"]["issues"]
    assert (found["totalCount"], [n["title"] for n in found["nodes"]]) == (2, named[::-1])
    authored = await run(
        """{ user(login: "m-author") { authoredIssues(filterBy: {mentioned: "m-named"}) {
             totalCount } } }"""
    )
    assert authored.data["user"]["authoredIssues"]["totalCount"] == 2


def _cursor(value: Any, pk: int) -> str:
    import base64

    raw = orjson.dumps([1, "RELEVANCE", value, pk])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "value",
    [0.0607927, [True], [1, "2026-01-01T00:00:00+00:00"], [True, "yesterday"], "true"],
)
async def test_a_relevance_cursor_holds_its_tier_and_time_or_is_refused(
    run: Run, make: Any, value: Any
) -> None:
    await _world(make)
    first = await run(SEARCH, {"q": "login org:s-org", "first": 1})
    [edge] = first.data["searchIssues"]["edges"]
    after = await run(SEARCH, {"q": "login org:s-org", "first": 5, "after": edge["cursor"]})
    assert [e["node"]["title"] for e in after.data["searchIssues"]["edges"]] == ["Dark mode"]

    outcome = await run(SEARCH, {"q": "login org:s-org", "first": 5, "after": _cursor(value, 1)})
    assert outcome.data is None
    [error] = outcome.errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "not a valid cursor" in error["message"]


async def _every_page(
    conn: asyncpg.Connection, spec: Any, query: str, size: int, forward: bool
) -> list[int]:
    """The ids of every page of a search by relevance, one way, read by the loaders'
    statements themselves (every project visible)."""
    from dataclasses import replace

    from domain.search import parse
    from loaders._keyset import PageRequest, Scope, page_statement, split_pages

    found = parse(query)
    request = PageRequest(size, found.order, backward=not forward, filters=found.filter)
    ids: list[int] = []
    for _ in range(500):
        sql, args = page_statement(spec, request, Scope(all_projects=True), [0])
        page = split_pages(spec, request, await conn.fetch(sql, *args)).get(0)
        if page is None:
            return ids
        ids = ids + [row.id for row in page.rows] if forward else [r.id for r in page.rows] + ids
        if not (page.has_next_page if forward else page.has_previous_page):
            return ids
        edge = page.rows[-1] if forward else page.rows[0]
        request = replace(request, cursor=found.order.key(edge))
    raise AssertionError("too many pages")


@pytest.mark.parametrize("walk", [1, 6, 40])
async def test_a_walk_cut_short_finds_the_same_pages(
    make: Any, conn: asyncpg.Connection, walk: int
) -> None:
    # Where a tier's walk reads too few issues to fill a page, the tier is read from the
    # GIN index instead: the pages are the same, both ways, whatever the walk's bound
    from dataclasses import replace

    from loaders.issues import SEARCH

    await _many_issues(conn, make, 2_000)
    short = replace(SEARCH, walk=walk)
    for query in ("alpha", "walrus", "alpha -bravo", "trouble", "charlie is:closed"):
        for forward in (True, False):
            expected = await _every_page(conn, SEARCH, query, 25, forward)
            assert expected, query
            assert await _every_page(conn, short, query, 25, forward) == expected, query
