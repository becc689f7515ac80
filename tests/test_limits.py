"""Query analysis, limits and the hourly cost budget (in memory and in a real Redis).

Documents are parsed and validated against the real schema. Cost rule (execution/limits.py): each
connection or `nodes(ids:)` is one request per item of the connections above it; the cost is
the sum of those products, at least 1.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio
from graphql import GraphQLSyntaxError, get_introspection_query, parse, validate
from limits import RateLimitItemPerHour
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter

from core.errors import QueryTooComplex, RateLimited
from execution.limits import (
    MAX_SELECTIONS,
    Analysis,
    Budget,
    BudgetState,
    Counters,
    Limits,
    analyze,
    check,
    parse_within,
)
from resolvers.schema import schema

SCHEMA = schema._schema
REDIS_URL = "redis://127.0.0.1:6379/15"
NESTED = """{ organization(slug: "acme") { projects(first: 20) { nodes {
  issues(first: 10) { nodes { comments(first: 5) { nodes { body } } } } } } } }"""


def figures(
    document: str,
    variables: dict[str, Any] | None = None,
    operation_name: str | None = None,
    validated: bool = True,
) -> Analysis:
    parsed = parse(document)
    if validated:
        assert validate(SCHEMA, parsed) == []
    return analyze(SCHEMA, parsed, operation_name, variables)


def ids(n: int) -> str:
    return "[" + ", ".join(f'"id{i}"' for i in range(n)) + "]"


# Analysis


def test_a_flat_query_costs_one() -> None:
    assert figures('{ viewer { login } organization(slug: "acme") { name } }') == Analysis(
        cost=1, depth=2, aliases=0, directives=0, nodes=0
    )


def test_nested_connections_cost_the_product_of_page_sizes_above_each() -> None:
    # projects: 1 request; issues: 20 (one per project); comments: 20*10
    assert figures(NESTED) == Analysis(
        cost=1 + 20 + 20 * 10, depth=8, aliases=0, directives=0, nodes=20 + 20 * 10 + 20 * 10 * 5
    )


def test_page_sizes_from_variables_and_their_defaults() -> None:
    document = """query($p: Int, $i: Int = 10) { organization(slug: "acme") {
      projects(first: $p) { nodes { issues(last: $i) { totalCount } } } } }"""
    assert figures(document, {"p": 50}).cost == 1 + 50
    assert figures(document, {"p": 50}).nodes == 50 + 50 * 10
    assert figures(document, {"p": 50, "i": 3}).nodes == 50 + 50 * 3
    assert figures(document, {"p": None}).nodes == 20 + 20 * 10  # null: the default page


def test_default_page_size_without_first_or_last() -> None:
    document = '{ organization(slug: "acme") { projects { nodes { issues { totalCount } } } } }'
    assert figures(document) == Analysis(
        cost=1 + 20, depth=5, aliases=0, directives=0, nodes=20 + 20 * 20
    )


def test_page_sizes_are_clamped_to_what_the_resolver_accepts() -> None:
    document = """{ organization(slug: "acme") { projects(first: 500) { nodes {
      labels(first: -3) { nodes { name } } } } } }"""
    assert figures(document).cost == 1 + 100
    assert figures(document).nodes == 100 + 0


def test_edges_count_like_nodes() -> None:
    document = """{ organizations(first: 10) { edges { cursor node {
      projects(first: 5) { edges { node { key } } } } } } }"""
    assert figures(document) == Analysis(
        cost=1 + 10, depth=7, aliases=0, directives=0, nodes=10 + 10 * 5
    )


def test_named_and_inline_fragments_are_followed() -> None:
    document = """
    query { organization(slug: "acme") { ...Projects } }
    fragment Projects on Organization {
      projects(first: 4) { nodes { ... on Project { issues(first: 3) { ...Issues } } } }
    }
    fragment Issues on IssueConnection { nodes { comments(first: 2) { totalCount } } }
    """
    assert figures(document) == Analysis(
        cost=1 + 4 + 4 * 3, depth=7, aliases=0, directives=0, nodes=4 + 4 * 3 + 4 * 3 * 2
    )


def test_the_same_field_from_two_fragments_is_one_request() -> None:
    document = """
    query { organization(slug: "acme") { projects(first: 10) { totalCount } ...P } }
    fragment P on Organization { projects(first: 10) { nodes { issues(first: 5) { totalCount } } } }
    """
    assert figures(document).cost == 1 + 10


def test_a_fragment_spread_at_two_places_counts_at_both() -> None:
    document = """
    query { organization(slug: "acme") { a: projects(first: 2) { nodes { ...I } }
                                         b: projects(first: 3) { nodes { ...I } } } }
    fragment I on Project { issues(first: 5) { totalCount } }
    """
    assert figures(document) == Analysis(
        cost=(1 + 2) + (1 + 3), depth=5, aliases=2, directives=0, nodes=(2 + 10) + (3 + 15)
    )


def test_an_abstract_type_counts_its_worst_possible_type() -> None:
    document = """{ node(id: "x") {
      ... on Issue { comments(first: 10) { nodes { body } } }
      ... on Project { issues(first: 50) { nodes { labels(first: 2) { totalCount } } } }
    } }"""
    assert figures(document) == Analysis(
        cost=1 + 50, depth=5, aliases=0, directives=0, nodes=50 + 50 * 2
    )


def test_skip_and_include_with_literals_and_variables() -> None:
    document = """query($yes: Boolean!, $no: Boolean = false) { organization(slug: "acme") {
      a: projects(first: 10) @skip(if: true) { totalCount }
      b: projects(first: 20) @include(if: $no) { totalCount }
      c: projects(first: 30) @include(if: $yes) { nodes { issues(first: 2) { totalCount } } }
      ... on Organization @skip(if: $yes) { d: projects(first: 40) { totalCount } }
    } }"""
    assert figures(document, {"yes": True}) == Analysis(
        cost=1 + 30, depth=5, aliases=1, directives=4, nodes=30 + 60
    )
    assert figures(document, {"yes": False, "no": True}) == Analysis(
        cost=1 + 1, depth=3, aliases=2, directives=4, nodes=20 + 40
    )


def test_nodes_counts_its_ids() -> None:
    document = """query($ids: [ID!]!) { nodes(ids: $ids) {
      id ... on Issue { comments(first: 10) { totalCount } } } }"""
    literal = document.replace("query($ids: [ID!]!) ", "").replace("$ids", ids(100))
    expected = Analysis(cost=1 + 100, depth=3, aliases=0, directives=0, nodes=100 + 100 * 10)
    assert figures(literal) == expected
    assert figures(document, {"ids": [f"id{i}" for i in range(100)]}) == expected
    assert figures(document, {"ids": ["one"]}).nodes == 1 + 10
    assert figures(document, {"ids": [str(i) for i in range(300)]}).cost == 1 + 100


def test_depth_ignores_typename_and_fragments() -> None:
    assert figures("{ viewer { __typename } }").depth == 1
    assert figures("{ __typename }") == Analysis(cost=1, depth=0, aliases=0, directives=0, nodes=0)
    document = "{ viewer { ...U } } fragment U on User { ... on User { login } }"
    assert figures(document).depth == 2


def test_aliases_count_response_keys_that_differ_from_the_field_name() -> None:
    document = """{ a: viewer { l: login login: name } b: viewer { login }
                    viewer: viewer { t: __typename } }"""
    assert figures(document).aliases == 5  # a, l, login (for name), b, t; not viewer: viewer


def test_introspection_is_cheap_and_shallow() -> None:
    assert figures(get_introspection_query()) == Analysis(
        cost=1, depth=6, aliases=0, directives=0, nodes=0
    )
    nested = '{ __type(name: "Issue") { fields { type { fields { type { name } } } } } }'
    assert figures(nested) == Analysis(cost=1, depth=6, aliases=0, directives=0, nodes=0)
    both = '{ __schema { types { name } } __type(name: "Issue") { name } viewer { login } }'
    assert figures(both).cost == 2


def test_operation_name_picks_the_operation() -> None:
    document = """query A { viewer { login } }
                  query B { organizations(first: 7) { nodes { projects { totalCount } } } }"""
    assert figures(document, operation_name="B").cost == 1 + 7
    assert figures(document, operation_name="A").cost == 1
    assert figures(document) == Analysis(cost=1, depth=0, aliases=0, directives=0, nodes=0)


def test_mutations_are_analyzed_too() -> None:
    document = """mutation { logIn(input: {login: "a", password: "b"}) {
      viewer { organizations(first: 5) { nodes { name } } } } }"""
    assert figures(document).cost == 1


def test_fragment_cycles_end() -> None:
    document = """{ viewer { ...A } }
    fragment A on User { ...B login }
    fragment B on User { ...A organizations(first: 2) { nodes { members(first: 3) {
      nodes { ...A } } } } }"""
    assert figures(document, validated=False).cost >= 1


def test_fragment_bombs_stay_linear() -> None:
    levels = 40

    def twice(i: int) -> str:
        return f"organizations {{ nodes {{ members {{ nodes {{ ...F{i + 1} }} }} }} }}"

    fragments = "\n".join(
        f"fragment F{i} on User {{ a: {twice(i)} b: {twice(i)} }}" for i in range(levels)
    )
    document = f"{{ viewer {{ ...F0 }} }}\n{fragments}\nfragment F{levels} on User {{ login }}"
    started = time.perf_counter()
    result = figures(document, validated=False)
    assert time.perf_counter() - started < 1
    assert result.aliases == 2 ** (levels + 1) - 2
    assert result.depth == 1 + 4 * levels + 1


def test_deep_documents_do_not_exhaust_the_stack() -> None:
    levels = 45  # 4 fields a level: 180 deep, near graphql-core's parser nesting limit
    document = (
        "{ viewer "
        + "{ organizations(first: 1) { nodes { members(first: 1) { nodes " * levels
        + "{ login }"
        + " } } } }" * levels
        + " }"
    )
    assert figures(document).depth == 1 + 4 * levels + 1


def test_expansion_past_the_selection_cap_is_refused() -> None:
    fields = " ".join(f"f{i}: login" for i in range(200))
    aliases = " ".join(f"u{i}: viewer {{ ...Many }}" for i in range(MAX_SELECTIONS // 200 + 1))
    document = f"{{ {aliases} }} fragment Many on User {{ {fields} }}"
    with pytest.raises(QueryTooComplex) as caught:
        figures(document, validated=False)
    assert caught.value.extensions["figure"] == "selections"


# Limits


def test_within_limits_passes() -> None:
    check(figures(NESTED), Limits())
    check(Analysis(cost=50_000, depth=15, aliases=30, directives=50, nodes=500_000), Limits())


@pytest.mark.parametrize(
    ("analysis", "message", "figure", "value", "limit"),
    [
        (
            Analysis(120_000, 3, 0, 0, 10),
            "The query's cost is 120,000, over the limit of 50,000.",
            "cost",
            120_000,
            50_000,
        ),
        (
            Analysis(1, 16, 0, 0, 0),
            "The query's depth is 16, over the limit of 15.",
            "depth",
            16,
            15,
        ),
        (
            Analysis(1, 2, 31, 0, 0),
            "The query has 31 aliases, over the limit of 30.",
            "aliases",
            31,
            30,
        ),
        (
            Analysis(1, 2, 0, 51, 0),
            "The query has 51 directives, over the limit of 50.",
            "directives",
            51,
            50,
        ),
        (
            Analysis(1, 2, 0, 0, 500_001),
            "The query may return 500,001 nodes, over the limit of 500,000.",
            "nodes",
            500_001,
            500_000,
        ),
    ],
)
def test_over_a_limit_is_query_too_complex(
    analysis: Analysis, message: str, figure: str, value: int, limit: int
) -> None:
    with pytest.raises(QueryTooComplex) as caught:
        check(analysis, Limits())
    assert caught.value.message == message
    assert caught.value.extensions == {
        "code": "QUERY_TOO_COMPLEX",
        "figure": figure,
        "value": value,
        "limit": limit,
    }


def test_a_real_query_over_a_custom_cost_limit() -> None:
    with pytest.raises(QueryTooComplex) as caught:
        check(figures(NESTED), Limits(max_cost=200))
    assert caught.value.message == "The query's cost is 221, over the limit of 200."


def test_too_many_tokens_is_query_too_complex() -> None:
    assert parse_within("{ viewer { login } }", Limits(max_tokens=10)) is not None
    with pytest.raises(QueryTooComplex) as caught:
        parse_within("{ viewer { login name bio email id createdAt } }", Limits(max_tokens=10))
    assert caught.value.message == "The query has more than 10 tokens, the limit."
    assert caught.value.extensions == {
        "code": "QUERY_TOO_COMPLEX",
        "figure": "tokens",
        "value": 11,
        "limit": 10,
    }
    with pytest.raises(GraphQLSyntaxError):
        parse_within("{ viewer { ", Limits())


# Budget


async def _redis_or_skip() -> None:
    client = redis.asyncio.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as error:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {error}")
    finally:
        await client.aclose()


async def _delete_prefixed(prefix: str) -> None:
    client = redis.asyncio.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


MakeBudget = Callable[..., Budget]


@asynccontextmanager
async def _budgets(on_redis: bool) -> AsyncIterator[MakeBudget]:
    """A maker of budgets on one backend; on Redis they share a random key prefix, whose
    keys are deleted after."""
    if on_redis:
        await _redis_or_skip()
    prefix = f"issuegraph:test:{uuid.uuid4().hex}"
    made: list[Budget] = []

    def make(**options: Any) -> Budget:
        budget = Budget(REDIS_URL if on_redis else None, key_prefix=prefix, **options)
        made.append(budget)
        return budget

    try:
        yield make
    finally:
        for budget in made:
            await budget.aclose()
        if on_redis:
            await _delete_prefixed(prefix)


@pytest.fixture(params=["memory", "redis"])
async def make_budget(request: pytest.FixtureRequest) -> AsyncIterator[MakeBudget]:
    async with _budgets(request.param == "redis") as make:
        yield make


@pytest.fixture
async def make_redis_budget() -> AsyncIterator[MakeBudget]:
    async with _budgets(True) as make:
        yield make


def _same_window(one: BudgetState, other: BudgetState) -> None:
    """Redis rounds expiries to the second, so one window's reset time may move by one."""
    assert abs(one.reset_at - other.reset_at) <= timedelta(seconds=1)


def _within_the_hour(state: BudgetState) -> None:
    now = datetime.now(UTC)
    assert now < state.reset_at <= now + timedelta(hours=1, seconds=2)


async def test_a_fresh_key_has_its_whole_budget(make_budget: MakeBudget) -> None:
    budget = make_budget()
    anonymous = await budget.peek("203.0.113.9", signed_in=False)
    assert (anonymous.limit, anonymous.remaining) == (5_000, 5_000)
    _within_the_hour(anonymous)
    signed_in = await budget.peek("User:1", signed_in=True)
    assert (signed_in.limit, signed_in.remaining) == (50_000, 50_000)


async def test_spending_lowers_what_remains(make_budget: MakeBudget) -> None:
    budget = make_budget()
    first = await budget.spend("User:1", 221, signed_in=True)
    assert (first.limit, first.remaining) == (50_000, 50_000 - 221)
    _within_the_hour(first)
    second = await budget.spend("User:1", 1, signed_in=True)
    assert second.remaining == 50_000 - 222
    _same_window(second, first)
    peeked = await budget.peek("User:1", signed_in=True)
    assert (peeked.limit, peeked.remaining) == (50_000, 50_000 - 222)
    _same_window(peeked, second)


async def test_points_that_do_not_fit_are_refused_without_spending(make_budget: MakeBudget) -> None:
    budget = make_budget()
    spent = await budget.spend("198.51.100.7", 4_000, signed_in=False)
    with pytest.raises(RateLimited) as caught:
        await budget.spend("198.51.100.7", 1_500, signed_in=False)
    extensions = caught.value.extensions
    reset_at = extensions["resetAt"]
    _same_window(BudgetState(5_000, 1_000, datetime.fromisoformat(reset_at)), spent)
    assert caught.value.message == (
        f"The query costs 1,500 points and 1,000 of 5,000 an hour remain; "
        f"the budget resets at {reset_at}."
    )
    assert {k: v for k, v in extensions.items() if k != "retryAfter"} == {
        "code": "RATE_LIMITED",
        "cost": 1_500,
        "limit": 5_000,
        "remaining": 1_000,
        "resetAt": reset_at,
    }
    assert 0 < extensions["retryAfter"] <= 3_602  # never early: up to 2 s of rounding
    assert (await budget.peek("198.51.100.7", signed_in=False)).remaining == 1_000
    assert (await budget.spend("198.51.100.7", 1_000, signed_in=False)).remaining == 0


async def test_a_cost_over_the_whole_budget_is_refused(make_budget: MakeBudget) -> None:
    budget = make_budget()
    with pytest.raises(RateLimited) as caught:
        await budget.spend("198.51.100.8", 5_001, signed_in=False)
    assert caught.value.message == (
        "The query costs 5,001 points, more than the whole "
        "budget of 5,000 an hour; ask for fewer items."
    )
    assert caught.value.extensions["retryAfter"] is None
    assert caught.value.extensions["remaining"] == 5_000
    assert (await budget.peek("198.51.100.8", signed_in=False)).remaining == 5_000
    assert (await budget.spend("198.51.100.8", 5_001, signed_in=True)).remaining == 44_999


async def test_keys_and_kinds_are_isolated(make_budget: MakeBudget) -> None:
    budget = make_budget()
    await budget.spend("1", 700, signed_in=True)
    assert (await budget.peek("2", signed_in=True)).remaining == 50_000
    assert (await budget.peek("1", signed_in=False)).remaining == 5_000


async def test_concurrent_spends_never_overdraw(make_budget: MakeBudget) -> None:
    budget = make_budget(anonymous_per_hour=100)
    outcomes = await asyncio.gather(
        *(budget.spend("192.0.2.1", 30, signed_in=False) for _ in range(10)), return_exceptions=True
    )
    assert sum(isinstance(o, BudgetState) for o in outcomes) == 3
    assert all(isinstance(o, BudgetState | RateLimited) for o in outcomes)
    assert (await budget.peek("192.0.2.1", signed_in=False)).remaining == 10


async def test_budgets_on_one_redis_share_it(make_redis_budget: MakeBudget) -> None:
    one, other = make_redis_budget(), make_redis_budget()  # as in two server processes
    assert one.shared and other.shared
    spent = await one.spend("User:9", 45_000, signed_in=True)
    seen = await other.peek("User:9", signed_in=True)
    assert (seen.limit, seen.remaining) == (50_000, 5_000)
    _same_window(seen, spent)
    with pytest.raises(RateLimited):
        await other.spend("User:9", 6_000, signed_in=True)
    assert (await one.spend("User:9", 5_000, signed_in=True)).remaining == 0
    assert await other.healthy()


async def test_an_in_memory_budget_is_not_shared() -> None:
    async with _budgets(False) as make:
        one, other = make(), make()
        await one.spend("User:9", 45_000, signed_in=True)
        assert not other.shared
        assert (await other.peek("User:9", signed_in=True)).remaining == 50_000


async def test_in_memory_counters_count_as_limits_memory_storage_does() -> None:
    """The same spends, refunds and readings on `Counters` and on limits' MemoryStorage with
    its FixedWindowRateLimiter (whose pair `Counters` replaces) give the same figures."""
    item = RateLimitItemPerHour(10, namespace="anonymous")
    ours = Counters()
    storage = MemoryStorage()
    theirs = FixedWindowRateLimiter(storage)
    figures: list[list[Any]] = [[], []]
    for cost in (4, 6, 1, -1, 3, -3, 0):
        for (window, refund), seen in zip(
            ((ours, ours.incr), (theirs, storage.incr)), figures, strict=True
        ):
            if cost < 0:  # a refused spend given back, as Budget does
                await refund(item.key_for("k"), item.get_expiry(), amount=cost)
                continue
            hit = await window.hit(item, "k", cost=cost)
            stats = await window.get_window_stats(item, "k")
            seen.append((hit, stats.remaining, round(stats.reset_time)))
    assert figures[0] == figures[1]
    assert [hit for hit, _, _ in figures[0]] == [True, True, False, False, True]


async def test_an_in_memory_window_ends_an_hour_after_it_opened_and_is_forgotten() -> None:
    now = [1_000.0]
    counters = Counters(clock=lambda: now[0])
    item = RateLimitItemPerHour(10, namespace="anonymous")
    assert await counters.hit(item, "a", cost=4)
    now[0] += 1_800
    assert await counters.hit(item, "a", cost=6)  # the window that opened at 1,000
    assert not await counters.hit(item, "a", cost=1)
    assert await counters.get_window_stats(item, "a") == (4_600.0, 0)
    now[0] = 4_600.0  # its end: the whole budget is back, in a window opening now
    assert await counters.get_window_stats(item, "a") == (4_600.0, 10)
    assert await counters.hit(item, "a", cost=1)
    assert await counters.get_window_stats(item, "a") == (8_200.0, 9)
    await counters.hit(item, "b", cost=1)  # "b" is seen once, then never again
    now[0] += Counters.SWEEP + 3_600
    await counters.hit(item, "c", cost=1)  # the sweep: "a" and "b" have ended
    assert len(counters) == 1


def test_budget_state_reports_like_github() -> None:
    state = BudgetState(5_000, 4_779, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert state.extension(221) == {
        "requested": 221,
        "limit": 5_000,
        "remaining": 4_779,
        "resetAt": "2030-01-02T03:04:05Z",
    }
    assert state.headers() == {
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "4779",
        "X-RateLimit-Reset": str(int(state.reset_at.timestamp())),
    }


def test_only_redis_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="Not a Redis URL"):
        Budget("memcached://127.0.0.1:11211")
