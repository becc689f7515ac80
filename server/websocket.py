"""GraphQL over WebSocket with the graphql-transport-ws protocol, at the GraphQL path.

Written here rather than taken from Strawberry because Strawberry's handler shares one
context for the whole connection, and this server needs a context (database session and
loaders) per event; it also lets shutdown close every socket with a proper code.

Close codes are the protocol's: 4400 bad message, 4401 subscribe before init, 4403 bad
credentials, 4406 wrong subprotocol, 4408 no init in time, 4409 duplicate id, 4429 second
init; 1001 when the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from graphql import ExecutionResult, OperationType, subscribe
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from core.db import Database
from core.errors import ClientError, Unauthenticated
from domain.context import Services, build_context
from domain.policy import ANONYMOUS, Viewer
from execution.documents import Executor, format_errors
from loaders.users import load_viewer

log = logging.getLogger(__name__)

PROTOCOL = "graphql-transport-ws"
INIT_TIMEOUT = 10.0
GOING_AWAY = 1001


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class GraphQLWebSocket:
    """The endpoint; keeps its open connections so that shutdown can close them."""

    def __init__(self, executor: Executor, database: Database, services: Services) -> None:
        self.executor = executor
        self.database = database
        self.services = services
        self.open: set[WebSocket] = set()

    async def __call__(self, websocket: WebSocket) -> None:
        if PROTOCOL not in websocket.scope.get("subprotocols", []):
            await websocket.close(code=4406, reason="Subprotocol not acceptable")
            return
        await websocket.accept(subprotocol=PROTOCOL)
        self.open.add(websocket)
        connection = _Connection(self, websocket)
        try:
            await connection.run()
        except Refused as refused:
            await _close(websocket, refused.code, refused.reason)
        except WebSocketDisconnect:
            pass
        finally:
            await connection.cancel_all()
            self.open.discard(websocket)

    async def close_all(self) -> None:
        await asyncio.gather(
            *(_close(ws, GOING_AWAY, "Server shutting down") for ws in list(self.open))
        )


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(code=code, reason=reason)


class _Connection:
    def __init__(self, endpoint: GraphQLWebSocket, websocket: WebSocket) -> None:
        self.endpoint = endpoint
        self.websocket = websocket
        self.viewer: Viewer | None = None
        self.operations: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        try:
            first = await asyncio.wait_for(self._receive(), INIT_TIMEOUT)
        except TimeoutError:
            raise Refused(4408, "Connection initialisation timeout") from None
        if first.get("type") != "connection_init":
            raise Refused(4401, "Unauthorized")
        await self._init(first)
        while True:
            await self._handle(await self._receive())

    async def _receive(self) -> dict[str, Any]:
        text = await self.websocket.receive_text()
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise Refused(4400, "Invalid JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise Refused(4400, "Invalid message")
        return message

    async def _init(self, message: dict[str, Any]) -> None:
        payload = message.get("payload") or {}
        if not isinstance(payload, dict):
            raise Refused(4400, "Invalid connection init payload")
        try:
            self.viewer = await self._authenticate(payload)
        except Unauthenticated as error:
            raise Refused(4403, f"Forbidden: {error.message}") from None
        await self._send({"type": "connection_ack"})

    async def _authenticate(self, payload: dict[str, Any]) -> Viewer:
        header = (
            payload.get("Authorization")
            or payload.get("authorization")
            or self.websocket.headers.get("authorization")
        )
        token = payload.get("authToken")
        if isinstance(header, str):
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                raise Unauthenticated("Send the access token as `Bearer <token>`.")
        if token is None:
            return ANONYMOUS
        if not isinstance(token, str):
            raise Unauthenticated("The access token must be a string.")
        user_id = self.endpoint.services.tokens.verify(token.strip())
        session = self.endpoint.database.session()
        try:
            found = await load_viewer(session, user_id)
        finally:
            await session.close()
        if found is None:
            raise Unauthenticated("The access token's user no longer exists.")
        return Viewer(*found)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "pong":
            return
        elif kind == "connection_init":
            raise Refused(4429, "Too many initialisation requests")
        elif kind == "subscribe":
            self._subscribe(message)
        elif kind == "complete":
            task = self.operations.pop(str(message.get("id")), None)
            if task is not None:
                task.cancel()
        else:
            raise Refused(4400, f"Unknown message type: {kind[:32]}")

    def _subscribe(self, message: dict[str, Any]) -> None:
        operation_id = message.get("id")
        payload = message.get("payload")
        if not isinstance(operation_id, str) or not isinstance(payload, dict):
            raise Refused(4400, "Invalid subscribe message")
        if operation_id in self.operations:
            raise Refused(4409, f"Subscriber for {operation_id[:64]} already exists")
        task = asyncio.create_task(self._operation(operation_id, payload))
        self.operations[operation_id] = task
        task.add_done_callback(lambda _t: self.operations.pop(operation_id, None))

    async def _operation(self, operation_id: str, payload: dict[str, Any]) -> None:
        try:
            await self._run_operation(operation_id, payload)
        except asyncio.CancelledError:
            raise
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        except Exception:
            log.exception("subscription %s failed", operation_id)
            await self._send_errors(
                operation_id,
                [{"message": "Internal server error.", "extensions": {"code": "INTERNAL"}}],
            )

    async def _run_operation(self, operation_id: str, payload: dict[str, Any]) -> None:
        query, variables = payload.get("query"), payload.get("variables")
        name = payload.get("operationName")
        if (
            not isinstance(query, str)
            or (variables is not None and not isinstance(variables, dict))
            or (name is not None and not isinstance(name, str))
        ):
            await self._send_errors(
                operation_id,
                [{"message": "Invalid subscribe payload.", "extensions": {"code": "BAD_REQUEST"}}],
            )
            return
        executor = self.endpoint.executor
        prepared = executor.prepare(query)
        if prepared.document is None:
            await self._send_errors(
                operation_id, format_errors(prepared.errors, prepared.code or "")
            )
            return
        operation = prepared.operation(name)
        assert self.viewer is not None
        viewer = Viewer(self.viewer.user, dict(self.viewer.roles))
        session = self.endpoint.database.session()
        context = build_context(session, viewer, self.endpoint.services, self.websocket)
        try:
            if operation is not None and operation.operation is OperationType.SUBSCRIPTION:
                if not await self._stream(operation_id, prepared, context, variables, name):
                    return  # an "error" message ends the operation; no "complete" follows
            else:
                result = await executor.execute(prepared, context, variables, name)
                await self._send_result(operation_id, result)
            await self._send({"id": operation_id, "type": "complete"})
        finally:
            await context.session.close()

    async def _stream(
        self,
        operation_id: str,
        prepared: Any,
        context: Any,
        variables: dict[str, Any] | None,
        name: str | None,
    ) -> bool:
        """Send each event's result; False when the operation ended with an error."""
        executor = self.endpoint.executor
        subscribed = subscribe(
            executor.graphql_schema,
            prepared.document,
            context_value=context,
            variable_values=variables,
            operation_name=name,
            **executor.executor_kwargs,
        )
        stream: Any = subscribed
        if asyncio.iscoroutine(stream) or isinstance(stream, asyncio.Future):
            stream = await stream
        if isinstance(stream, ExecutionResult):
            await self._send_errors(operation_id, format_errors(stream.errors or []))
            return False
        try:
            async for result in stream:
                await self._send_result(operation_id, result)
        except ClientError as error:  # raised by the resolver, e.g. a hidden project
            await self._send_errors(
                operation_id, [{"message": error.message, "extensions": error.extensions}]
            )
            return False
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()
        return True

    async def _send_result(self, operation_id: str, result: ExecutionResult) -> None:
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = format_errors(result.errors)
        await self._send({"id": operation_id, "type": "next", "payload": body})

    async def _send_errors(self, operation_id: str, errors: list[dict[str, Any]]) -> None:
        await self._send({"id": operation_id, "type": "error", "payload": errors})

    async def _send(self, message: dict[str, Any]) -> None:
        await self.websocket.send_text(orjson.dumps(message).decode())

    async def cancel_all(self) -> None:
        tasks = list(self.operations.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
