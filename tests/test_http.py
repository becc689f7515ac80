"""GraphQL over HTTP through the real ASGI app: methods, media types, errors, masking."""

from __future__ import annotations

import logging
from typing import Any

import pytest

QUERY = '{ organization(slug: "acme") { name } }'
JSON = {"content-type": "application/json"}
PREFLIGHT = {"graphql-preflight": "1"}


async def test_post_and_get_answer_the_same(client: Any) -> None:
    post = await client.post("/graphql", json={"query": QUERY})
    get = await client.get("/graphql", params={"query": QUERY}, headers=PREFLIGHT)
    v1 = await client.post("/v1/graphql", json={"query": QUERY})
    assert post.status_code == get.status_code == v1.status_code == 200
    assert (
        post.json()["data"]
        == get.json()["data"]
        == v1.json()["data"]
        == {"organization": {"name": "Acme Inc."}}
    )
    assert post.headers["content-type"].startswith("application/json")
    assert post.headers["server-timing"] == 'sql;desc="1 statements"'


async def test_get_takes_variables_as_json(client: Any) -> None:
    response = await client.get(
        "/graphql",
        headers=PREFLIGHT,
        params={
            "query": "query($s: String!) { organization(slug: $s) { slug } }",
            "variables": '{"s": "globex"}',
        },
    )
    assert response.json()["data"] == {"organization": {"slug": "globex"}}


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b'{"query": ', JSON, 400, "not valid JSON"),
        (b'{"variables": {}}', JSON, 400, "no `query`"),
        (b'{"query": ""}', JSON, 400, "no `query`"),
        (b'{"query": 42}', JSON, 400, "`query` must be a string"),
        (b'[{"query": "{ viewer { login } }"}]', JSON, 400, "Batched"),
        (b'"just a string"', JSON, 400, "JSON object"),
        (b'{"query": "{ viewer { login } }", "variables": [1]}', JSON, 400, "`variables`"),
        (b'{"query": "{ viewer { login } }", "operationName": 7}', JSON, 400, "`operationName`"),
        (b"query { viewer { login } }", {"content-type": "text/plain"}, 415, "application/json"),
        (
            b"query=%7Bviewer%7Bid%7D%7D",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "application/json",
        ),
        (b"x" * 100_001, JSON, 413, "over 100000 bytes"),
    ],
)
async def test_malformed_requests_are_clear_errors(
    client: Any, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code == status
    error = response.json()["errors"][0]
    assert message in error["message"]
    assert error["extensions"]["code"] in {
        "BAD_REQUEST",
        "PAYLOAD_TOO_LARGE",
        "UNSUPPORTED_MEDIA_TYPE",
    }


async def test_document_errors_carry_codes(client: Any) -> None:
    parse = await client.post("/graphql", json={"query": "{ organization("})
    invalid = await client.post("/graphql", json={"query": "{ nope }"})
    variables = await client.post(
        "/graphql",
        json={
            "query": "query($n: Int!) { organizations(first: $n) { totalCount } }",
            "variables": {"n": "ten"},
        },
    )
    assert parse.status_code == invalid.status_code == variables.status_code == 200
    assert parse.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert invalid.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert variables.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "data" not in parse.json() and "data" not in variables.json()


async def test_graphql_response_media_type_uses_status_codes(client: Any) -> None:
    accept = {"accept": "application/graphql-response+json"}
    ok = await client.post("/graphql", json={"query": QUERY}, headers=accept)
    invalid = await client.post("/graphql", json={"query": "{ nope }"}, headers=accept)
    assert ok.status_code == 200 and invalid.status_code == 400
    assert ok.headers["content-type"].startswith("application/graphql-response+json")


async def test_operation_name_selects_among_several(client: Any) -> None:
    document = 'query A { viewer { login } } query B { organization(slug: "acme") { slug } }'
    chosen = await client.post("/graphql", json={"query": document, "operationName": "B"})
    unnamed = await client.post("/graphql", json={"query": document})
    unknown = await client.post("/graphql", json={"query": document, "operationName": "C"})
    assert chosen.json()["data"] == {"organization": {"slug": "acme"}}
    assert unnamed.status_code == unknown.status_code == 400
    assert unnamed.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_unexpected_errors_are_masked_and_logged(
    client: Any, monkeypatch: Any, caplog: Any
) -> None:
    from loaders.rows import PROJECTS

    def explode(values: Any) -> None:
        raise RuntimeError("SELECT secret FROM internals")

    # a fault inside the data layer, under whichever executor runs the query
    monkeypatch.setattr(PROJECTS, "make", explode)
    with caplog.at_level(logging.ERROR):
        response = await client.post(
            "/graphql",
            json={"query": '{ organization(slug: "acme") { name project(key: "WEB") { key } } }'},
        )
    body = response.json()
    assert response.status_code == 200
    assert body["data"] == {"organization": {"name": "Acme Inc.", "project": None}}
    assert body["errors"] == [
        {
            "message": "Internal server error.",
            "locations": [{"line": 1, "column": 37}],
            "path": ["organization", "project"],
            "extensions": {"code": "INTERNAL", "requestId": response.headers["x-request-id"]},
        }
    ]
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "SELECT secret FROM internals" in caplog.text


async def test_mutations_over_get_are_refused(client: Any) -> None:
    response = await client.get(
        "/graphql",
        headers=PREFLIGHT,
        params={"query": 'mutation { logOut(input: {refreshToken: "x"}) { revoked } }'},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_graphiql_is_served_to_browsers(client: Any) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
    assert "query Dashboard" in response.text


async def test_healthz(client: Any) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"
