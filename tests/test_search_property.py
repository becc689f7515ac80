"""searchIssues against a plain, slow reference: for random issues and random queries of the
language, the ids returned, page by page forward and backward, are those a Python filter
over the same rows finds, in the same order, for an anonymous viewer, a member and a site
admin. `mentions:` and `involves:` read the mentions recorded (written here as a body
naming the users would record them).

Words come from a small vocabulary of words that are not stop words and stem apart, so
that "contains the word" in Python is what the English text search configuration says.
Relevance puts the issues whose title alone matches the words first, then the others, each
most recently updated first (then by id); pages of one or two issues cross from one tier
to the other both ways.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Run

VOCABULARY = ("crash", "login", "button", "cache", "kernel", "render", "mobile", "widget")
ORGS = ("p-alpha", "p-beta")
PROJECTS = (("p-alpha", "PA", "PUBLIC"), ("p-alpha", "PB", "PRIVATE"), ("p-beta", "PC", "PUBLIC"))
PROJECTS += (("p-beta", "PD", "PRIVATE"),)
USERS = ("p-ann", "p-ben", "p-cat")  # p-ann is a member of p-alpha
LABELS = ("bug", "ui", "Help Wanted")
SORTS = (
    "relevance",
    "created-desc",
    "created-asc",
    "updated-desc",
    "updated-asc",
    "priority-desc",
    "comments-desc",
)
QUALIFIERS = ("is", "org", "project", "author", "assignee", "no", "label", "priority")
QUALIFIERS += ("created", "updated", "mentions", "involves")
DAY0 = date(2026, 1, 1)
SEARCH = """
query($q: String!, $first: Int, $after: String, $last: Int, $before: String) {
  searchIssues(query: $q, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    nodes { id number }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


@dataclass
class IssueSpec:
    project: int  # index into PROJECTS
    title: list[str]
    body: list[str]
    state: str
    priority: int
    author: int
    assignee: int | None
    labels: set[str]
    created: datetime
    updated: datetime
    comments: int  # each by USERS[0]
    mentioned: set[int]  # users (indexes into USERS) named in the body or a comment
    id: int = 0
    number: int = 0


@dataclass(frozen=True)
class Term:
    kind: str  # word, phrase, qualifier, sort
    text: str  # as written in the query
    name: str = ""
    value: Any = None
    negated: bool = False


@dataclass
class World:
    issues: list[IssueSpec]
    queries: list[tuple[list[Term], int]] = field(default_factory=list)  # terms, page size


moments = st.builds(
    lambda day, minute: (
        datetime.combine(DAY0, datetime.min.time(), UTC) + timedelta(days=day, minutes=minute)
    ),
    st.integers(0, 8),
    st.sampled_from([0, 0, 30, 600]),  # ties happen: the id breaks them
)


@st.composite
def issues(draw: Any) -> IssueSpec:
    created = draw(moments)
    project = draw(st.integers(0, len(PROJECTS) - 1))
    return IssueSpec(
        project=project,
        title=draw(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3)),
        body=draw(st.lists(st.sampled_from(VOCABULARY), max_size=5)),
        state=draw(st.sampled_from(["OPEN", "CLOSED"])),
        priority=draw(st.integers(0, 4)),
        author=draw(st.integers(0, len(USERS) - 1)),
        assignee=draw(st.none() | st.integers(0, len(USERS) - 1)),
        labels=draw(st.sets(st.sampled_from(LABELS), max_size=2)),
        created=created,
        updated=created + timedelta(hours=draw(st.sampled_from([0, 0, 5, 30, 100]))),
        comments=draw(st.integers(0, 3)),
        mentioned=draw(st.sets(st.integers(0, len(USERS) - 1), max_size=2)),
    )


def _comparison(draw: Any, render: Any) -> tuple[str, Any]:
    """`N`, `>N`, `>=N`, `<N`, `<=N` or `N..M` of values drawn by `render`: (text, value)."""
    form = draw(st.sampled_from(["", ">", ">=", "<", "<=", ".."]))
    low, low_text = render()
    if form == "..":
        high, high_text = render()
        return f"{low_text}..{high_text}", ("..", low, high)
    return f"{form}{low_text}", (form, low, None)


@st.composite
def terms(draw: Any) -> Term:
    kind = draw(st.sampled_from(["word", "word", "phrase", "qualifier", "qualifier", "qualifier"]))
    kind = "sort" if draw(st.integers(0, 5)) == 0 else kind
    if kind == "word":
        word, negated = draw(st.sampled_from(VOCABULARY)), draw(st.booleans())
        return Term("word", f"-{word}" if negated else word, value=word, negated=negated)
    if kind == "phrase":
        words = draw(st.lists(st.sampled_from(VOCABULARY), min_size=2, max_size=2))
        return Term("phrase", '"' + " ".join(words) + '"', value=words)
    if kind == "sort":
        sort = draw(st.sampled_from(SORTS))
        return Term("sort", f"sort:{sort}", value=sort)
    negated = draw(st.integers(0, 2)) == 0
    name = draw(st.sampled_from(QUALIFIERS))
    if name == "is":
        text, value = (state := draw(st.sampled_from(["open", "closed"]))), state.upper()
    elif name == "org":
        text = value = draw(st.sampled_from(ORGS))
    elif name == "project":
        org, key, _ = draw(st.sampled_from(PROJECTS))
        text, value = f"{org}/{key.lower() if draw(st.booleans()) else key}", (org, key)
    elif name in ("author", "assignee", "mentions", "involves"):
        text = value = draw(st.sampled_from(USERS))
    elif name == "no":
        text = value = draw(st.sampled_from(["assignee", "label"]))
    elif name == "label":
        value = draw(st.sampled_from(LABELS))
        cased = value.upper() if draw(st.booleans()) else value
        text = f'"{cased}"' if " " in cased else cased
    elif name == "priority":

        def priority() -> tuple[int, str]:
            n = draw(st.integers(0, 4))
            return n, str(n)

        text, value = _comparison(draw, priority)
    else:

        def day() -> tuple[date, str]:
            chosen = DAY0 + timedelta(days=draw(st.integers(-1, 10)))
            return chosen, chosen.isoformat()

        text, value = _comparison(draw, day)
    prefix = "-" if negated else ""
    return Term("qualifier", f"{prefix}{name}:{text}", name, value, negated)


def _compare(actual: Any, value: Any) -> bool:
    form, low, high = value
    if form == "..":
        return bool(low <= actual <= high)
    return {
        "": actual == low,
        ">": actual > low,
        ">=": actual >= low,
        "<": actual < low,
        "<=": actual <= low,
    }[form]


def _qualifier(issue: IssueSpec, term: Term) -> bool:
    org, key, _ = PROJECTS[issue.project]
    name, value = term.name, term.value
    if name == "is":
        return issue.state == value
    if name == "org":
        return org == value
    if name == "project":
        return (org, key) == value
    if name == "author":
        return USERS[issue.author] == value
    if name == "assignee":
        return issue.assignee is not None and USERS[issue.assignee] == value
    if name == "mentions":
        return value in {USERS[u] for u in issue.mentioned}
    if name == "involves":
        people = {issue.author, *issue.mentioned, *([0] if issue.comments else [])}
        people |= {issue.assignee} if issue.assignee is not None else set()
        return value in {USERS[u] for u in people}
    if name == "no":
        return issue.assignee is None if value == "assignee" else not issue.labels
    if name == "label":
        return value.lower() in {label.lower() for label in issue.labels}
    if name == "priority":
        return _compare(issue.priority, value)
    moment = issue.created if name == "created" else issue.updated
    return _compare(moment.date(), value)


def _words(tokens: list[str], found: list[Term]) -> bool:
    """Do the words match a stream of tokens (an issue's title, or title then body)?"""
    for term in found:
        if term.kind == "word" and (term.value in tokens) == term.negated:
            return False
        if term.kind == "phrase":
            first, second = term.value
            if not any(a == first and b == second for a, b in pairwise(tokens)):
                return False
    return True


def reference(world: World, query: list[Term], visible: set[int]) -> list[int]:
    """The ids a search must return, in order: the plain, slow way."""
    words = [t for t in query if t.kind in ("word", "phrase")]
    found = [
        issue
        for issue in world.issues
        if issue.project in visible
        and all(_qualifier(issue, t) != t.negated for t in query if t.kind == "qualifier")
        and _words(issue.title + issue.body, words)  # one stream: title || body
    ]
    sorts = [t.value for t in query if t.kind == "sort"]
    sort = sorts[0] if sorts else ("relevance" if words else "created-desc")
    if sort == "relevance" and not words:
        sort = "created-desc"
    key = {
        "relevance": lambda i: (_words(i.title, words), i.updated, i.id),
        "created-desc": lambda i: (i.created, i.id),
        "created-asc": lambda i: (i.created, i.id),
        "updated-desc": lambda i: (i.updated, i.id),
        "updated-asc": lambda i: (i.updated, i.id),
        "priority-desc": lambda i: (i.priority, i.id),
        "comments-desc": lambda i: (i.comments, i.id),
    }[sort]
    return [i.id for i in sorted(found, key=key, reverse=not sort.endswith("-asc"))]


WORLDS: list[World] = []


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    st.lists(issues(), min_size=4, max_size=14),
    st.lists(st.tuples(st.lists(terms(), max_size=5), st.integers(1, 4)), min_size=5, max_size=9),
)
def _collect(made: list[IssueSpec], queries: list[tuple[list[Term], int]]) -> None:
    cleaned = []
    for query, size in queries:
        sorts = [t for t in query if t.kind == "sort"]  # sort: may be given once
        cleaned.append(([t for t in query if t.kind != "sort"] + sorts[:1], size))
    WORLDS.append(World(made, cleaned))


async def _build(conn: asyncpg.Connection, make: Any, world: World) -> dict[str, Any]:
    await conn.execute("DELETE FROM issues")  # this test's rows only (rolled back after)
    users = [await make.user(login=login) for login in USERS]
    admin = await make.user(login="p-root", is_site_admin=True)
    orgs = {slug: await make.organization(slug=slug) for slug in ORGS}
    await make.member(orgs["p-alpha"], users[0])
    projects, labels = [], []
    for org, key, visibility in PROJECTS:
        project = await make.project(orgs[org], key=key, visibility=visibility)
        projects.append(project)
        labels.append({name: await make.label(project, name=name) for name in LABELS})
    for issue in world.issues:
        issue.id = await make.issue(
            projects[issue.project],
            users[issue.author],
            title=" ".join(issue.title),
            body=" ".join(issue.body),
            state=issue.state,
            priority=issue.priority,
            assignee_id=users[issue.assignee] if issue.assignee is not None else None,
            created_at=issue.created,
            updated_at=issue.updated,
        )
        for name in issue.labels:
            await conn.execute(
                "INSERT INTO issue_labels VALUES ($1, $2)", issue.id, labels[issue.project][name]
            )
        for _ in range(issue.comments):
            await make.comment(issue.id, users[0])
        for mentioned in sorted(issue.mentioned):  # as a body naming them would record
            await conn.execute(
                "INSERT INTO mentions (issue_id, user_id) VALUES ($1, $2)",
                issue.id,
                users[mentioned],
            )
        # the comment triggers count; adding comments does not touch updated_at here
    return {"admin": admin}


async def _pages(run: Run, text: str, size: int, viewer: str | None, forward: bool) -> Any:
    """Every page of a search, one way; the ids in the search's order, and the total."""
    ids: list[int] = []
    cursor = None
    total = None
    for _ in range(50):
        variables: dict[str, Any] = {"q": text}
        if forward:
            variables |= {"first": size, "after": cursor}
        else:
            variables |= {"last": size, "before": cursor}
        outcome = await run(SEARCH, variables, viewer=viewer)
        assert outcome.errors == [], (text, outcome.errors)
        found = outcome.data["searchIssues"]
        total = found["totalCount"]
        page = [int(_pk(n["id"])) for n in found["nodes"]]
        info = found["pageInfo"]
        ids = ids + page if forward else page + ids
        assert info["hasPreviousPage" if forward else "hasNextPage"] is (cursor is not None)
        if not info["hasNextPage" if forward else "hasPreviousPage"]:
            return ids, total
        cursor = info["endCursor" if forward else "startCursor"]
    raise AssertionError("too many pages")


def _pk(global_id: str) -> int:
    from execution.ids import decode_id

    return decode_id(global_id, "Issue")[1]


async def test_search_finds_what_a_plain_filter_finds_in_every_sort_both_ways(
    run: Run, make: Any, conn: asyncpg.Connection
) -> None:
    if not WORLDS:
        _collect()
    assert len(WORLDS) >= 30
    checked = 0
    for world in WORLDS:
        savepoint = conn.transaction()
        await savepoint.start()
        try:
            await _build(conn, make, world)
            viewers: dict[str | None, set[int]] = {
                None: {0, 2},  # public projects
                "p-ann": {0, 1, 2},  # and p-alpha's private one
                "p-root": {0, 1, 2, 3},
            }
            for query, size in world.queries:
                text = " ".join(t.text for t in query)
                for viewer, visible in viewers.items():
                    expected = reference(world, query, visible)
                    for forward in (True, False):
                        ids, total = await _pages(run, text, size, viewer, forward)
                        assert ids == expected, (text, viewer, forward)
                        assert total == len(expected)
                        checked += 1
        finally:
            await savepoint.rollback()
    assert checked >= 1_200
