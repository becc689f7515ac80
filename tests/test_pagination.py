"""Relay connections: keyset cursors both ways, ordering, filters, limits, bad arguments."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.conftest import Run

ISSUES = """
query($org: String!, $key: String!, $first: Int, $after: String, $last: Int, $before: String,
      $order: IssueOrder, $filter: IssueFilters) {
  organization(slug: $org) { project(key: $key) {
    issues(first: $first, after: $after, last: $last, before: $before, orderBy: $order,
           filterBy: $filter) {
      totalCount
      edges { cursor node { number priority state } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  } }
}
"""


async def _project(make: Any, issues: int = 7) -> tuple[str, int, int]:
    user = await make.user()
    org = await make.organization()
    slug = await make.conn.fetchval("SELECT slug FROM organizations WHERE id = $1", org)
    project = await make.project(org, key="PAGE")
    for n in range(1, issues + 1):
        await make.issue(project, user, priority=n % 3, state="CLOSED" if n % 2 else "OPEN")
    return slug, project, user


def _issues(outcome: Any) -> dict[str, Any]:
    assert outcome.errors == [], outcome.errors
    return outcome.data["organization"]["project"]["issues"]  # type: ignore[no-any-return]


async def test_forward_pages_visit_every_issue_once_in_order(run: Run, make: Any) -> None:
    slug, _, _ = await _project(make)
    seen: list[int] = []
    after = None
    while True:
        page = _issues(await run(ISSUES, {"org": slug, "key": "PAGE", "first": 3, "after": after}))
        seen += [e["node"]["number"] for e in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    assert page["totalCount"] == 7


async def test_backward_pages_visit_every_issue_once_in_order(run: Run, make: Any) -> None:
    slug, _, _ = await _project(make)
    seen: list[int] = []
    before = None
    while True:
        page = _issues(await run(ISSUES, {"org": slug, "key": "PAGE", "last": 3, "before": before}))
        seen = [e["node"]["number"] for e in page["edges"]] + seen
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert seen == [1, 2, 3, 4, 5, 6, 7]


async def test_cursors_stay_valid_when_rows_are_inserted(run: Run, make: Any) -> None:
    slug, project, user = await _project(make)
    first = _issues(
        await run(
            ISSUES,
            {
                "org": slug,
                "key": "PAGE",
                "first": 3,
                "order": {"field": "CREATED_AT", "direction": "DESC"},
            },
        )
    )
    await make.issue(project, user)  # newest: sorts before the page already read
    rest = _issues(
        await run(
            ISSUES,
            {
                "org": slug,
                "key": "PAGE",
                "first": 10,
                "after": first["pageInfo"]["endCursor"],
                "order": {"field": "CREATED_AT", "direction": "DESC"},
            },
        )
    )
    numbers = [e["node"]["number"] for e in first["edges"] + rest["edges"]]
    assert numbers == [7, 6, 5, 4, 3, 2, 1]


async def test_order_by_priority_descending_breaks_ties_by_id(run: Run, make: Any) -> None:
    slug, _, _ = await _project(make)
    page = _issues(
        await run(
            ISSUES,
            {
                "org": slug,
                "key": "PAGE",
                "first": 4,
                "order": {"field": "PRIORITY", "direction": "DESC"},
            },
        )
    )
    nxt = _issues(
        await run(
            ISSUES,
            {
                "org": slug,
                "key": "PAGE",
                "first": 10,
                "after": page["pageInfo"]["endCursor"],
                "order": {"field": "PRIORITY", "direction": "DESC"},
            },
        )
    )
    got = [(e["node"]["priority"], e["node"]["number"]) for e in page["edges"] + nxt["edges"]]
    assert got == [(2, 5), (2, 2), (1, 7), (1, 4), (1, 1), (0, 6), (0, 3)]


async def test_filters_apply_to_the_page_and_the_count(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    slug, project, user = await _project(make)
    login = await conn.fetchval("SELECT login FROM users WHERE id = $1", user)
    bug = await make.label(project, name="bug")
    await conn.execute(
        "UPDATE issues SET assignee_id = $1 WHERE project_id = $2 AND number IN (2, 3)",
        user,
        project,
    )
    await conn.execute(
        "INSERT INTO issue_labels SELECT id, $1 FROM issues WHERE project_id ="
        " $2 AND number IN (3, 4)",
        bug,
        project,
    )

    open_ = _issues(await run(ISSUES, {"org": slug, "key": "PAGE", "filter": {"states": ["OPEN"]}}))
    mine = _issues(
        await run(ISSUES, {"org": slug, "key": "PAGE", "filter": {"assignee": login.upper()}})
    )
    bugs_open = _issues(
        await run(
            ISSUES, {"org": slug, "key": "PAGE", "filter": {"labels": ["bug"], "states": ["OPEN"]}}
        )
    )

    assert [e["node"]["number"] for e in open_["edges"]] == [2, 4, 6]
    assert open_["totalCount"] == 3
    assert [e["node"]["number"] for e in mine["edges"]] == [2, 3] and mine["totalCount"] == 2
    assert [e["node"]["number"] for e in bugs_open["edges"]] == [4]
    assert bugs_open["totalCount"] == 1


async def test_default_page_size_is_twenty(run: Run) -> None:
    outcome = await run(
        '{ organization(slug: "acme") { project(key: "WEB") {'
        " issues { nodes { number } pageInfo { hasNextPage } } } } }"
    )
    issues = outcome.data["organization"]["project"]["issues"]
    assert len(issues["nodes"]) == 20 and issues["pageInfo"]["hasNextPage"] is True


async def test_empty_connection(run: Run, make: Any) -> None:
    slug, _, _ = await _project(make, issues=0)
    page = _issues(await run(ISSUES, {"org": slug, "key": "PAGE", "first": 5}))
    assert page == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }


async def test_bad_page_arguments_are_bad_user_input(run: Run, make: Any) -> None:
    slug, _, _ = await _project(make)
    by_priority = _issues(
        await run(
            ISSUES,
            {
                "org": slug,
                "key": "PAGE",
                "first": 1,
                "order": {"field": "PRIORITY", "direction": "ASC"},
            },
        )
    )["pageInfo"]["endCursor"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"first": 101}, "between 0 and 100"),
        ({"last": -1}, "between 0 and 100"),
        ({"first": 2, "last": 2}, "both `first` and `last`"),
        ({"after": "not-a-cursor"}, "`after` argument is not a valid cursor"),
        ({"before": "WzEsIkNSRUFURURfQVQiLDEsMV0"}, "`before` argument is not a valid cursor"),
        ({"after": "bm9wZQ"}, "not a valid cursor"),
        ({"after": by_priority}, "another ordering"),
        ({"first": 1, "before": by_priority}, "Use `first` with `after`"),
    ]
    for arguments, message in cases:
        outcome = await run(ISSUES, {"org": slug, "key": "PAGE", **arguments})
        assert outcome.codes == ["BAD_USER_INPUT"], arguments
        assert message in outcome.errors[0]["message"], (arguments, outcome.errors)
        assert outcome.errors[0]["path"] == ["organization", "project", "issues"]


async def test_timestamps_read_back_exactly_in_utc_and_page_by_their_microseconds(
    run: Run, make: Any
) -> None:
    slug, project, author = await _project(make, issues=0)
    written = [
        "2026-03-01 10:00:00.5+02",  # another zone, a fraction PostgreSQL prints as .5
        "2026-03-01 08:00:00.500001+00",
        "2026-03-01 08:00:00.000001+00",
        "2026-03-01 08:00:00+00",
    ]
    for number, text in enumerate(written, start=1):
        await make.issue(project, author, number=number)
        await make.conn.execute(
            "UPDATE issues SET created_at = $1::text::timestamptz"
            " WHERE project_id = $2 AND number = $3",
            text,
            project,
            number,
        )
    query = """query($org: String!, $after: String) { organization(slug: $org) {
      project(key: "PAGE") { issues(first: 2, after: $after) {
        nodes { number createdAt } pageInfo { endCursor } } } } }"""
    first = await run(query, {"org": slug})
    page = first.data["organization"]["project"]["issues"]
    assert page["nodes"] == [
        {"number": 4, "createdAt": "2026-03-01T08:00:00Z"},
        {"number": 3, "createdAt": "2026-03-01T08:00:00.000001Z"},
    ]
    second = await run(query, {"org": slug, "after": page["pageInfo"]["endCursor"]})
    assert second.data["organization"]["project"]["issues"]["nodes"] == [
        {"number": 1, "createdAt": "2026-03-01T08:00:00.500000Z"},
        {"number": 2, "createdAt": "2026-03-01T08:00:00.500001Z"},
    ]


def test_pages_split_right_whichever_order_the_rows_arrive_in() -> None:
    from loaders._keyset import BY_ID, PageRequest, split_pages
    from loaders.comments import COMMENTS_BY_ISSUE

    def record(issue: int, comment: int) -> tuple[Any, ...]:
        return (issue, comment, issue, 1, f"comment {comment}", None, None)

    request = PageRequest(limit=2, order=BY_ID)
    together = [record(7, 1), record(7, 2), record(7, 3), record(9, 4)]
    interleaved = [record(7, 1), record(9, 4), record(7, 2), record(7, 3)]
    for records in (together, interleaved):
        pages = split_pages(COMMENTS_BY_ISSUE, request, records)
        assert [row.id for row in pages[7].rows] == [1, 2] and pages[7].has_next_page
        assert [row.id for row in pages[9].rows] == [4] and not pages[9].has_next_page
        assert pages[7].rows[0].body == "comment 1"


def test_cursors_of_a_page_made_together_are_each_rows_cursor() -> None:
    from datetime import UTC, datetime, timedelta, timezone
    from typing import NamedTuple

    from execution.pagination import decode_cursor, encode_cursor, encode_cursors
    from loaders import BY_ID, Order

    class Row(NamedTuple):
        id: int
        created_at: datetime
        priority: int
        name: str

    start = datetime(2026, 3, 1, 8, tzinfo=UTC)
    rows = [
        Row(1, start, 4, 'quoted "name", with a comma'),
        Row(2**40, start + timedelta(microseconds=1), -1, "ünïcode \\ back\nslash"),
        Row(3, start.astimezone(timezone(timedelta(hours=2))) + timedelta(seconds=0.5), 0, ""),
    ]
    orders = [
        BY_ID,
        Order("CREATED_AT", "i.created_at", "created_at"),
        Order("PRIORITY", "i.priority", "priority", descending=True),
        Order("NAME", "l.name", "name"),
    ]
    for order in orders:
        for page in (rows, rows[:1], []):
            cursors = encode_cursors(order, page)
            assert cursors == [encode_cursor(order, order.key(row)) for row in page], order
            assert [decode_cursor(c, order, "after") for c in cursors] == [
                order.key(row) for row in page
            ]
