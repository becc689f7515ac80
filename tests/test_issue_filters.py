"""filterBy and orderBy on every issue list, and Organization.issues."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.conftest import Run

LISTS = """
query($f: IssueFilters, $o: IssueOrder) {
  organization(slug: "f-org") {
    issues(first: 50, filterBy: $f, orderBy: $o) { totalCount nodes { title } }
    project(key: "FPUB") { issues(first: 50, filterBy: $f, orderBy: $o) { nodes { title } } }
  }
  user(login: "f-ann") {
    authoredIssues(first: 50, filterBy: $f, orderBy: $o) { nodes { title } }
    assignedIssues(first: 50, filterBy: $f, orderBy: $o) { nodes { title } }
  }
}
"""


def _day(n: int) -> datetime:
    return datetime(2026, 3, n, tzinfo=UTC)


async def _world(make: Any) -> None:
    ann = await make.user(login="f-ann")
    bob = await make.user(login="f-bob")
    org = await make.organization(slug="f-org")
    await make.member(org, ann)
    public = await make.project(org, key="FPUB")
    private = await make.project(org, key="FPRI", visibility="PRIVATE")
    labels = {n: await make.label(public, name=n) for n in ("bug", "ui")}
    rows = [
        ("one", public, ann, None, 0, 1, ("bug", "ui")),
        ("two", public, ann, bob, 3, 2, ("bug",)),
        ("three", public, bob, ann, 4, 3, ()),
        ("four", private, ann, ann, 2, 4, ()),
    ]
    for title, project, author, assignee, priority, day, names in rows:
        issue = await make.issue(
            project,
            author,
            title=title,
            assignee_id=assignee,
            priority=priority,
            created_at=_day(day),
            updated_at=_day(10 - day),
        )
        for name in names:
            await make.conn.execute("INSERT INTO issue_labels VALUES ($1, $2)", issue, labels[name])


async def _lists(run: Run, filters: Any, order: Any = None, viewer: str | None = None) -> Any:
    outcome = await run(LISTS, {"f": filters, "o": order}, viewer=viewer)
    assert outcome.errors == [], outcome.errors
    organization, user = outcome.data["organization"], outcome.data["user"]

    def titles(connection: Any) -> list[str]:
        return [n["title"] for n in connection["nodes"]]

    return {
        "org": titles(organization["issues"]),
        "project": titles(organization["project"]["issues"]),
        "authored": titles(user["authoredIssues"]),
        "assigned": titles(user["assignedIssues"]),
        "total": organization["issues"]["totalCount"],
    }


async def test_organization_issues_span_its_projects_as_the_viewer_may_see(
    run: Run, make: Any
) -> None:
    await _world(make)
    assert (await _lists(run, None))["org"] == ["one", "two", "three"]
    member = await _lists(run, None, viewer="f-ann")
    assert member["org"] == ["one", "two", "three", "four"] and member["total"] == 4
    assert member["authored"] == ["one", "two", "four"]


async def test_every_list_takes_the_same_filters(run: Run, make: Any) -> None:
    await _world(make)
    found = await _lists(run, {"unassigned": True}, viewer="f-ann")
    assert found["org"] == ["one"] and found["authored"] == ["one"]
    found = await _lists(run, {"unassigned": False, "author": "F-ANN"}, viewer="f-ann")
    assert found["org"] == ["two", "four"] and found["assigned"] == ["four"]
    found = await _lists(run, {"labels": ["BUG", "ui"]})
    assert found["org"] == ["one"] and found["project"] == ["one"]  # all of them
    found = await _lists(run, {"priorities": [3, 4]}, viewer="f-ann")
    assert found["org"] == ["two", "three"] and found["assigned"] == ["three"]
    span = {"since": _day(2).isoformat(), "until": _day(4).isoformat()}
    found = await _lists(run, {"created": span}, viewer="f-ann")
    assert found["org"] == ["two", "three"]  # since inclusive, until exclusive
    found = await _lists(run, {"updated": {"since": _day(7).isoformat()}}, viewer="f-ann")
    assert found["org"] == ["one", "two", "three"]


async def test_every_list_takes_every_order(run: Run, make: Any) -> None:
    await _world(make)
    found = await _lists(run, None, {"field": "PRIORITY", "direction": "DESC"}, "f-ann")
    assert found["org"] == ["three", "two", "four", "one"]
    assert found["authored"] == ["two", "four", "one"]
    found = await _lists(run, None, {"field": "UPDATED_AT", "direction": "ASC"}, "f-ann")
    assert found["assigned"] == ["four", "three"]
    assert found["project"] == ["three", "two", "one"]


async def test_a_priority_out_of_range_is_bad_input(run: Run, make: Any) -> None:
    await _world(make)
    outcome = await run(LISTS, {"f": {"priorities": [5]}})
    assert set(outcome.codes) == {"BAD_USER_INPUT"}
