"""The compiled executor answers exactly as graphql-core does: random valid queries over the
schema (hypothesis), run for several viewers through both, and fixed cases that random queries
once found wrong. (Every query of the rest of the suite is also run through both: see `run`
in conftest.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from graphql import GraphQLNonNull, get_named_type, is_leaf_type, parse, validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import encoding
from core.db import Database
from execution.ids import encode_id
from resolvers.scalars import DateTime
from resolvers.schema import schema
from tests.conftest import Run, app_client

GRAPH = schema._schema
VIEWERS = [None, "bob", "alice", "carol", "root"]
SKIP_FIELDS = {"rateLimit"}
CONNECTION_ARGS = st.fixed_dictionaries(
    {},
    optional={
        "first": st.sampled_from([0, 1, 2, 5, 101]),
        "last": st.sampled_from([1, 3]),
        "after": st.sampled_from(['"bm90LWEtY3Vyc29y"', '"WzEsIklEIiwxLDFd"']),
    },
)
ISSUE_ARGS = st.fixed_dictionaries(
    {},
    optional={
        "orderBy": st.sampled_from(
            [
                "{field: PRIORITY, direction: DESC}",
                "{field: UPDATED_AT, direction: ASC}",
                "{field: CREATED_AT, direction: DESC}",
            ]
        ),
        "filterBy": st.sampled_from(
            [
                "{states: [OPEN]}",
                '{labels: ["bug", "docs"]}',
                '{assignee: "bob", states: [OPEN, CLOSED]}',
            ]
        ),
    },
)


def _ids() -> list[str]:
    return [
        encode_id(t, n)
        for t in ("User", "Issue", "Project", "Comment", "Label", "Organization")
        for n in (1, 2, 7)
    ] + ["bad-id"]


FIXED_ARGS: dict[tuple[str, str], st.SearchStrategy[dict[str, str]]] = {
    ("Query", "user"): st.sampled_from(["alice", "bob", "ALICE", "nobody"]).map(
        lambda v: {"login": f'"{v}"'}
    ),
    ("Query", "organization"): st.sampled_from(["acme", "globex", "nope"]).map(
        lambda v: {"slug": f'"{v}"'}
    ),
    ("Query", "node"): st.sampled_from(_ids()).map(lambda v: {"id": f'"{v}"'}),
    ("Query", "nodes"): st.lists(st.sampled_from(_ids()), max_size=4).map(
        lambda ids: {"ids": "[" + ", ".join(f'"{i}"' for i in ids) + "]"}
    ),
    ("Organization", "project"): st.sampled_from(["WEB", "OPS", "NOPE"]).map(
        lambda v: {"key": f'"{v}"'}
    ),
    ("Project", "issue"): st.sampled_from([1, 2, 0, 999999]).map(lambda v: {"number": str(v)}),
}


@st.composite
def selection(draw: Any, type_name: str, depth: int) -> str:
    graphql_type = GRAPH.type_map[type_name]
    possible = (
        GRAPH.get_possible_types(graphql_type)
        if not hasattr(graphql_type, "fields") or type_name == "Node"
        else None
    )
    if possible is not None:  # an interface: __typename and fragments on its types
        parts = ["__typename", "id"]
        for concrete in draw(st.lists(st.sampled_from(possible), max_size=2, unique=True)):
            parts.append(f"... on {concrete.name} {{ {draw(selection(concrete.name, depth))} }}")
        return " ".join(parts)
    names = [n for n in graphql_type.fields if n not in SKIP_FIELDS]
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    parts = []
    for name in chosen:
        found = _field(draw, type_name, name, depth)
        if found is None:
            continue
        text, body = found
        if draw(st.booleans()) and draw(st.booleans()):
            text = f"a_{name}: {text}"
        if draw(st.integers(0, 5)) == 0:
            text += " @include(if: $flag)"
        elif draw(st.integers(0, 7)) == 0:
            text += " @skip(if: true)"
        parts.append(f"{text} {{ {body} }}" if body is not None else text)
    if draw(st.integers(0, 4)) == 0:
        parts.append("__typename")
    return " ".join(parts) or "__typename"


def _field(draw: Any, type_name: str, name: str, depth: int) -> tuple[str, str | None] | None:
    definition = GRAPH.type_map[type_name].fields[name]  # type: ignore[union-attr]
    args = dict(draw(FIXED_ARGS[(type_name, name)])) if (type_name, name) in FIXED_ARGS else {}
    if "first" in definition.args:
        args |= draw(CONNECTION_ARGS)
    if "orderBy" in definition.args or "filterBy" in definition.args:
        args |= {k: v for k, v in draw(ISSUE_ARGS).items() if k in definition.args}
    if any(
        isinstance(a.type, GraphQLNonNull) and k not in args for k, a in definition.args.items()
    ):
        return None
    rendered = f"{name}({', '.join(f'{k}: {v}' for k, v in args.items())})" if args else name
    named = get_named_type(definition.type)
    if is_leaf_type(named):
        return rendered, None
    if depth >= 4:
        return None
    return rendered, draw(selection(named.name, depth + 1))


QUERIES: list[tuple[str, str | None, bool]] = []


@settings(
    max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(selection("Query", 0), st.sampled_from(VIEWERS), st.booleans())
def _collect(body: str, viewer: str | None, flag: bool) -> None:
    document = f"query Random($flag: Boolean!) {{ {body} }}"
    if not validate(GRAPH, parse(document)):
        QUERIES.append((document, viewer, flag))


async def test_random_queries_answer_the_same_through_both_executors(
    run: Run, conn: asyncpg.Connection
) -> None:
    if not QUERIES:
        _collect()
    assert len(QUERIES) >= 80
    for document, viewer, flag in QUERIES:
        # `run` executes through graphql-core, then through the compiled executor, and
        # asserts identical data, identical errors and no more SQL
        try:
            await run(document, {"flag": flag}, viewer=viewer)
        except AssertionError as failure:
            raise AssertionError(f"as {viewer}, flag={flag}: {document}") from failure


# Queries random ones once found wrong: (document, viewer, $flag).
FIXED = [
    # An issue's project read twice, by `project` (the compiled executor reads a level's rows
    # at once) and by the permission of `viewerCanTriage`/`viewerCanClose` (row by row, in
    # tasks of their own): one statement, as graphql-core reads them, in either order.
    (
        """query Random($flag: Boolean!) { user(login: "bob") {
          assignedIssues(first: 5, filterBy: {states: [OPEN]}) {
            edges { __typename }
            nodes { viewerCanTriage project { __typename } viewerCanClose @include(if: $flag) }
          }
          unreadNotificationCount organizations { totalCount }
        } }""",
        None,
        False,
    ),
    (
        """query Random($flag: Boolean!) { user(login: "alice") {
          assignedIssues(first: 2, orderBy: {field: UPDATED_AT, direction: ASC}) {
            nodes { project { __typename } viewerCanClose }
          }
          organizations @include(if: $flag) { totalCount }
        } }""",
        None,
        True,
    ),
]


@pytest.mark.parametrize(("document", "viewer", "flag"), FIXED)
async def test_fixed_queries_answer_the_same_through_both_executors(
    run: Run, document: str, viewer: str | None, flag: bool
) -> None:
    outcome = await run(document, {"flag": flag}, viewer=viewer)  # see the test above
    assert not outcome.errors and outcome.data["user"] is not None


@given(st.datetimes(min_value=datetime(1, 1, 1), timezones=st.just(UTC)))
def test_the_encoder_writes_datetimes_as_the_datetime_scalar_does(value: datetime) -> None:
    # The compiled executor leaves DateTime values (UTC, as the database reads them) to the
    # response's encoder; graphql-core serializes them through the scalar.
    text = DateTime.serialize(value)
    assert encoding.dumps(value) == orjson.dumps(text)
    assert text.endswith("Z") and datetime.fromisoformat(text) == value


# `comments(first: 101)` fails (asynchronously, in its resolver) while `url`, its sibling,
# awaits the project of the same issue; `b` awaits the same projects for its own `url`.
SHARED_LOAD = """{
  a: organization(slug: "acme") {
    issues(first: 3) { nodes { url comments(first: 101) { totalCount } } }
  }
  b: organization(slug: "acme") { issues(first: 3) { nodes { url } } }
}"""


async def test_a_failing_field_leaves_the_loads_it_shares_whole(database_url: str) -> None:
    """graphql-core cancels the fields of an object still running when one of them fails;
    a field elsewhere awaiting the same load (`b`'s `url`, the same projects) still gets it:
    over HTTP both executors answer 200 with the same data and the error of `a`, and the
    request's connection goes back to the pool outside any transaction. (Before, the
    CancelledError of the cancelled shared load escaped graphql-core: a 500.)"""
    answers = {}
    for executor in ("standard", "compiled"):
        single = await Database.connect(database_url, min_size=1, max_size=1, acquire_timeout=2)
        try:
            async with app_client(single, executor=executor) as http:
                response = await asyncio.wait_for(
                    http.post("/graphql", json={"query": SHARED_LOAD}), 10
                )
            pooled = await single.acquire()  # the pool's only connection: given back
            try:
                pid = pooled.get_server_pid()
                observer = await asyncpg.connect(database_url)
                try:  # what the server says of it (the connection does nothing meanwhile)
                    state = await observer.fetchval(
                        "SELECT state FROM pg_stat_activity WHERE pid = $1", pid
                    )
                finally:
                    await observer.close()
            finally:
                await single.release(pooled)
        finally:
            await single.close()
        assert (response.status_code, state) == (200, "idle"), executor
        answers[executor] = response.json()
    standard, compiled = answers["standard"], answers["compiled"]
    assert standard["data"] == compiled["data"]
    assert standard["data"]["a"] is None
    urls = [node["url"] for node in standard["data"]["b"]["issues"]["nodes"]]
    assert len(urls) == 3 and all("/acme/" in url for url in urls)
    errors = {
        executor: [(e["path"], e["message"], e["extensions"]["code"]) for e in answer["errors"]]
        for executor, answer in answers.items()
    }
    message = "`first` must be between 0 and 100, got 101."
    # graphql-core stops at the first error of the list `a` nulls; the compiled executor
    # reports the error of every issue
    assert errors["standard"] == [
        (["a", "issues", "nodes", 0, "comments"], message, "BAD_USER_INPUT")
    ]
    assert errors["compiled"] == [
        (["a", "issues", "nodes", n, "comments"], message, "BAD_USER_INPUT") for n in range(3)
    ]
