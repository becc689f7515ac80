"""Bad input over HTTP: malformed and abusive requests get a clear error, quickly.

Every case of the table is sent through the real ASGI app and must come back
  - with the right HTTP status and `errors[0].extensions.code` (every error carrying a code),
  - as JSON with nothing of the server's insides in it: no traceback, no SQL, no Python
    exception class names, no library module names,
  - within a bound (`asyncio.wait_for(..., GUARD)`: a hang guard, not a timing assertion),
  - with the server healthy afterwards: a normal query still answers, `/readyz` is 200.

Status codes follow the GraphQL-over-HTTP spec. Most document-level cases send
`Accept: application/graphql-response+json`, under which a request that cannot execute (no
`data` in the response) MUST be a 4xx, while a response with `data` (even `data: null`, a
field error that bubbled to the root) SHOULD be a 200; a few cases send the legacy
`application/json`, under which every well-formed GraphQL response is a 200. Request-level
problems (the body is not a GraphQL request at all) are a 4xx with either media type.
Where a code is debatable, the comment beside the case says why it was chosen, by the
spec first and by what GitHub's and Apollo's servers answer second.

A case with `code=None` is abusive-looking but valid input, which must simply be answered:
no errors, and `check` says what the data must be. A tuple of codes lists the answers that
are all right (None among them: no error at all), for the few cases where either is.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import random
import re
import string
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from core.db import Database
from execution.ids import encode_id
from tests.conftest import TEST_SETTINGS

GUARD = 10.0  # seconds; a hang guard around each request, not a performance target
JSON_TYPE = "application/json"
STRICT = {"accept": "application/graphql-response+json"}
LEGACY = {"accept": "application/json"}
PREFLIGHT = {"graphql-preflight": "1"}
HEALTHY = '{ organization(slug: "acme") { name } }'
HEALTHY_DATA = {"organization": {"name": "Acme Inc."}}
MAX_BODY = TEST_SETTINGS.max_body_bytes  # 100_000 in the tests

# What must never reach a client: tracebacks, source paths, SQL and database driver text,
# Python exception class names (ValueError, JSONDecodeError, ValidationAbortedError …),
# library module names.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|line \d+, in |"
    r"asyncpg|psycopg|postgres|sqlstate|syntax error at or near|invalid byte sequence|"
    r"\bSELECT\b|\bINSERT INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE FROM\b|\bWHERE\b|"
    r"\bunnest\(|::bigint|"
    r"\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b|"
    r"\borjson\b|\bstrawberry\b|\bstarlette\b|\bgraphql\.[a-z_]+\b|\bbinascii\b"
)

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
Headers = dict[str, Any]  # str values, or bytes for a header that is not ASCII
Check = Callable[[httpx.Response, dict[str, Any]], None]


# Request builders ---------------------------------------------------------------------


def raw(
    body: bytes | Callable[[], AsyncIterator[bytes]],
    content_type: str | None = JSON_TYPE,
    headers: Headers | None = None,
    method: str = "POST",
) -> Send:
    """Send `body` exactly as given (a callable makes a streamed body, no Content-Length)."""

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        sent: Headers = dict(headers or {})
        if content_type is not None:
            sent["content-type"] = content_type
        content = body() if callable(body) else body
        return await client.request(method, "/graphql", content=content, headers=sent)

    return send


def post(payload: Any, *, strict: bool = True, headers: Headers | None = None) -> Send:
    """POST `payload` as JSON (any JSON value, not only a request object)."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    return raw(body, headers={**(STRICT if strict else LEGACY), **(headers or {})})


def gql(
    query: str,
    variables: Any = None,
    *,
    operation_name: Any = None,
    extensions: Any = None,
    strict: bool = True,
    headers: Headers | None = None,
) -> Send:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    if operation_name is not None:
        payload["operationName"] = operation_name
    if extensions is not None:
        payload["extensions"] = extensions
    return post(payload, strict=strict, headers=headers)


def get(params: dict[str, str], *, headers: Headers | None = None, strict: bool = True) -> Send:
    async def send(client: httpx.AsyncClient) -> httpx.Response:
        sent: Headers = {
            **(STRICT if strict else LEGACY),
            **(PREFLIGHT if headers is None else headers),
        }
        return await client.get("/graphql", params=params, headers=sent)

    return send


def get_raw(url: str) -> Send:
    """GET a URL whose query string is written out (percent-escapes kept as they are)."""

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(url, headers={**STRICT, **PREFLIGHT})

    return send


def bearer(token: str) -> Headers:
    return {"authorization": f"Bearer {token}"}


def signed_in(query: str, variables: dict[str, Any] | None = None) -> Send:
    """Send `query` as the demo user alice, signed in through logIn (failed sign-ins slow
    down only their own (login, address) pair: the table's, for other logins, never this)."""

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        signed = await client.post(
            "/graphql",
            json={
                "query": 'mutation { logIn(input: {login: "alice", password: '
                '"alice-in-acme"}) { tokens { accessToken } } }'
            },
        )
        token = signed.json()["data"]["logIn"]["tokens"]["accessToken"]
        return await gql(query, variables, headers=bearer(token))(client)

    return send


# Inputs --------------------------------------------------------------------------------


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cursor(*parts: Any) -> str:
    return b64(json.dumps(list(parts)))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def token(*, key: str | None = None, algorithm: str = "HS256", **claims: Any) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": "1",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "aud": TEST_SETTINGS.jwt_audience,
        "iss": TEST_SETTINGS.jwt_issuer,
        **claims,
    }
    with warnings.catch_warnings():  # HS512 with the service's 44-byte key: "too short"
        warnings.simplefilter("ignore")
        return jwt.encode(payload, key or TEST_SETTINGS.jwt_secret or "", algorithm=algorithm)


def unsigned_token() -> str:
    """An `alg: none` token written by hand (PyJWT will not decode one, but may encode)."""
    now = int(datetime.now(UTC).timestamp())
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}))
    claims = b64(
        json.dumps(
            {
                "sub": "1",
                "iat": now,
                "exp": now + 300,
                "aud": TEST_SETTINGS.jwt_audience,
                "iss": TEST_SETTINGS.jwt_issuer,
            }
        )
    )
    return f"{header}.{claims}."


ISSUE_1 = encode_id("Issue", 1)
ORGANIZATION_1 = encode_id("Organization", 1)
USER = "query($l: String!) { user(login: $l) { login } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
PROJECTS_AFTER = (
    'query($c: String) { organization(slug: "acme") { projects(first: 1, after: $c)'
    " { totalCount } } }"
)
ISSUES_BY_PRIORITY_AFTER = """query($c: String) { organization(slug: "acme") {
  project(key: "WEB") { issues(first: 1, after: $c, orderBy: {field: PRIORITY, direction: DESC})
  { totalCount } } } }"""
LABELS_AFTER = """query($c: String) { organization(slug: "acme") { project(key: "WEB") {
  labels(first: 1, after: $c) { totalCount } } } }"""
COMMENTS_AFTER = """query($c: String) { organization(slug: "acme") { project(key: "WEB") {
  issue(number: 1) { comments(first: 1, after: $c) { totalCount } } } } }"""
ISSUES_FILTERED = """query($f: IssueFilters) { organization(slug: "acme") { project(key: "WEB") {
  issues(filterBy: $f) { totalCount } } } }"""


LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { userErrors { code } } }"
NOISE_20K = "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=20_000))


def nested(opening: str, closing: str, levels: int, inner: str) -> str:
    return opening * levels + inner + closing * levels


# 50 levels of organization → projects → nodes → organization …: depth 151.
DEEP_ORGANIZATIONS = (
    '{ organization(slug: "acme") { '
    + nested("projects(first: 1) { nodes { organization { ", " } } }", 50, "slug")
    + " } }"
)
# issue → project → organization → project → issue …, 12 times round: depth 50.
DEEP_ISSUES = (
    f'{{ node(id: "{ISSUE_1}") {{ ... on Issue {{ '
    + nested(
        'project { organization { project(key: "WEB") { issue(number: 1) { ',
        " } } } }",
        12,
        "title",
    )
    + " } } }"
)
# Past graphql-core's parser nesting limit (200): 268 selection sets.
TOO_NESTED_TO_PARSE = (
    "{ viewer { "
    + nested("organizations { nodes { members { nodes { ", " } } } }", 67, "login")
    + " } }"
)
# __type { fields { type { fields { type … 40 times: depth 81. ofType would not count.
INTROSPECTION_BOMB = (
    '{ __type(name: "Query") { ' + nested("fields { type { ", " } }", 40, "name") + " } }"
)
# ofType nests as deep as the parser allows, but only as deep as the schema's wrappers go.
OF_TYPE_TOWER = (
    '{ __type(name: "Query") { fields { type { '
    + nested("ofType { ", " }", 180, "name")
    + " } } } }"
)


def fragment_bomb(levels: int = 30) -> str:
    """Each fragment spreads the previous one twice under two aliases: 2^30 leaves."""

    def twice(i: int) -> str:
        return (
            f"organizations(first: 1) {{ nodes {{ members(first: 1) {{ nodes {{ ...F{i - 1}"
            " } } } }"
        )

    fragments = "\n".join(
        f"fragment F{i} on User {{ a: {twice(i)} b: {twice(i)} }}" for i in range(1, levels + 1)
    )
    return f"{{ viewer {{ ...F{levels} }} }}\n{fragments}\nfragment F0 on User {{ login }}"


def flat_fragment_bomb(levels: int = 30) -> str:
    """Each fragment spreads the previous one twice at one place: merges to one field."""
    fragments = "\n".join(
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    )
    return f"{{ ...F{levels} }}\n{fragments}\nfragment F0 on Query {{ __typename }}"


ALIASES_1000 = "{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }"
INCLUDE_1000 = "{ __typename " + "@include(if: true) " * 1000 + "}"
INCLUDE_ON_60_FRAGMENTS = "{ " + "... @include(if: true) { __typename } " * 60 + "}"
TOKENS_OVER_LIMIT = "{ " + "a " * 10_001 + "}"  # about 20 kB: under the body cap
COST_100_CUBED = """{ organizations(first: 100) { nodes { projects(first: 100) { nodes {
  issues(first: 100) { nodes { comments(first: 100) { totalCount } } } } } } } }"""
# 1 + 100 + 100·100 = 10,101 points: within the query limit (50,000), over the whole hourly
# budget of an anonymous client (5,000).
OVER_ANONYMOUS_BUDGET = """{ organizations(first: 100) { nodes { projects(first: 100) {
  nodes { issues(first: 1) { totalCount } } } } } }"""
SUBSCRIPTION = 'subscription { issueEvents(projectId: "' + encode_id("Project", 1) + '") { kind } }'


def deep_json(levels: int, closed: bool = True) -> bytes:
    return b"[" * levels + (b"]" * levels if closed else b"")


def multipart_body() -> bytes:
    return (
        b'--XyZ\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
        b'{"query": "{ __typename }"}\r\n--XyZ--\r\n'
    )


def exactly(size: int) -> bytes:
    """A valid request body of exactly `size` bytes."""
    start, end = b'{"query": "{ __typename }", "padding": "', b'"}'
    return start + b"x" * (size - len(start) - len(end)) + end


async def streamed_over_cap() -> AsyncIterator[bytes]:
    yield b'{"query": "{ __typename }", "padding": "'
    for _ in range(MAX_BODY // 10_000 + 2):
        yield b"x" * 10_000
    yield b'"}'


# Checks of the data of answered cases ------------------------------------------------------


def data_is(expected: Any) -> Check:
    def check(response: httpx.Response, body: dict[str, Any]) -> None:
        assert body.get("data") == expected, body

    return check


def data_null_present(response: httpx.Response, body: dict[str, Any]) -> None:
    # GraphQL spec 7.1.1: an error during execution that prevents a valid response leaves
    # `"data": null` in the response; only a request error (before execution) omits it.
    assert "data" in body and body["data"] is None, body


def introspected(response: httpx.Response, body: dict[str, Any]) -> None:
    fields = body["data"]["__type"]["fields"]
    assert isinstance(fields, list) and fields, body


def sign_in_refused(response: httpx.Response, body: dict[str, Any]) -> None:
    assert body.get("data") == {"logIn": {"userErrors": [{"code": "INVALID_CREDENTIALS"}]}}, body


def request_id_replaced(response: httpx.Response, body: dict[str, Any]) -> None:
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", response.headers["x-request-id"]), (
        response.headers["x-request-id"][:200]
    )
    assert body.get("data") == {"__typename": "Query"}, body


def header_starts(name: str, prefix: str) -> Check:
    def check(response: httpx.Response, body: dict[str, Any]) -> None:
        assert response.headers.get(name, "").startswith(prefix), dict(response.headers)
        assert "data" not in body, body

    return check


def no_data_nor_retry_after(response: httpx.Response, body: dict[str, Any]) -> None:
    no_data(response, body)
    assert "retry-after" not in response.headers, dict(response.headers)


def allows(*methods: str) -> Check:
    def check(response: httpx.Response, body: dict[str, Any]) -> None:
        allowed = {m.strip() for m in response.headers.get("allow", "").split(",")}
        assert set(methods) <= allowed, dict(response.headers)

    return check


def no_data(response: httpx.Response, body: dict[str, Any]) -> None:
    assert "data" not in body, body


# The table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    send: Send
    status: int
    code: str | tuple[str | None, ...] | None
    check: Check | None = None


BAD = "BAD_REQUEST"
INPUT = "BAD_USER_INPUT"
PARSE = "GRAPHQL_PARSE_FAILED"
INVALID = "GRAPHQL_VALIDATION_FAILED"
COMPLEX = "QUERY_TOO_COMPLEX"
UNAUTH = "UNAUTHENTICATED"

CASES = [
    # Broken JSON: a request that is not JSON is a 400 whatever the Accept header.
    Case("json-truncated", raw(b'{"query": "{ __typename }"'), 400, BAD),
    Case("json-trailing-garbage", raw(b'{"query": "{ __typename }"} trailing'), 400, BAD),
    Case(
        "json-two-documents",
        raw(b'{"query": "{ __typename }"}{"query": "{ __typename }"}'),
        400,
        BAD,
    ),
    Case("json-nan", raw(b'{"query": "{ __typename }", "variables": {"n": NaN}}'), 400, BAD),
    # Well-formed JSON numbers past what a double holds: RFC 8259 section 6 lets a parser
    # limit the range it accepts, and a clear 400 beats a silent infinity.
    Case(
        "json-number-out-of-range",
        raw(b'{"query": "{ __typename }", "variables": {"n": 1e999}}'),
        400,
        BAD,
    ),
    Case("json-single-quotes", raw(b"{'query': '{ __typename }'}"), 400, BAD),
    Case("json-trailing-comma", raw(b'{"query": "{ __typename }",}'), 400, BAD),
    Case("json-comment", raw(b'// hello\n{"query": "{ __typename }"}'), 400, BAD),
    # 100,000 levels of arrays is 200 kB: over the body cap before anything parses it.
    Case("json-arrays-100k-deep", raw(deep_json(100_000)), 413, "PAYLOAD_TOO_LARGE"),
    # Under the cap: 99,000 unclosed levels, and 49,000 closed ones inside `variables`.
    Case(
        "json-arrays-99k-deep-unclosed",
        raw(b'{"query": "{ __typename }", "variables": {"a": ' + deep_json(99_000, False)),
        400,
        BAD,
    ),
    Case(
        "json-arrays-49k-deep-in-variables",
        raw(b'{"query": "{ __typename }", "variables": {"a": ' + deep_json(49_000) + b"}}"),
        400,
        BAD,
    ),
    Case("json-objects-10k-deep", raw(b'{"a": ' * 10_000 + b"1" + b"}" * 10_000), 400, BAD),
    Case(
        "json-invalid-utf8",
        raw(b'{"query": "{ user(login: \\"\xff\xfe\\") { login } }"}'),
        400,
        BAD,
    ),
    Case("json-overlong-utf8", raw(b'{"query": "{ __typename }", "x": "\xc0\xaf"}'), 400, BAD),
    # RFC 8259 8.1: senders MUST NOT add a BOM, parsers MAY ignore one. GraphQL-over-HTTP
    # asks for UTF-8 JSON; refusing it with a clear 400 is the stricter, allowed answer.
    Case("json-bom", raw(b'\xef\xbb\xbf{"query": "{ __typename }"}'), 400, BAD),
    # JSON allows the escape `\ud800`, but it is not a Unicode scalar value: no valid string.
    Case(
        "json-lone-surrogate-in-variable",
        raw(
            b'{"query": "query($l: String!) { user(login: $l) { login } }",'
            b' "variables": {"l": "\\ud800"}}'
        ),
        400,
        BAD,
    ),
    # Wrong content types: the spec's MUST is application/json; anything else is a 415.
    Case(
        "content-type-text-plain",
        raw(b'{"query": "{ __typename }"}', "text/plain"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    Case(
        "content-type-form-urlencoded",
        raw(b"query=%7B__typename%7D", "application/x-www-form-urlencoded"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    Case(
        "content-type-multipart",
        raw(multipart_body(), "multipart/form-data; boundary=XyZ"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    Case(
        "content-type-missing",
        raw(b'{"query": "{ __typename }"}', None),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    Case(
        "content-type-application-graphql",
        raw(b"{ __typename }", "application/graphql"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    Case(
        "content-type-json-lookalike",
        raw(b'{"query": "{ __typename }"}', "application/jsonx"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    # The media type is case-insensitive and may carry parameters: this one is fine.
    Case(
        "content-type-uppercase-with-charset",
        raw(b'{"query": "{ __typename }"}', "Application/JSON; charset=UTF-8"),
        200,
        None,
        data_is({"__typename": "Query"}),
    ),
    # Empty and non-object bodies.
    Case("body-empty", raw(b""), 400, BAD),
    Case("body-whitespace", raw(b" \r\n\t "), 400, BAD),
    Case("body-empty-object", raw(b"{}"), 400, BAD),
    Case("body-array-batch-of-1000", post([{"query": "{ __typename }"}] * 1000), 400, BAD),
    Case("body-empty-array", post([]), 400, BAD),
    Case("body-string", post("{ __typename }"), 400, BAD),
    Case("body-number", post(42), 400, BAD),
    Case("body-null", post(None), 400, BAD),
    Case("body-true", post(True), 400, BAD),
    # Wrong field types.
    Case("query-object", post({"query": {"kind": "Document", "definitions": []}}), 400, BAD),
    Case("query-array", post({"query": ["{ __typename }"]}), 400, BAD),
    Case("query-boolean", post({"query": True}), 400, BAD),
    Case("query-null", post({"query": None}), 400, BAD),
    Case("query-whitespace", post({"query": " \n\t "}), 400, BAD),
    # In a POST `variables` is a map; a JSON-encoded string is the GET form only.
    Case("variables-string", gql("{ __typename }", '{"a": 1}'), 400, BAD),
    Case("variables-number", gql("{ __typename }", 7), 400, BAD),
    Case("variables-array", gql("{ __typename }", [{"a": 1}]), 400, BAD),
    Case("operation-name-object", gql("{ __typename }", operation_name={"a": 1}), 400, BAD),
    Case("operation-name-true", gql("{ __typename }", operation_name=True), 400, BAD),
    Case("extensions-array", gql("{ __typename }", extensions=[1, 2]), 400, BAD),
    Case("extensions-string", gql("{ __typename }", extensions="{}"), 400, BAD),
    # Size: over the body cap (declared, or streamed without a Content-Length) → 413;
    # under the cap but over the token limit → QUERY_TOO_COMPLEX (a document error: 400
    # with graphql-response+json, 200 with application/json).
    Case(
        "body-over-cap-declared",
        post({"query": "{ __typename }", "x": "y" * MAX_BODY}),
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    Case(
        "body-exactly-at-cap",
        raw(exactly(MAX_BODY), headers=LEGACY),
        200,
        None,
        data_is({"__typename": "Query"}),
    ),
    Case("body-over-cap-streamed", raw(streamed_over_cap), 413, "PAYLOAD_TOO_LARGE"),
    Case("tokens-over-limit", gql(TOKENS_OVER_LIMIT), 400, COMPLEX, no_data),
    Case("tokens-over-limit-legacy", gql(TOKENS_OVER_LIMIT, strict=False), 200, COMPLEX, no_data),
    # Query limits.
    Case("aliases-1000", gql(ALIASES_1000), 400, COMPLEX, no_data),
    Case("depth-50-organization-levels", gql(DEEP_ORGANIZATIONS), 400, COMPLEX, no_data),
    Case("depth-issue-project-organization-cycle", gql(DEEP_ISSUES), 400, COMPLEX, no_data),
    # Nested past the parser's own limit: a syntax error, said so, never a RecursionError.
    Case("nesting-past-parser-limit", gql(TOO_NESTED_TO_PARSE), 400, PARSE, no_data),
    # graphql-core's MaxIntrospectionDepthRule (graphql-js's too) refuses it at validation,
    # before the depth limit would.
    Case("introspection-depth-bomb", gql(INTROSPECTION_BOMB), 400, INVALID, no_data),
    Case("introspection-of-type-tower", gql(OF_TYPE_TOWER, strict=False), 200, None, introspected),
    Case(
        "fragment-cycle",
        gql("{ viewer { ...A } } fragment A on User { ...B login } fragment B on User { ...A }"),
        400,
        INVALID,
        no_data,
    ),
    Case(
        "fragment-self-cycle",
        gql("{ viewer { ...A } } fragment A on User { ...A }"),
        400,
        INVALID,
        no_data,
    ),
    Case("fragment-bomb-30-aliased", gql(fragment_bomb()), 400, COMPLEX, no_data),
    # Valid: the 2^30 spreads merge into one field, and are answered at once.
    Case(
        "fragment-bomb-30-merged",
        gql(flat_fragment_bomb()),
        200,
        None,
        data_is({"__typename": "Query"}),
    ),
    # `@include` is not repeatable: 1,000 of them on one field is a validation error.
    Case("directive-flood-1000-on-one-field", gql(INCLUDE_1000), 400, INVALID, no_data),
    Case(
        "directive-flood-60-inline-fragments", gql(INCLUDE_ON_60_FRAGMENTS), 400, COMPLEX, no_data
    ),
    Case("directive-unknown", gql("{ __typename @nope }"), 400, INVALID, no_data),
    Case("directive-include-without-if", gql("{ __typename @include }"), 400, INVALID, no_data),
    Case(
        "directive-include-if-string",
        gql('{ __typename @include(if: "yes") }'),
        400,
        INVALID,
        no_data,
    ),
    Case("cost-100x100x100", gql(COST_100_CUBED), 400, COMPLEX, no_data),
    # Within the query limit, but more than the whole hourly budget: no Retry-After helps.
    Case(
        "cost-over-anonymous-budget",
        gql(OVER_ANONYMOUS_BUDGET),
        429,
        "RATE_LIMITED",
        no_data_nor_retry_after,
    ),
    # `nodes` is non-null at the root: the field error nulls `data`, which the response
    # keeps (`"data": null`); per GraphQL-over-HTTP that SHOULD be a 200, even with
    # graphql-response+json ("Using 4xx and 5xx status codes in this situation is not
    # recommended"): the request itself was fine and did execute.
    Case(
        "nodes-101-ids",
        gql(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            {"ids": [encode_id("User", i) for i in range(1, 102)]},
        ),
        200,
        INPUT,
        data_null_present,
    ),
    # The same with application/json: a 200, and `data: null` still in the response.
    Case(
        "nodes-101-ids-legacy",
        gql(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            {"ids": [encode_id("User", i) for i in range(1, 102)]},
            strict=False,
        ),
        200,
        INPUT,
        data_null_present,
    ),
    # Variables: a value that cannot be coerced is a request error (no `data`).
    Case(
        "variable-string-for-int",
        gql("query($n: Int!) { organizations(first: $n) { totalCount } }", {"n": "10"}),
        400,
        INPUT,
        no_data,
    ),
    Case(
        "variable-float-for-int",
        gql("query($n: Int!) { organizations(first: $n) { totalCount } }", {"n": 1.5}),
        400,
        INPUT,
        no_data,
    ),
    Case(
        "variable-missing-required",
        gql("query($n: Int!) { organizations(first: $n) { totalCount } }", {}),
        400,
        INPUT,
        no_data,
    ),
    Case("variable-null-for-non-null", gql(USER, {"l": None}), 400, INPUT, no_data),
    Case(
        "variable-int-overflow",
        gql("query($n: Int) { organizations(first: $n) { totalCount } }", {"n": 2**31}),
        400,
        INPUT,
        no_data,
    ),
    Case(
        "variable-unknown-input-field",
        gql(ISSUES_FILTERED, {"f": {"bogus": 1}}),
        400,
        INPUT,
        no_data,
    ),
    Case(
        "variable-bad-enum", gql(ISSUES_FILTERED, {"f": {"states": ["MAYBE"]}}), 400, INPUT, no_data
    ),
    Case(
        "variable-list-1000-deep",
        raw(
            b'{"query": "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", "variables":'
            b' {"ids": ' + deep_json(1_000) + b"}}",
            headers=STRICT,
        ),
        400,
        INPUT,
        no_data,
    ),
    Case(
        "variable-type-not-an-input",
        gql("query($u: User) { viewer { login } }"),
        400,
        INVALID,
        no_data,
    ),
    # The spec's CoerceVariableValues reads only the declared variables: extra ones are
    # ignored, not an error (graphql-js and GitHub do the same).
    Case(
        "variable-extra-unknown-is-ignored",
        gql(HEALTHY, {"stray": 1, "more": [1, 2]}),
        200,
        None,
        data_is(HEALTHY_DATA),
    ),
    # Page arguments. A literal out of Int's range is a validation error; a bad page size
    # is an error on its field, which nulls `organization` (nullable): partial data, 200.
    Case(
        "first-2-to-the-31-literal",
        gql("{ organizations(first: 2147483648) { totalCount } }"),
        400,
        INVALID,
        no_data,
    ),
    Case(
        "first-negative",
        gql('{ organization(slug: "acme") { projects(first: -1) { totalCount } } }'),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    Case(
        "first-101",
        gql('{ organization(slug: "acme") { projects(first: 101) { totalCount } } }'),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    Case(
        "first-and-last",
        gql('{ organization(slug: "acme") { projects(first: 1, last: 1) { totalCount } } }'),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    # Global ids: malformed ones are BAD_USER_INPUT on `node` (nullable: partial data).
    Case("id-not-base64", gql(NODE, {"id": "!!not base64!!"}), 200, INPUT, data_is({"node": None})),
    Case(
        "id-no-primary-key",
        gql(NODE, {"id": b64("Issue:abc")}),
        200,
        INPUT,
        data_is({"node": None}),
    ),
    Case("id-zero", gql(NODE, {"id": b64("Issue:0")}), 200, INPUT, data_is({"node": None})),
    Case(
        "id-past-bigint",
        gql(NODE, {"id": b64("Issue:99999999999999999999")}),
        200,
        INPUT,
        data_is({"node": None}),
    ),
    Case(
        "id-unknown-type", gql(NODE, {"id": b64("Secret:1")}), 200, INPUT, data_is({"node": None})
    ),
    Case(
        "id-padded-non-canonical",
        gql(NODE, {"id": ISSUE_1 + "=="}),
        200,
        INPUT,
        data_is({"node": None}),
    ),
    Case(
        "id-arabic-indic-digits",
        gql(NODE, {"id": b64("Issue:١٢")}),
        200,
        INPUT,
        data_is({"node": None}),
    ),
    Case("id-50k-chars", gql(NODE, {"id": "A" * 50_000}), 200, INPUT, data_is({"node": None})),
    Case(
        "id-well-formed-but-missing",
        gql(NODE, {"id": encode_id("Issue", 2**62)}),
        200,
        None,
        data_is({"node": None}),
    ),
    Case(
        "id-of-another-type-in-mutation",
        signed_in(
            "mutation($i: AddCommentInput!) { addComment(input: $i) { comment { id } } }",
            {"i": {"issueId": ORGANIZATION_1, "body": "never written"}},
        ),
        200,
        INPUT,
        data_is({"addComment": None}),
    ),
    # Cursors: anything the server did not issue for this ordering is BAD_USER_INPUT.
    Case(
        "cursor-random-base64",
        gql(PROJECTS_AFTER, {"c": b64(b"\x8f\x01random\xff")}),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    Case(
        "cursor-not-base64",
        gql(PROJECTS_AFTER, {"c": "%%%"}),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    Case(
        "cursor-json-object",
        gql(PROJECTS_AFTER, {"c": b64('{"id": 1}')}),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    Case(
        "cursor-json-short-array",
        gql(PROJECTS_AFTER, {"c": cursor(1, "ID", 1)}),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    Case(
        "cursor-other-version",
        gql(PROJECTS_AFTER, {"c": cursor(2, "ID", 5, 5)}),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    Case(
        "cursor-pk-past-bigint",
        gql(PROJECTS_AFTER, {"c": cursor(1, "ID", 2**63, 2**63)}),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    Case(
        "cursor-deeply-nested-json",
        gql(PROJECTS_AFTER, {"c": b64(deep_json(5_000))}),
        200,
        INPUT,
        data_is({"organization": None}),
    ),
    Case(
        "cursor-of-another-ordering",
        gql(
            ISSUES_BY_PRIORITY_AFTER, {"c": cursor(1, "CREATED_AT", "2026-01-05T09:00:00+00:00", 1)}
        ),
        200,
        INPUT,
        data_is({"organization": {"project": None}}),
    ),
    Case(
        "cursor-priority-as-string",
        gql(ISSUES_BY_PRIORITY_AFTER, {"c": cursor(1, "PRIORITY", "2", 1)}),
        200,
        INPUT,
        data_is({"organization": {"project": None}}),
    ),
    # A cursor whose sort value PostgreSQL cannot hold (a NUL in text): still the client's
    # mistake, never a database error.
    Case(
        "cursor-name-with-nul",
        gql(LABELS_AFTER, {"c": cursor(1, "NAME", "bug\u0000", 1)}),
        200,
        INPUT,
        data_is({"organization": {"project": None}}),
    ),
    # A timestamp that cannot be given to PostgreSQL (it falls before year 1 in UTC), and
    # one without a time zone (never issued by the server). Either is refused as
    # BAD_USER_INPUT or read as a position; never a database error, never a retry storm.
    Case(
        "cursor-date-out-of-range",
        gql(COMMENTS_AFTER, {"c": cursor(1, "CREATED_AT", "0001-01-01T00:00:00+05:00", 1)}),
        200,
        (None, INPUT),
        lambda r, b: None,
    ),
    Case(
        "cursor-date-naive",
        gql(COMMENTS_AFTER, {"c": cursor(1, "CREATED_AT", "2026-01-05T09:00:00", 1)}),
        200,
        (None, INPUT),
        lambda r, b: None,
    ),
    Case(
        "filter-101-label-names",
        gql(ISSUES_FILTERED, {"f": {"labels": [f"l{i}" for i in range(101)]}}),
        200,
        INPUT,
        data_is({"organization": {"project": None}}),
    ),
    # Unicode: odd but valid strings are just strings. A login no user can have finds none.
    Case(
        "unicode-lone-surrogate-in-document",
        gql('{ user(login: "\\ud800") { login } }'),
        400,
        PARSE,
        no_data,
    ),
    Case("unicode-nul-raw-in-document", gql("{ __typename }\u0000"), 400, PARSE, no_data),
    Case(
        "unicode-nul-in-login-variable",
        gql(USER, {"l": "ali\u0000ce"}),
        200,
        (None, INPUT),
        data_is({"user": None}),
    ),
    Case(
        "unicode-nul-escape-in-login-literal",
        gql('{ user(login: "ali\\u0000ce") { login } }'),
        200,
        (None, INPUT),
        data_is({"user": None}),
    ),
    Case(
        "unicode-rtl-and-zero-width-login",
        gql(USER, {"l": "\u202ealice\u200d\ufeff"}),
        200,
        None,
        data_is({"user": None}),
    ),
    Case(
        "unicode-fullwidth-login",
        gql(USER, {"l": "\uff41\uff4c\uff49\uff43\uff45"}),
        200,
        None,
        data_is({"user": None}),
    ),
    Case(
        "unicode-emoji-in-filter",
        gql(ISSUES_FILTERED, {"f": {"labels": ["🐛", "👩‍💻"], "assignee": "🦄"}}),
        200,
        None,
        data_is({"organization": {"project": {"issues": {"totalCount": 0}}}}),
    ),
    Case(
        "unicode-nul-in-filter",
        gql(ISSUES_FILTERED, {"f": {"labels": ["bug\u0000"]}}),
        200,
        (None, INPUT),
        lambda r, b: None,
    ),
    Case(
        "unicode-nul-in-slug",
        gql('{ organization(slug: "acme\\u0000") { name } }'),
        200,
        (None, INPUT),
        data_is({"organization": None}),
    ),
    Case(
        "unicode-emoji-slug",
        gql('{ organization(slug: "🏢") { name } }'),
        200,
        None,
        data_is({"organization": None}),
    ),
    # Tokens: a bad token is a 401 with a challenge, never anonymity.
    Case(
        "token-forged",
        gql("{ viewer { login } }", headers=bearer(token(key="not-the-secret-" + "y" * 32))),
        401,
        UNAUTH,
        header_starts("www-authenticate", 'Bearer realm="issuegraph"'),
    ),
    Case(
        "token-expired",
        gql(
            "{ viewer { login } }",
            headers=bearer(
                token(
                    exp=datetime.now(UTC) - timedelta(hours=1),
                    iat=datetime.now(UTC) - timedelta(hours=2),
                )
            ),
        ),
        401,
        UNAUTH,
        header_starts("www-authenticate", 'Bearer realm="issuegraph"'),
    ),
    Case(
        "token-alg-none",
        gql("{ viewer { login } }", headers=bearer(unsigned_token())),
        401,
        UNAUTH,
        header_starts("www-authenticate", 'Bearer realm="issuegraph"'),
    ),
    Case(
        "token-hs512-with-the-right-key",
        gql("{ viewer { login } }", headers=bearer(token(algorithm="HS512"))),
        401,
        UNAUTH,
        header_starts("www-authenticate", 'Bearer realm="issuegraph"'),
    ),
    Case(
        "token-8k-garbage",
        gql("{ viewer { login } }", headers=bearer("x." * 4_000)),
        401,
        UNAUTH,
        header_starts("www-authenticate", 'Bearer realm="issuegraph"'),
    ),
    Case(
        "token-latin1-bytes",
        gql("{ viewer { login } }", headers={"authorization": b"Bearer \xff\xfe\xfd"}),
        401,
        UNAUTH,
        header_starts("www-authenticate", 'Bearer realm="issuegraph"'),
    ),
    Case(
        "authorization-bearer-without-token",
        gql("{ viewer { login } }", headers={"authorization": "Bearer"}),
        401,
        UNAUTH,
        header_starts("www-authenticate", 'Bearer realm="issuegraph"'),
    ),
    # GitHub's legacy `token <t>` scheme is not one this server speaks.
    Case(
        "authorization-token-scheme",
        gql("{ viewer { login } }", headers={"authorization": "token abc123"}),
        401,
        UNAUTH,
        header_starts("www-authenticate", 'Bearer realm="issuegraph"'),
    ),
    # A token signed with the right key whose subject no database id can be: still a bad
    # token (401), not a failure inside the server.
    Case(
        "token-subject-past-bigint",
        gql("{ viewer { login } }", headers=bearer(token(sub="9" * 30))),
        401,
        UNAUTH,
        header_starts("www-authenticate", 'Bearer realm="issuegraph"'),
    ),
    # Sign-in with a login no account can have is just a wrong login: the same user error
    # as any other, not a database failure (the throttle keys are stored in PostgreSQL).
    Case(
        "sign-in-nul-in-login",
        gql(LOG_IN, {"i": {"login": "ali\u0000ce", "password": "wrong horse"}}),
        200,
        None,
        sign_in_refused,
    ),
    Case(
        "sign-in-20k-char-login",
        gql(LOG_IN, {"i": {"login": NOISE_20K, "password": "wrong horse"}}),
        200,
        None,
        sign_in_refused,
    ),
    # GET.
    Case(
        "get-mutation",
        get({"query": 'mutation { logOut(input: {refreshToken: "x"}) { revoked } }'}),
        405,
        "METHOD_NOT_ALLOWED",
        header_starts("allow", "POST"),
    ),
    Case(
        "get-without-preflight-header",
        get({"query": "{ __typename }"}, headers={}),
        400,
        "CSRF_REJECTED",
    ),
    # A content type is not a preflight header: a form can send text/plain, a page can't
    # send application/json cross-site without a preflight, but a GET has no body anyway.
    Case(
        "get-with-only-a-content-type",
        get({"query": "{ __typename }"}, headers={"content-type": JSON_TYPE}),
        400,
        "CSRF_REJECTED",
    ),
    Case("get-without-query", get({}), 400, BAD),
    Case(
        "get-variables-not-json", get({"query": "{ __typename }", "variables": "{nope"}), 400, BAD
    ),
    Case("get-variables-array", get({"query": "{ __typename }", "variables": "[1]"}), 400, BAD),
    Case(
        "get-variables-deeply-nested",
        get({"query": "{ __typename }", "variables": '{"a": ' + "[" * 5_000 + "]" * 5_000 + "}"}),
        400,
        BAD,
    ),
    # %FF is not UTF-8: the query string decodes to U+FFFD, which no GraphQL token holds.
    Case(
        "get-invalid-utf8-in-query-string",
        get_raw("/graphql?query=%7B%FF__typename%7D"),
        400,
        PARSE,
        no_data,
    ),
    Case("get-extensions-not-json", get({"query": "{ __typename }", "extensions": "{"}), 400, BAD),
    # The endpoint speaks GET and POST; other methods are a 405 naming them, in JSON like
    # every other answer of the endpoint.
    Case(
        "method-put",
        raw(b'{"query": "{ __typename }"}', method="PUT"),
        405,
        "METHOD_NOT_ALLOWED",
        allows("GET", "POST"),
    ),
    Case(
        "method-delete",
        raw(b"", None, method="DELETE"),
        405,
        "METHOD_NOT_ALLOWED",
        allows("GET", "POST"),
    ),
    # A request id a client sends is echoed only if it is sane: no control characters or
    # markup make it into the response (or the logs).
    Case(
        "request-id-injection",
        gql("{ __typename }", headers={"x-request-id": "abc\x1b[31m<script>" + "x" * 5_000}),
        200,
        None,
        request_id_replaced,
    ),
    # Operations.
    Case("subscription-over-http", gql(SUBSCRIPTION), 400, INPUT, no_data),
    Case(
        "operation-name-unknown",
        gql("query A { __typename }", operation_name="B"),
        400,
        INPUT,
        no_data,
    ),
    Case(
        "operation-name-of-a-fragment",
        gql("query A { ...F } fragment F on Query { __typename }", operation_name="F"),
        400,
        INPUT,
        no_data,
    ),
    Case(
        "operation-name-10k-chars",
        gql("query A { __typename }", operation_name="Z" * 10_000),
        400,
        INPUT,
        no_data,
    ),
    Case("two-anonymous-operations", gql("{ __typename } { __typename }"), 400, INVALID, no_data),
    Case("only-a-fragment", gql("fragment F on Query { __typename }"), 400, INVALID, no_data),
    Case("type-definition-as-document", gql("type Evil { x: Int }"), 400, INVALID, no_data),
    Case("comment-only-document", gql("# nothing here"), 400, PARSE, no_data),
    Case(
        "same-key-two-fields",
        gql('{ a: user(login: "alice") { login } a: organization(slug: "acme") { name } }'),
        400,
        INVALID,
        no_data,
    ),
    # 5,000 unknown fields: validation stops after 100 errors; the answer stays small.
    Case(
        "unknown-fields-5000",
        gql("{ " + " ".join(f"f{i}" for i in range(5_000)) + " }"),
        400,
        INVALID,
        no_data,
    ),
    Case("unknown-field-legacy", gql("{ nope }", strict=False), 200, INVALID, no_data),
    # Persisted queries. An unknown hash is PERSISTED_QUERY_NOT_FOUND with a 200, as Apollo
    # answers it (a client retries with the document; nothing may cache or mask the answer).
    # A malformed persistedQuery extension is a malformed request: BAD_REQUEST, as Apollo's
    # BadRequestError("Unsupported persisted query version") and as this server already
    # answers a hash that does not match its document.
    Case(
        "persisted-unknown-hash",
        post(
            {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha("nope")}}},
            strict=False,
        ),
        200,
        "PERSISTED_QUERY_NOT_FOUND",
        no_data,
    ),
    Case(
        "persisted-hash-not-hex",
        post({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "z" * 64}}}),
        400,
        BAD,
        no_data,
    ),
    Case(
        "persisted-hash-too-short",
        post({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}}),
        400,
        BAD,
        no_data,
    ),
    Case(
        "persisted-wrong-version",
        post({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": sha("{ a }")}}}),
        400,
        BAD,
        no_data,
    ),
    Case(
        "persisted-not-an-object",
        post({"extensions": {"persistedQuery": "sha256:" + sha("{ a }")}}),
        400,
        BAD,
        no_data,
    ),
    Case(
        "persisted-hash-of-another-document",
        gql(
            "{ __typename }",
            extensions={
                "persistedQuery": {"version": 1, "sha256Hash": sha("{ viewer { login } }")}
            },
        ),
        400,
        BAD,
        no_data,
    ),
]


_addresses = itertools.count(1)


@pytest.fixture
async def http(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """Like conftest's `client` (the real app, lifespan included, on the test database, a
    client address of its own so budgets stay per test), except that an exception escaping
    the app comes back as the 500 a real server would send instead of being raised into
    the test: a crash is one more wrong answer here."""
    from asgi_lifespan import LifespanManager

    from server.main import create_app

    app = create_app(TEST_SETTINGS, database=database)
    n = next(_addresses)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(
            app=manager.app,
            raise_app_exceptions=False,
            client=(f"10.99.{n // 250}.{n % 250 + 1}", 40000),
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def test_the_table_is_big_and_its_ids_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 30


def assert_clean_answer(response: httpx.Response, case: Case) -> dict[str, Any]:
    """The checks every case shares; returns the parsed body."""
    shown = f"{case.id}: {response.status_code} {response.text[:600]!r}"
    assert response.status_code == case.status, shown
    assert response.headers.get("content-type", "").startswith(
        ("application/json", "application/graphql-response+json")
    ), shown
    body = response.json()
    assert isinstance(body, dict), shown
    leak = LEAKS.search(response.text)
    assert leak is None, f"{case.id} leaks {leak.group(0)!r}: {response.text[:600]!r}"
    # A bad request is not amplified: the answer stays small whatever was sent.
    assert len(response.content) < 50_000, f"{case.id}: {len(response.content)} bytes"
    errors = body.get("errors", [])
    for error in errors:
        assert isinstance(error.get("message"), str) and error["message"], shown
        assert isinstance(error.get("extensions", {}).get("code"), str), shown
    allowed = case.code if isinstance(case.code, tuple) else (case.code,)
    got = errors[0]["extensions"]["code"] if errors else None
    assert got in allowed, shown
    if case.check is not None:
        case.check(response, body)
    return body


async def assert_healthy(client: httpx.AsyncClient) -> None:
    normal = await asyncio.wait_for(client.post("/graphql", json={"query": HEALTHY}), GUARD)
    assert normal.status_code == 200, normal.text[:600]
    assert normal.json() == {"data": HEALTHY_DATA, "extensions": normal.json().get("extensions")}, (
        normal.text[:600]
    )
    ready = await asyncio.wait_for(client.get("/readyz"), GUARD)
    assert ready.status_code == 200, ready.text


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_bad_input_is_a_clear_quick_error(http: httpx.AsyncClient, case: Case) -> None:
    response = await asyncio.wait_for(case.send(http), GUARD)
    assert_clean_answer(response, case)
    await assert_healthy(http)


async def test_the_server_is_healthy_after_the_whole_table(http: httpx.AsyncClient) -> None:
    """Every case, one after another on one client, then all at once: the server still
    answers a normal query correctly and is ready. (Each case's own verdict is the
    parametrized test's business; here only hangs and lasting damage count.)"""
    for case in CASES:
        await asyncio.wait_for(case.send(http), GUARD)
    await assert_healthy(http)
    burst = await asyncio.wait_for(
        asyncio.gather(*(case.send(http) for case in CASES), return_exceptions=True), GUARD * 3
    )
    crashed = {
        case.id: repr(result)
        for case, result in zip(CASES, burst, strict=True)
        if isinstance(result, BaseException)
    }
    assert crashed == {}
    await assert_healthy(http)
