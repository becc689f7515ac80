"""GraphQL over HTTP: POST (JSON) and GET (queries only), and GraphiQL for browsers.

The request is checked here (body size, JSON shape, operation kind), one database session
is opened for it and closed after, and the result is encoded with orjson. Status codes
follow the GraphQL-over-HTTP spec: with `application/graphql-response+json` a request that
cannot execute (parse, validation or variable errors) is a 400; with the legacy
`application/json` it is a 200 carrying the errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.context import Services, build_context
from app.db import Database, Session
from app.errors import Unauthenticated
from app.execution import Executor, Prepared, format_errors
from app.policy import ANONYMOUS, Viewer
from loaders.users import load_viewer

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


class RequestError(Exception):
    """A request that cannot be executed at all; answered with `status` and one error."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


class GraphQLEndpoint:
    def __init__(self, executor: Executor, database: Database, services: Services) -> None:
        self.executor = executor
        self.database = database
        self.services = services
        self.settings = services.settings

    async def __call__(self, request: Request) -> Response:
        media_type = _response_media_type(request)
        try:
            if request.method == "GET" and _wants_html(request) and not request.query_params:
                return self._graphiql(request)
            graphql_request = await self._read(request)
            return await self._run(request, graphql_request, media_type)
        except RequestError as error:
            body = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
            return _respond(body, error.status, media_type, error.headers)
        except Unauthenticated as error:
            body = {"errors": [{"message": error.message, "extensions": error.extensions}]}
            challenge = f'Bearer realm="issuegraph", error="invalid_token", ' \
                        f'error_description="{error.message}"'
            return _respond(body, 401, media_type, {"WWW-Authenticate": challenge})

    def _graphiql(self, request: Request) -> Response:
        if not self.settings.graphiql:
            raise RequestError(400, "GraphiQL is disabled; send a GraphQL request.")
        from app.graphiql import render_graphiql

        return HTMLResponse(render_graphiql(request.url.path))

    async def _read(self, request: Request) -> GraphQLRequest:
        if request.method == "GET":
            return _from_mapping(dict(request.query_params), variables_as_json=True)
        if request.method != "POST":
            raise RequestError(405, "Use GET or POST.", headers={"Allow": "GET, POST"})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON:
            raise RequestError(415, "Send the request as application/json.")
        body = await _read_body(request, self.settings.max_body_bytes)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, f"The request body is not valid JSON: {exc}.") from None
        if isinstance(payload, list):
            raise RequestError(400, "Batched requests (a JSON array) are not supported.")
        if not isinstance(payload, dict):
            raise RequestError(400, "The request body must be a JSON object.")
        return _from_mapping(payload, variables_as_json=False)

    async def _run(self, request: Request, graphql_request: GraphQLRequest,
                   media_type: str) -> Response:
        prepared = self.executor.prepare(graphql_request.query)
        if prepared.document is None:
            body = {"errors": format_errors(prepared.errors, prepared.code or "BAD_USER_INPUT")}
            return _respond(body, 400 if media_type == GRAPHQL_RESPONSE else 200, media_type)
        _check_operation(request, prepared, graphql_request.operation_name)
        session = self.database.session()
        try:
            viewer = await _viewer(request, session, self.services)
            context = build_context(session, viewer, self.services, request)
            result = await self.executor.execute(
                prepared, context, graphql_request.variables, graphql_request.operation_name
            )
        finally:
            await session.close()
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = format_errors(result.errors)
        if result.data is not None or not result.errors:
            body["data"] = result.data
        status = 400 if result.data is None and media_type == GRAPHQL_RESPONSE else 200
        headers = {}
        if self.settings.server_timing:
            headers["Server-Timing"] = f'sql;desc="{session.statements} statements"'
        return _respond(body, status, media_type, headers)


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


def _check_operation(request: Request, prepared: Prepared, name: str | None) -> None:
    operation = prepared.operation(name)
    if operation is None:
        if name is None:
            raise RequestError(400, "The document holds several operations: name one in "
                               "`operationName`.", "BAD_USER_INPUT")
        raise RequestError(400, f"No operation named {name!r} in the document.",
                           "BAD_USER_INPUT")
    if operation.operation is OperationType.SUBSCRIPTION:
        raise RequestError(400, "Subscriptions are served over WebSocket "
                           "(graphql-transport-ws).", "BAD_USER_INPUT")
    if request.method == "GET" and operation.operation is not OperationType.QUERY:
        raise RequestError(405, "Mutations must be sent with POST.", "BAD_REQUEST",
                           headers={"Allow": "POST"})


def _from_mapping(payload: dict[str, Any], *, variables_as_json: bool) -> GraphQLRequest:
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RequestError(400, "The request has no `query`: send a GraphQL document as a "
                           "string in `query`.")
    variables = payload.get("variables")
    if variables_as_json and isinstance(variables, str):
        try:
            variables = orjson.loads(variables) if variables else None
        except orjson.JSONDecodeError:
            raise RequestError(400, "`variables` is not valid JSON.") from None
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "`variables` must be a JSON object.")
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "`operationName` must be a string.")
    return GraphQLRequest(query, variables, operation_name or None)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"The request body is over {limit} bytes.", "PAYLOAD_TOO_LARGE")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"The request body is over {limit} bytes.",
                               "PAYLOAD_TOO_LARGE")
        chunks.append(chunk)
    return b"".join(chunks)


def _response_media_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accept else JSON


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _respond(body: dict[str, Any], status: int, media_type: str,
             headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type=f"{media_type}; charset=utf-8")
