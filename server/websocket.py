"""GraphQL over WebSocket with the graphql-transport-ws protocol, at the GraphQL path.

Written here rather than taken from Strawberry because Strawberry's handler shares one
context for the whole connection, and this server needs a context (database session and
loaders) per event; it also lets shutdown close every socket with a proper code.

A `subscribe` message of any operation type (query, mutation or subscription) goes
through the same pipeline as an HTTP request (execution/pipeline.py): persisted queries,
limits, the budget and the deadline apply alike. This module maps its outcome: a refusal
is an `error` message carrying the same errors (and `extensions.code`) HTTP would send; a
result is a `next` and a `complete`, a subscription a `next` per event; a result without
`data` (execution never started) is an `error`.

A connection lives as long as the credentials its connection_init brought: when the
access token expires (a timer) or its session ends (the event hub hears of it from any
instance, domain/events.py), the server closes it with 4401, and from that moment sends
nothing more on it, no event included. The client signs in again (or refreshes its tokens)
and reconnects.

Close codes are the protocol's: 4400 bad message, 4401 subscribe before init, and the
token expired or the session ended, 4403 bad credentials, 4406 wrong subprotocol, 4408 no
init in time, 4409 duplicate id, 4429 second init; 1001 when the server shuts down, 1011
when it cannot check the credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from core import encoding
from core import observability as metrics
from core.errors import ServerError, Unauthenticated
from core.logs import access_note
from domain.auth import Claims
from domain.policy import Viewer
from execution.documents import error_entries
from execution.fanout import Payload
from execution.pipeline import EVERY_OPERATION, Caller, Executed, Pipeline, Refused, Subscribed

log = logging.getLogger(__name__)

PROTOCOL = "graphql-transport-ws"
INIT_TIMEOUT = 10.0
GOING_AWAY = 1001
INTERNAL_ERROR = 1011
UNAUTHORIZED = 4401
MAX_REASON_BYTES = 123
TOKEN_EXPIRED = "Unauthorized: the access token has expired"
SESSION_ENDED = "Unauthorized: the session has ended"


SERVER_SEND = "server_send"  # the key of the server's own `send` in a WebSocket's state


class KeepServerSend:
    """ASGI middleware, the outermost: keeps the server's own `send` of a WebSocket in its
    scope's state, so that `next` messages can be written to the socket without going
    through the middleware above it (none of which acts on `websocket.send`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope.setdefault("state", {})[SERVER_SEND] = send
        await self.app(scope, receive, send)


# What `_Frames.write_next` reads of uvicorn's protocol
_PROTOCOL = ("conn", "close_sent", "disconnected", "initial_response", "writable", "transport")
_CONNECTION = ("state", "writes", "expect_continuation_frame")  # of websockets' protocol


class _Frames:
    """Writes a `next` message to the socket as one text frame, made by one concatenation
    of its header, the operation's prefix, the payload's JSON (shared by every subscriber
    who gets it) and the closing brace: what uvicorn's websockets (sans-I/O) protocol would
    write, without its per-message work. Only while the connection is open and writable
    with nothing queued before it; otherwise (another server, a protocol in any other
    state) `write_next` says False and the message goes the usual way, which raises or
    waits as it should. A frame is never compressed: a message without RSV1 is plain also
    where permessage-deflate was agreed (RFC 7692, 6)."""

    __slots__ = ("protocol", "websocket")

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        send = websocket.scope.get("state", {}).get(SERVER_SEND)
        protocol = getattr(send, "__self__", None)
        known = (  # (another version of uvicorn's or websockets' goes the usual way)
            isinstance(protocol, WebSocketsSansIOProtocol)
            and all(hasattr(protocol, name) for name in _PROTOCOL)
            and all(hasattr(protocol.conn, name) for name in _CONNECTION)
        )
        self.protocol = protocol if known else None

    def write_next(self, prefix: bytes, payload: bytes) -> bool:
        protocol = self.protocol
        if protocol is None or self.websocket.application_state is not WebSocketState.CONNECTED:
            return False
        conn = protocol.conn
        if (
            protocol.close_sent
            or protocol.disconnected
            or protocol.initial_response is not None
            or not protocol.writable.is_set()
            or conn.state is not State.OPEN
            or conn.writes
            or conn.expect_continuation_frame
            or protocol.transport.is_closing()
        ):
            return False
        header = text_frame_header(len(prefix) + len(payload) + 1)
        protocol.transport.write(b"".join((header, prefix, payload, b"}")))
        return True


def text_frame_header(size: int) -> bytes:
    """The header of a server's unfragmented, unmasked text frame of `size` bytes
    (RFC 6455, 5.2)."""
    if size < 126:
        return bytes((0x81, size))
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big")
    return b"\x81\x7f" + size.to_bytes(8, "big")


def next_prefix(operation_id: str) -> bytes:
    """What a `next` message of the operation holds before its payload's JSON."""
    return b'{"id":' + encoding.dumps(operation_id) + b',"type":"next","payload":'


class Closing(Exception):
    """Ends the connection with a close code: the protocol's flow control, not a GraphQL
    error (those are `error` messages, see core/errors.py)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class GraphQLWebSocket:
    """The endpoint; keeps its open connections so that shutdown can close them."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.open: set[WebSocket] = set()

    async def __call__(self, websocket: WebSocket) -> None:
        if PROTOCOL not in websocket.scope.get("subprotocols", []):
            await websocket.close(code=4406, reason="Subprotocol not acceptable")
            return
        await websocket.accept(subprotocol=PROTOCOL)
        self.open.add(websocket)
        connection = _Connection(self.pipeline, websocket)
        try:
            await connection.run()
        except Closing as closing:
            await _close(websocket, closing.code, closing.reason)
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
        # a close frame's reason holds at most 123 bytes of UTF-8 (RFC 6455, 5.5)
        fitting = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(code=code, reason=fitting)


class _Connection:
    def __init__(self, pipeline: Pipeline, websocket: WebSocket) -> None:
        self.pipeline = pipeline
        self.websocket = websocket
        self.viewer: Viewer | None = None
        self.operations: dict[str, asyncio.Task[None]] = {}
        self.expires_at: float | None = None  # the access token's expiry (epoch seconds)
        self.ending: Closing | None = None  # set once the credentials ended: send nothing
        self._ended_early: str | None = None  # an end heard before the viewer was known
        self._bound = contextlib.ExitStack()  # the session watch and the expiry timer
        self._closer: asyncio.Task[None] | None = None
        self.note = access_note(websocket.scope)  # for the connection's access line
        self.frames = _Frames(websocket)

    async def run(self) -> None:
        try:
            first = await asyncio.wait_for(self._receive(), INIT_TIMEOUT)
        except TimeoutError:
            raise Closing(4408, "Connection initialisation timeout") from None
        if first.get("type") != "connection_init":
            raise Closing(4401, "Unauthorized")
        await self._init(first)
        while True:
            await self._handle(await self._receive())

    async def _receive(self) -> dict[str, Any]:
        text = await self.websocket.receive_text()
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise Closing(4400, "Invalid JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise Closing(4400, "Invalid message")
        return message

    async def _init(self, message: dict[str, Any]) -> None:
        payload = message.get("payload") or {}
        if not isinstance(payload, dict):
            raise Closing(4400, "Invalid connection init payload")
        try:
            claims = self.pipeline.claims(self._credentials(payload))
            if claims is not None:
                self._bind(claims)  # before the session's check, so no end goes unheard
            self.viewer = await self.pipeline.viewer_of(claims)
            if self.note is not None and self.viewer.user is not None:
                self.note.viewer_id = self.viewer.user.id
        except Unauthenticated as error:
            raise Closing(4403, f"Forbidden: {error.message}") from None
        except ServerError as error:  # the database, while loading the viewer
            raise Closing(INTERNAL_ERROR, error.public_message) from None
        await self._send({"type": "connection_ack"})
        if self._ended_early is not None:  # (the end was heard while the viewer loaded)
            self._end(self._ended_early)

    def _bind(self, claims: Claims) -> None:
        """Close the connection when the token expires or its session ends."""
        hub = self.pipeline.services.hub
        if hub is not None:
            self._bound.enter_context(
                hub.watch_session(claims.session_id, lambda: self._end(SESSION_ENDED))
            )
        self.expires_at = claims.expires_at.timestamp()
        timer = asyncio.get_running_loop().call_later(
            max(0.0, self.expires_at - time.time()), self._end, TOKEN_EXPIRED
        )
        self._bound.callback(timer.cancel)

    def _end(self, reason: str) -> None:
        """The credentials ended: from now on nothing is sent; close the connection. Heard
        before the viewer is known, it waits for the check that loads them: a session that
        had ended before the connection opened is refused there (4403), as a bad token is,
        whenever the news of its end reaches this process."""
        if self.viewer is None:
            self._ended_early = reason
            return
        if self.ending is not None:
            return
        self.ending = Closing(UNAUTHORIZED, reason)
        self._closer = asyncio.get_running_loop().create_task(self._close_ended())

    async def _close_ended(self) -> None:
        assert self.ending is not None
        await self.cancel_all()
        await _close(self.websocket, self.ending.code, self.ending.reason)

    def _credentials(self, payload: dict[str, Any]) -> str | None:
        """The `Authorization` value the client sent: in connection_init's payload (as a
        header, or Apollo's `authToken`), else on the upgrade request."""
        header = (
            payload.get("Authorization")
            or payload.get("authorization")
            or self.websocket.headers.get("authorization")
        )
        if isinstance(header, str):
            return header
        token = payload.get("authToken")
        if token is None:
            return None
        if not isinstance(token, str):
            raise Closing(4403, "Forbidden: The access token must be a string.")
        return f"Bearer {token}"

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "pong":
            return
        elif kind == "connection_init":
            raise Closing(4429, "Too many initialisation requests")
        elif kind == "subscribe":
            self._subscribe(message)
        elif kind == "complete":
            task = self.operations.pop(str(message.get("id")), None)
            if task is not None:
                task.cancel()
        else:
            raise Closing(4400, f"Unknown message type: {kind[:32]}")

    def _subscribe(self, message: dict[str, Any]) -> None:
        operation_id = message.get("id")
        payload = message.get("payload")
        if not isinstance(operation_id, str) or not isinstance(payload, dict):
            raise Closing(4400, "Invalid subscribe message")
        if operation_id in self.operations:
            raise Closing(4409, f"Subscriber for {operation_id[:64]} already exists")
        task = asyncio.create_task(self._operation(operation_id, payload))
        self.operations[operation_id] = task
        if self.note is not None:
            self.note.operations += 1
        task.add_done_callback(lambda _t: self.operations.pop(operation_id, None))

    async def _operation(self, operation_id: str, payload: dict[str, Any]) -> None:
        try:
            await self._run_operation(operation_id, payload)
        except asyncio.CancelledError:
            raise
        except (Closing, WebSocketDisconnect, RuntimeError, OSError):
            return
        except Exception as unexpected:
            log.exception("operation %s failed", operation_id)
            await self._send_errors(operation_id, error_entries(ServerError(str(unexpected))))

    async def _run_operation(self, operation_id: str, payload: dict[str, Any]) -> None:
        assert self.viewer is not None
        caller = Caller(
            address=self.websocket.client.host if self.websocket.client else "unknown",
            viewer=self.viewer,
            operations=EVERY_OPERATION,
            request=self.websocket,
        )
        outcome = await self.pipeline.run(payload, caller)
        if isinstance(outcome, Refused):
            await self._send_errors(operation_id, outcome.errors)
        elif isinstance(outcome, Executed):
            prefix = next_prefix(operation_id)
            if await self._send_result(operation_id, prefix, Payload(outcome.body)):
                await self._send({"id": operation_id, "type": "complete"})
        elif await self._stream(operation_id, outcome):
            await self._send({"id": operation_id, "type": "complete"})

    async def _stream(self, operation_id: str, subscribed: Subscribed) -> bool:
        """Send each event; False when the stream ended with an error. Where the socket
        can be written directly, the subscription's events are written as they are made,
        without this task (execution/fanout.py, Live)."""
        prefix = next_prefix(operation_id)
        if self.frames.protocol is not None:
            subscribed.live.attach(
                lambda payload: self._write_now(operation_id, prefix, payload),
                lambda payload: self._send_later(operation_id, prefix, payload),
                lambda: self._stop(operation_id),
            )
        async with contextlib.aclosing(subscribed.events) as events:
            async for payload in events:
                if not await self._send_result(operation_id, prefix, payload):
                    return False
        return True

    def _write_now(self, operation_id: str, prefix: bytes, payload: Payload) -> bool:
        """Write a `next` at once if the socket takes it as it is; True also when the
        operation or the connection has ended (nothing more is sent on it); False when
        it must go `_send_later` (an error, expired credentials, a backed-up socket)."""
        if self.ending is not None or operation_id not in self.operations:
            return True
        body = payload.body
        if "data" not in body or "errors" in body:
            return False
        if self.expires_at is not None and time.time() >= self.expires_at:
            return False
        return self.frames.write_next(prefix, payload.json())

    async def _send_later(self, operation_id: str, prefix: bytes, payload: Payload) -> bool:
        """Send a payload `_write_now` could not; False when the operation ends there."""
        if operation_id not in self.operations:
            return False
        try:
            return await self._send_result(operation_id, prefix, payload)
        except (Closing, WebSocketDisconnect, RuntimeError, OSError):
            return False

    def _stop(self, operation_id: str) -> None:
        """End an operation without a `complete` (it ended with an error, or the socket)."""
        task = self.operations.pop(operation_id, None)
        if task is not None:
            task.cancel()

    async def _send_result(self, operation_id: str, prefix: bytes, payload: Payload) -> bool:
        """A `next` (starting with `prefix`, see next_prefix), or an `error` when
        execution never started (the body has no `data`): an `error` ends the operation,
        and no `complete` follows it. The payload's JSON is made once for every subscriber
        it goes to: only the `id` around it is this one's."""
        body = payload.body
        if "data" not in body:
            await self._send_errors(operation_id, body.get("errors", []))
            return False
        errors = body.get("errors")
        if errors:
            metrics.record_errors(e.get("extensions", {}).get("code") for e in errors)
        self._check_credentials()
        json = payload.json()
        if not self.frames.write_next(prefix, json):
            await self.websocket.send_text((prefix + json + b"}").decode())
        return True

    async def _send_errors(self, operation_id: str, errors: list[dict[str, Any]]) -> None:
        metrics.record_errors(e.get("extensions", {}).get("code") for e in errors)
        await self._send({"id": operation_id, "type": "error", "payload": errors})

    async def _send(self, message: dict[str, Any]) -> None:
        self._check_credentials()
        await self.websocket.send_text(encoding.dumps(message).decode())

    def _check_credentials(self) -> None:
        """Raise (and close the connection) once the credentials have ended: nothing more
        may be sent on it."""
        if self.ending is None and self.expires_at is not None and time.time() >= self.expires_at:
            self._end(TOKEN_EXPIRED)  # (the timer may not have fired yet)
        if self.ending is not None:
            raise self.ending

    async def cancel_all(self) -> None:
        self._bound.close()
        tasks = [t for t in self.operations.values() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
