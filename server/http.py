"""GraphQL over HTTP: POST (JSON) and GET (queries only), and GraphiQL for browsers.

A request goes through these steps, each of which may answer on its own:
  1. reading: body size, JSON shape, CSRF (a GET must carry a header no cross-site form
     or link can set), persisted queries;
  2. the document: parsed and validated once (cached), then its depth, aliases,
     directives and cost are checked against the limits: no SQL runs for a refused query;
  3. the viewer: from the Bearer token (a bad token is 401, never anonymity);
  4. the budget: the query's cost is spent from the viewer's hourly budget (429 when out);
  5. execution, on one database session, within the request deadline, retried on a
     transient database failure when that is safe.
Status codes follow the GraphQL-over-HTTP spec: with `application/graphql-response+json`
a request that cannot execute is a 400 (or 401, 413, 429, 503 …); with the legacy
`application/json` a document error is a 200 carrying the errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import stamina
from graphql import ExecutionResult, FieldNode, OperationType
from limits.errors import StorageError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from core import observability as metrics
from core.db import Database, Session
from core.errors import (
    ClientError,
    QueryTimeout,
    RateLimited,
    TransientError,
    Unauthenticated,
    Unavailable,
)
from domain.context import Services, build_context
from domain.policy import ANONYMOUS, Viewer
from execution.documents import Executor, Prepared, format_errors
from execution.limits import Analysis, Budget, BudgetState, analyze, check
from execution.persisted import PersistedQueries
from loaders.users import load_viewer

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# Headers a browser will not send cross-site without a CORS preflight; a GET carrying one
# of them cannot have come from a link, an <img> or a form on another site.
PREFLIGHT_HEADERS = (
    "graphql-preflight",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "x-requested-with",
    "authorization",
)
ATTEMPTS = 3


class RequestError(Exception):
    """A request answered before execution, with `status` and one error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "BAD_REQUEST",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extensions = {"code": code, **extensions}
        self.headers = headers or {}

    @classmethod
    def of(cls, error: ClientError, status: int, **headers: str) -> RequestError:
        extensions = {k: v for k, v in error.extensions.items() if k != "code"}
        return cls(status, error.message, error.code, headers, **extensions)


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


@dataclass(slots=True)
class Outcome:
    body: dict[str, Any]
    status: int = 200
    operation: str | None = None
    headers: dict[str, str] | None = None


class GraphQLEndpoint:
    def __init__(
        self,
        executor: Executor,
        database: Database,
        services: Services,
        budget: Budget,
        persisted: PersistedQueries,
    ) -> None:
        self.executor = executor
        self.database = database
        self.services = services
        self.settings = services.settings
        self.budget = budget
        self.persisted = persisted

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
        request_id = getattr(request.state, "request_id", None)
        try:
            if request.method not in ("GET", "POST"):
                raise RequestError(
                    405, "Use GET or POST.", "METHOD_NOT_ALLOWED", {"Allow": "GET, POST"}
                )
            outcome = await self._handle(request, media_type)
        except RequestError as error:
            body = {"errors": [{"message": error.message, "extensions": error.extensions}]}
            outcome = Outcome(body, error.status, headers=error.headers)
        except Exception:  # never a bare 500 or a stack trace for the client
            log.exception("request failed")
            body = {
                "errors": [
                    {"message": "Internal server error.", "extensions": {"code": "INTERNAL"}}
                ]
            }
            outcome = Outcome(body, 500)
        if request_id is not None:
            for entry in outcome.body.get("errors", ()):
                entry.setdefault("extensions", {})["requestId"] = request_id
        codes = [e.get("extensions", {}).get("code") for e in outcome.body.get("errors", ())]
        if codes and "INTERNAL" not in codes:  # client errors: one line, no traceback
            log.info("client error", extra={"codes": codes[:10], "status": outcome.status})
        metrics.record_request(outcome.operation, outcome.status, time.perf_counter() - started)
        metrics.record_errors(
            e.get("extensions", {}).get("code") for e in outcome.body.get("errors", ())
        )
        return _respond(outcome.body, outcome.status, media_type, outcome.headers)

    def _graphiql(self, request: Request) -> Response:
        from server.graphiql import render_graphiql

        return HTMLResponse(render_graphiql(request.url.path))

    async def _handle(self, request: Request, media_type: str) -> Outcome:
        strict = media_type == GRAPHQL_RESPONSE
        graphql_request = await self._read(request)
        try:
            query = await self.persisted.resolve(graphql_request.query, graphql_request.extensions)
        except ClientError as error:
            raise RequestError.of(
                error, 200 if error.code.startswith("PERSISTED") else 400
            ) from None
        prepared = self.executor.prepare(query)
        if prepared.document is None:
            body = {"errors": format_errors(prepared.errors, prepared.code or "BAD_USER_INPUT")}
            return Outcome(body, 400 if strict else 200)
        operation = _check_operation(request, prepared, graphql_request.operation_name)
        analysis = self._analyze(prepared, graphql_request, strict)
        session = self.database.session()
        try:
            viewer = await _viewer(request, session, self.services)
            state = await self._spend(request, viewer, analysis.cost)
            with metrics.operation_span(
                "graphql " + (graphql_request.operation_name or _name(operation) or "anonymous")
            ):
                outcome = await self._execute(
                    request,
                    session,
                    viewer,
                    prepared,
                    graphql_request,
                    operation,
                    state,
                    analysis.cost,
                )
        except Unauthenticated as error:
            challenge = (
                f'Bearer realm="issuegraph", error="invalid_token", '
                f'error_description="{error.message}"'
            )
            raise RequestError.of(error, 401, **{"WWW-Authenticate": challenge}) from None
        except (Unavailable, TransientError):
            raise RequestError(
                503,
                "The database is unavailable; retry in a few seconds.",
                "UNAVAILABLE",
                {"Retry-After": "2"},
            ) from None
        except QueryTimeout:
            raise RequestError(
                504, "The request took too long and was stopped.", "TIMEOUT"
            ) from None
        finally:
            await session.close()
        outcome.operation = graphql_request.operation_name or _name(operation)
        outcome.body.setdefault("extensions", {})["cost"] = (
            state.extension(analysis.cost) if state else {"requested": analysis.cost}
        )
        if state is not None:
            outcome.headers = (outcome.headers or {}) | state.headers()
        return outcome

    def _analyze(
        self, prepared: Prepared, graphql_request: GraphQLRequest, strict: bool
    ) -> Analysis:
        assert prepared.document is not None
        name = graphql_request.operation_name
        analysis = None if graphql_request.variables else prepared.analyses.get(name)
        if analysis is None:
            analysis = analyze(
                self.executor.graphql_schema, prepared.document, name, graphql_request.variables
            )
            if not graphql_request.variables:
                prepared.analyses[name] = analysis
        metrics.record_cost(analysis.cost)
        try:
            check(analysis, self.executor.limits)
        except ClientError as error:
            raise RequestError.of(error, 400 if strict else 200) from None
        return analysis

    async def _spend(self, request: Request, viewer: Viewer, cost: int) -> BudgetState | None:
        user = viewer.user
        key = f"user:{user.id}" if user else f"address:{_client(request)}"
        try:
            return await self.budget.spend(key, cost, user is not None)
        except RateLimited as error:
            metrics.record_rate_limited()
            retry = error.extensions.get("retryAfter")
            headers = {"Retry-After": str(retry)} if retry else {}
            raise RequestError.of(error, 429, **headers) from None
        except StorageError:  # the budget store is down: serve rather than refuse everyone
            log.warning("rate budget store unavailable; request not counted")
            return None

    async def _execute(
        self,
        request: Request,
        session: Session,
        viewer: Viewer,
        prepared: Prepared,
        graphql_request: GraphQLRequest,
        operation: Any,
        state: BudgetState | None,
        cost: int,
    ) -> Outcome:
        # Reads may always run again. A single mutation may run again after a serialization
        # failure or deadlock (its transaction rolled back), not after a lost connection,
        # which may have hidden a commit.
        reads = operation.operation is OperationType.QUERY
        single = _single_field(operation)

        def retryable(error: TransientError) -> bool:
            return reads or (single and not error.ambiguous)

        timeout = self.settings.request_timeout
        sessions = [session]
        try:
            async with asyncio.timeout(timeout):
                async for attempt in stamina.retry_context(
                    on=TransientError,
                    attempts=ATTEMPTS,
                    wait_initial=0.05,
                    wait_max=0.5,
                    timeout=timeout,
                ):
                    with attempt:
                        if attempt.num > 1:
                            sessions.append(self.database.session())
                        result = await self._attempt(
                            request,
                            sessions[-1],
                            viewer,
                            prepared,
                            graphql_request,
                            (state, cost),
                            retryable,
                            attempt.num == ATTEMPTS,
                        )
        except TimeoutError:
            raise RequestError(
                504, f"The request ran past its {timeout:g} s deadline.", "TIMEOUT"
            ) from None
        finally:
            for extra in sessions[1:]:
                await extra.close()
        statements = sum(s.statements for s in sessions)
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = format_errors(result.errors)
        # Execution errors (they have a path) leave `data`, null at worst; request errors
        # (bad variables) mean execution never started, and `data` is absent.
        executed = result.data is not None or any(e.path for e in result.errors or ())
        if executed or not result.errors:
            body["data"] = result.data
        headers = {}
        if self.settings.server_timing:
            headers["Server-Timing"] = f'sql;desc="{statements} statements"'
        metrics.record_sql(statements)
        status = (
            400 if "data" not in body and _response_media_type(request) == GRAPHQL_RESPONSE else 200
        )
        return Outcome(body, status, headers=headers)

    async def _attempt(
        self,
        request: Request,
        session: Session,
        viewer: Viewer,
        prepared: Prepared,
        graphql_request: GraphQLRequest,
        budget: tuple[BudgetState | None, int],
        retryable: Callable[[TransientError], bool],
        last: bool,
    ) -> ExecutionResult:
        context = build_context(session, viewer, self.services, request)
        context.rate_limit, context.cost = budget
        result = await self.executor.execute(
            prepared, context, graphql_request.variables, graphql_request.operation_name
        )
        transient = [
            e.original_error
            for e in result.errors or ()
            if isinstance(e.original_error, TransientError)
        ]
        if transient and not last and retryable(transient[0]):
            await session.close()
            raise transient[0]
        return result

    async def _read(self, request: Request) -> GraphQLRequest:
        if request.method == "GET":
            if not any(h in request.headers for h in PREFLIGHT_HEADERS):
                raise RequestError(
                    400,
                    "A GET request must carry a `GraphQL-Preflight: 1` "
                    "header (CSRF protection); or send a POST.",
                    "CSRF_REJECTED",
                )
            return _from_mapping(dict(request.query_params), from_query_string=True)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON:
            raise RequestError(
                415, "Send the request as application/json.", "UNSUPPORTED_MEDIA_TYPE"
            )
        body = await _read_body(request, self.settings.max_body_bytes)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, f"The request body is not valid JSON: {exc}.") from None
        if isinstance(payload, list):
            raise RequestError(400, "Batched requests (a JSON array) are not supported.")
        if not isinstance(payload, dict):
            raise RequestError(400, "The request body must be a JSON object.")
        return _from_mapping(payload, from_query_string=False)


async def _viewer(request: Request, session: Session, services: Services) -> Viewer:
    """The signed-in user of a request; a bad token is an error, never anonymity."""
    header = request.headers.get("authorization")
    if header is None:
        return ANONYMOUS
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send the access token as `Authorization: Bearer <token>`.")
    user_id = services.tokens.verify(token.strip())
    found = await load_viewer(session, user_id)
    if found is None:
        raise Unauthenticated("The access token's user no longer exists.")
    return Viewer(*found)


def _check_operation(request: Request, prepared: Prepared, name: str | None) -> Any:
    operation = prepared.operation(name)
    if operation is None:
        if name is None:
            raise RequestError(
                400,
                "The document holds several operations: name one in `operationName`.",
                "BAD_USER_INPUT",
            )
        raise RequestError(
            400, f"No operation named {name[:100]!r} in the document.", "BAD_USER_INPUT"
        )
    if operation.operation is OperationType.SUBSCRIPTION:
        raise RequestError(
            400, "Subscriptions are served over WebSocket (graphql-transport-ws).", "BAD_USER_INPUT"
        )
    if request.method == "GET" and operation.operation is not OperationType.QUERY:
        raise RequestError(
            405,
            "Mutations must be sent with POST.",
            "METHOD_NOT_ALLOWED",
            headers={"Allow": "POST"},
        )
    return operation


def _single_field(operation: Any) -> bool:
    fields = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
    return len(operation.selection_set.selections) == len(fields) == 1


def _name(operation: Any) -> str | None:
    return operation.name.value if operation.name else None


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _from_mapping(payload: dict[str, Any], *, from_query_string: bool) -> GraphQLRequest:
    query = payload.get("query")
    extensions = payload.get("extensions")
    if from_query_string:
        extensions = _json_parameter(extensions, "extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "`extensions` must be a JSON object.")
    if query is not None and not isinstance(query, str):
        raise RequestError(400, "`query` must be a string.")
    if (query is None or not query.strip()) and not (extensions or {}).get("persistedQuery"):
        raise RequestError(
            400, "The request has no `query`: send a GraphQL document as a string in `query`."
        )
    variables = payload.get("variables")
    if from_query_string:
        variables = _json_parameter(variables, "variables")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "`variables` must be a JSON object.")
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "`operationName` must be a string.")
    return GraphQLRequest(query or None, variables, operation_name or None, extensions)


def _json_parameter(value: Any, name: str) -> Any:
    if not isinstance(value, str) or not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise RequestError(400, f"`{name}` is not valid JSON.") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"The request body is over {limit} bytes.", "PAYLOAD_TOO_LARGE")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"The request body is over {limit} bytes.", "PAYLOAD_TOO_LARGE")
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
        orjson.dumps(body),
        status_code=status,
        headers=headers,
        media_type=f"{media_type}; charset=utf-8",
    )
