"""searchIssues: GitHub's query language over every issue the viewer may see."""

from __future__ import annotations

from typing import Any

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
