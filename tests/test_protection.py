"""Protection over HTTP: limits before execution, budgets, persisted queries, introspection,
timeouts, and the operational endpoints."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db import Database
from tests.conftest import app_client

NESTED = """{ organizations(first: 100) { nodes { projects(first: 100) { nodes {
  issues(first: 100) { nodes { comments(first: 100) { nodes { body } } } } } } } } }"""


async def test_too_complex_is_refused_before_any_sql(client: Any) -> None:
    response = await client.post("/graphql", json={"query": NESTED})
    error = response.json()["errors"][0]
    # 1 organizations + 100 projects pages + 100² issues pages + 100³ comments pages
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "figure": "cost",
        "value": 1_010_101,
        "limit": 50_000,
        "requestId": response.headers["x-request-id"],
    }
    assert error["message"] == "The query's cost is 1,010,101, over the limit of 50,000."
    assert "server-timing" not in response.headers  # nothing was executed


async def test_depth_and_aliases_are_limited(database: Database) -> None:
    async with app_client(database, max_depth=3, max_aliases=2) as http:
        deep = await http.post(
            "/graphql",
            json={
                "query": '{ organization(slug: "acme") {'
                " projects { nodes { organization { name }"
                " } } } }"
            },
        )
        aliased = await http.post(
            "/graphql", json={"query": "{ a: viewer { id } b: viewer { id } c: viewer { id } }"}
        )
    assert deep.json()["errors"][0]["extensions"]["figure"] == "depth"
    assert aliased.json()["errors"][0]["extensions"]["figure"] == "aliases"


async def test_every_response_reports_its_cost_and_the_budget(client: Any) -> None:
    query = (
        '{ rateLimit { cost limit remaining } organization(slug: "acme") {'
        " projects(first: 10) { nodes { issues(first: 5) { totalCount } } } } }"
    )
    first = (await client.post("/graphql", json={"query": query})).json()
    second = (await client.post("/graphql", json={"query": query})).json()
    cost = first["extensions"]["cost"]
    assert cost["requested"] == 11 and cost["limit"] == 5_000
    assert second["extensions"]["cost"]["remaining"] == cost["remaining"] - 11
    assert second["data"]["rateLimit"] == {
        "cost": 11,
        "limit": 5_000,
        "remaining": cost["remaining"] - 11,
    }


async def test_one_documents_cost_follows_each_requests_variables(client: Any) -> None:
    """A document's analysis is kept between requests, yet each request is charged for
    what its own variables ask: page sizes, skipped parts, defaults, and nothing for the
    values (a cursor, a slug) that change no figure."""
    query = """query Q($n: Int = 10, $m: Int!, $skip: Boolean!, $slug: String!) {
      organization(slug: $slug) { projects(first: $n) { nodes {
        issues(first: $m) @skip(if: $skip) { nodes { comments(first: 2) { totalCount } } }
      } } } }"""

    async def cost(**variables: Any) -> int:
        body = {"query": query, "variables": variables}
        response = (await client.post("/graphql", json=body)).json()
        assert "errors" not in response, response
        requested: int = response["extensions"]["cost"]["requested"]
        return requested

    # 1 projects page, one issues page per project, one comments page per issue
    given = {"m": 5, "skip": False, "slug": "acme"}
    assert await cost(**given) == 1 + 10 + 10 * 5  # $n's default
    assert await cost(**{**given, "slug": "globex"}) == 61  # the slug changes no figure
    assert await cost(**{**given, "n": 3}) == 1 + 3 + 3 * 5
    assert await cost(**{**given, "n": 3, "skip": True}) == 1
    assert await cost(**{**given, "n": None}) == 1 + 20 + 20 * 5  # null: the default size
    assert await cost(**{**given, "m": 7}) == 1 + 10 + 10 * 7
    assert await cost(**given) == 61


async def test_over_budget_is_429_with_retry_after(database: Database) -> None:
    async with app_client(database, rate_limit_anonymous=15) as http:
        query = "{ organizations(first: 10) { nodes { projects(first: 1) { totalCount } } } }"
        ok = await http.post("/graphql", json={"query": query})
        refused = await http.post("/graphql", json={"query": query})
    assert ok.status_code == 200 and ok.json()["extensions"]["cost"]["remaining"] == 4
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def _sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


async def test_automatic_persisted_queries(client: Any) -> None:
    query = '{ organization(slug: "globex") { slug } }'
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": _sha(query)}}
    unknown = await client.post("/graphql", json={"extensions": persisted})
    registered = await client.post("/graphql", json={"query": query, "extensions": persisted})
    by_hash = await client.get(
        "/graphql",
        headers={"graphql-preflight": "1"},
        params={
            "extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": _sha(query)}})
        },
    )
    mismatch = await client.post(
        "/graphql", json={"query": "{ viewer { id } }", "extensions": persisted}
    )
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert (
        registered.json()["data"] == by_hash.json()["data"] == {"organization": {"slug": "globex"}}
    )
    assert mismatch.status_code == 400


async def test_the_persisted_query_cache_is_bounded_by_size_as_well_as_by_count(
    database: Database,
) -> None:
    """Without Redis, persisted documents live in this process: a few large ones evict the
    oldest before the count is reached."""

    def persisted(query: str, with_document: bool) -> dict[str, Any]:
        extensions = {"persistedQuery": {"version": 1, "sha256Hash": _sha(query)}}
        return (
            {"query": query, "extensions": extensions}
            if with_document
            else {"extensions": extensions}
        )

    # three documents of about 1,000 characters in a cache of 2,500
    documents = [
        f'{{ organization(slug: "acme") {{ name }} }} # {n} {"x" * 1000}' for n in range(3)
    ]
    async with app_client(database, persisted_queries_cache_bytes=2_500) as http:
        for document in documents:
            learned = await http.post("/graphql", json=persisted(document, True))
            assert learned.status_code == 200, learned.text
        by_hash = [await http.post("/graphql", json=persisted(d, False)) for d in documents]
    codes = [(r.json().get("errors") or [{}])[0].get("extensions", {}).get("code") for r in by_hash]
    assert codes == ["PERSISTED_QUERY_NOT_FOUND", None, None]


async def test_persisted_queries_only_refuses_new_documents(
    database: Database, tmp_path: Any
) -> None:
    allowed = '{ organization(slug: "acme") { name } }'
    manifest = tmp_path / "persisted-queries.json"
    manifest.write_text(json.dumps({"q1": allowed}))
    async with app_client(
        database, persisted_queries_only=True, persisted_queries_file=str(manifest)
    ) as http:
        by_hash = await http.post(
            "/graphql",
            json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": _sha(allowed)}}},
        )
        by_text = await http.post("/graphql", json={"query": allowed})
        other = await http.post("/graphql", json={"query": "{ viewer { id } }"})
    assert (
        by_hash.json()["data"] == by_text.json()["data"] == {"organization": {"name": "Acme Inc."}}
    )
    assert other.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"


async def test_introspection_and_graphiql_can_be_turned_off(database: Database) -> None:
    async with app_client(database, introspection=False, graphiql=False) as http:
        schema = await http.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        typo = await http.post("/graphql", json={"query": '{ organisation(slug: "a") { id } }'})
        page = await http.get("/graphql", headers={"accept": "text/html"})
        typename = await http.post("/graphql", json={"query": "{ __typename }"})
    assert schema.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "Did you mean" not in typo.text
    assert page.status_code == 400 and "graphiql" not in page.text.lower()
    assert typename.json()["data"] == {"__typename": "Query"}


async def test_suggestions_are_on_with_introspection(client: Any) -> None:
    typo = await client.post("/graphql", json={"query": '{ organisation(slug: "a") { id } }'})
    assert "Did you mean" in typo.text


async def test_statement_timeout_is_a_clear_error_and_the_pool_recovers(
    database: Database, database_url: str
) -> None:
    slow = Database.connect  # a separate pool whose statements time out at once
    timed = await slow(database_url, min_size=1, max_size=1, statement_timeout_ms=1)
    try:
        async with app_client(timed) as http:
            response = await http.post("/graphql", json={"query": NESTED.replace("100", "3")})
        codes = {e["extensions"]["code"] for e in response.json()["errors"]}
        assert codes == {"TIMEOUT"}
        connection = await timed.acquire()
        try:
            assert await _probe(connection) == 1
        finally:
            await timed.release(connection)
    finally:
        await timed.close()


async def _probe(connection: asyncpg.Connection) -> int:
    """SELECT 1 on a connection whose statements time out after 1 ms: on a busy machine
    even that can be cancelled, so a cancelled probe is tried again. A broken connection
    raises something else, and fails the test."""
    for _ in range(50):
        try:
            value: int = await connection.fetchval("SELECT 1")
            return value
        except asyncpg.QueryCanceledError:
            continue
    raise AssertionError("SELECT 1 was cancelled 50 times in a row")


async def test_request_deadline(database: Database) -> None:
    async with app_client(database, request_timeout=0.000001) as http:
        response = await http.post("/graphql", json={"query": NESTED.replace("100", "5")})
        after = await http.get("/readyz")
    assert response.status_code == 504
    assert response.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"
    assert after.status_code == 200


async def test_health_metrics_and_request_ids(client: Any) -> None:
    await client.post("/graphql", json={"query": "query Named { viewer { id } }"})
    await client.post("/graphql", json={"query": "{ nope }"})
    echoed = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    ready = await client.get("/readyz")
    scraped = await client.get("/metrics")
    assert echoed.headers["x-request-id"] == "abc-123"
    assert ready.status_code == 200 and ready.text == "ready"
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    requests = families["issuegraph_requests"]
    assert any(s.labels.get("operation") == "Named" for s in requests.samples)
    errors = families["issuegraph_graphql_errors"]
    assert any(s.labels.get("code") == "GRAPHQL_VALIDATION_FAILED" for s in errors.samples)
    for name in (
        "issuegraph_sql_statements_per_request",
        "issuegraph_query_cost",
        "issuegraph_db_pool_size",
    ):
        assert name in families


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_media_types(client: Any, accept: str) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={"accept": accept}
    )
    assert response.headers["content-type"].startswith(accept)
