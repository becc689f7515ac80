"""GraphQL over HTTP: POST (JSON) and GET (queries only), and GraphiQL for browsers.

This module reads the request and maps the pipeline's outcome to HTTP; every protection
(persisted queries, limits, the viewer, the budget, the deadline) is a step of the one
pipeline every transport shares (execution/pipeline.py). Reading refuses, on its own:
another method (405), a POST that is not JSON (415), a body over MAX_BODY_BYTES (413), a
body that is not a JSON object, and a GET without a header no cross-site form or link can
set (400, CSRF protection).

Status codes follow the GraphQL-over-HTTP spec: with `application/graphql-response+json`
a request that cannot execute is a 400 (or 401, 413, 429, 503 …); with the legacy
`application/json` a document error is a 200 carrying the errors. Each error class says
its status (core/errors.py); the headers that go with some are added here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response

from core import encoding
from core import observability as metrics
from core.errors import (
    BadRequest,
    BodyTimeout,
    ClientError,
    CsrfRejected,
    MethodNotAllowed,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from core.logs import access_note
from core.settings import Settings
from execution.documents import error_entries
from execution.pipeline import (
    QUERIES,
    QUERIES_AND_MUTATIONS,
    Caller,
    Executed,
    Outcome,
    Pipeline,
    Refused,
)

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
CLIENT_CLOSED_REQUEST = 499  # as nginx logs it: the client left before its request was read
# Headers a browser will not send cross-site without a CORS preflight; a GET carrying one
# of them cannot have come from a link, an <img> or a form on another site.
PREFLIGHT_HEADERS = (
    "graphql-preflight",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "x-requested-with",
    "authorization",
)
RETRY_UNAVAILABLE = "2"  # seconds: about the circuit breaker's reset


class GraphQLEndpoint:
    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        media_type = _response_media_type(request)
        if (
            request.method == "GET"
            and _wants_html(request)
            and not request.query_params
            and self.settings.graphiql
        ):
            return self._graphiql(request)
        try:
            payload = await self._read(request)
            outcome = await self.pipeline.run(payload, _caller(request))
        except ClientDisconnect:  # nobody to answer: the client's doing, not a server error
            log.info("client disconnected before sending its request")
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except ClientError as error:  # the request could not be read
            outcome = Refused(error, error_entries(error))
        except Exception as unexpected:  # never a bare 500 or a stack trace for the client
            log.exception("request failed")
            internal = ServerError(str(unexpected))
            outcome = Refused(internal, error_entries(internal))
        body, status, headers = self._map(outcome, media_type)
        self._observe(request, outcome, body, status, started)
        return _respond(body, status, media_type, headers)

    def _graphiql(self, request: Request) -> Response:
        from server.graphiql import content_security_policy, render_graphiql

        nonce = secrets.token_urlsafe(16)
        page = render_graphiql(request.url.path, nonce=nonce)
        return HTMLResponse(
            page, headers={"Content-Security-Policy": content_security_policy(nonce)}
        )

    def _map(self, outcome: Outcome, media_type: str) -> tuple[dict[str, Any], int, dict[str, str]]:
        if isinstance(outcome, Refused):
            error = outcome.error
            return {"errors": outcome.errors}, _status(error, media_type), _error_headers(error)
        assert isinstance(outcome, Executed), "HTTP carries no subscriptions: refused before"
        headers = outcome.budget.headers() if outcome.budget is not None else {}
        if self.settings.server_timing:
            headers["Server-Timing"] = f'sql;desc="{outcome.statements} statements"'
        strict = media_type == GRAPHQL_RESPONSE
        status = 400 if "data" not in outcome.body and strict else 200
        return outcome.body, status, headers

    def _observe(
        self,
        request: Request,
        outcome: Outcome,
        body: dict[str, Any],
        status: int,
        started: float,
    ) -> None:
        request_id = getattr(request.state, "request_id", None)
        errors = body.get("errors", ())
        if request_id is not None:
            for entry in errors:
                entry.setdefault("extensions", {})["requestId"] = request_id
        codes = [e.get("extensions", {}).get("code") for e in errors]
        note = access_note(request.scope)
        if note is not None:  # client errors: in the access line, never a traceback
            note.error_codes = [str(code) for code in codes[:10]]
        operation = None if isinstance(outcome, Refused) else outcome.operation
        metrics.record_request(operation, status, time.perf_counter() - started)
        metrics.record_errors(codes)

    async def _read(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            if not any(h in request.headers for h in PREFLIGHT_HEADERS):
                raise CsrfRejected(
                    "A GET request must carry a `GraphQL-Preflight: 1` "
                    "header (CSRF protection); or send a POST."
                )
            parameters: dict[str, Any] = dict(request.query_params)
            for name in ("variables", "extensions"):
                parameters[name] = _json_parameter(parameters.get(name), name)
            return parameters
        if request.method != "POST":
            raise MethodNotAllowed("Use GET or POST.", allow="GET, POST")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON:
            raise UnsupportedMediaType("Send the request as application/json.")
        limit, timeout = self.settings.max_body_bytes, self.settings.body_timeout
        try:
            async with asyncio.timeout(timeout):
                body = await _read_body(request, limit)
        except TimeoutError:  # a slow client holds a connection and a task: not forever
            raise BodyTimeout(f"The request body did not arrive within {timeout:g} s.") from None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
        if isinstance(payload, list):
            raise BadRequest("Batched requests (a JSON array) are not supported.")
        if not isinstance(payload, dict):
            raise BadRequest("The request body must be a JSON object.")
        return payload


def _caller(request: Request) -> Caller:
    return Caller(
        address=request.client.host if request.client else "unknown",
        credentials=request.headers.get("authorization"),
        operations=QUERIES if request.method == "GET" else QUERIES_AND_MUTATIONS,
        request=request,
        note=access_note(request.scope),
    )


def _status(error: ClientError | ServerError, media_type: str) -> int:
    if isinstance(error, ClientError) and error.legacy_status is not None and media_type == JSON:
        return error.legacy_status
    return error.status


def _error_headers(error: ClientError | ServerError) -> dict[str, str]:
    if isinstance(error, Unauthenticated):
        challenge = (
            f'Bearer realm="issuegraph", error="invalid_token", error_description="{error.message}"'
        )
        return {"WWW-Authenticate": challenge}
    if isinstance(error, RateLimited):
        retry = error.extensions.get("retryAfter")
        return {"Retry-After": str(retry)} if retry else {}
    if isinstance(error, MethodNotAllowed):
        return {"Allow": error.allow}
    if error.code == Unavailable.code:  # the database: Unavailable, or TransientError
        return {"Retry-After": RETRY_UNAVAILABLE}
    return {}


def _json_parameter(value: Any, name: str) -> Any:
    if not isinstance(value, str) or not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise BadRequest(f"`{name}` is not valid JSON.") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is over {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _response_media_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accept else JSON


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _respond(
    body: dict[str, Any], status: int, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        encoding.dumps(body),
        status_code=status,
        headers=headers,
        media_type=f"{media_type}; charset=utf-8",
    )
