"""Logs: one line per record on standard error, JSON (LOG_JSON=true) or text for people.

Configuration
    `configure_logging` sends structlog and the standard `logging` module (uvicorn, asyncpg,
    our own loggers) through one handler. `uvicorn_log_config` is the same as a `dictConfig`
    for uvicorn's `log_config`, so that its start-up lines, written before the app exists
    (and in each worker process), are JSON too. Text is coloured only on a terminal.
Access lines
    `AccessLogMiddleware` writes one `request` line per HTTP request (method, path, status,
    duration, and what the transport and the pipeline noted in the request's `AccessNote`:
    the operation's name and type, the viewer, SQL statements, cost, error codes), at debug
    for the probes (/healthz, /readyz, /metrics); and, for a WebSocket, a line when it is
    accepted and one when it closes (duration, close code, operations run). uvicorn's own
    access lines and its per-WebSocket lines are left out: these replace them.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.stdlib.get_logger("issuegraph.access")

PROBES: Final = frozenset({"/healthz", "/readyz", "/metrics"})
NOTE: Final = "access"  # the key of the request's AccessNote in the ASGI scope's state
_HANDLER_NAME = "issuegraph"
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# uvicorn (and websockets through it) log each WebSocket's handshake and end as text;
# the access lines say the same with the request id, the duration and the close code.
_UVICORN_WEBSOCKET_CHATTER = ('"WebSocket ', "connection open", "connection closed")


# --- configuration -------------------------------------------------------------------------


def configure_logging(level: str, json: bool = True, stream: TextIO | None = None) -> None:
    """Send structlog and `logging` records, one line each, to `stream` (stderr by default).

    Replaces the root logger's handlers (like `logging.basicConfig(force=True)`) and makes
    uvicorn's loggers propagate to it, so every library logs in the same format. Calling it
    again replaces the handler rather than adding a second one.
    """
    configure_structlog()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter(json, colors=_is_terminal(handler.stream)))
    handler.addFilter(_drop_uvicorn_websocket_chatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _UVICORN_LOGGERS:  # uvicorn gives these their own plain-text handlers
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # the access lines' job


def uvicorn_log_config(level: str, json: bool) -> dict[str, Any]:
    """`configure_logging` as a `logging.config.dictConfig`, for uvicorn's `log_config`."""
    loggers = {name: {"handlers": [], "propagate": True} for name in _UVICORN_LOGGERS}
    loggers["uvicorn.access"]["level"] = "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {_HANDLER_NAME: {"()": f"{__name__}.stderr_formatter", "json": json}},
        "filters": {"websockets": {"()": f"{__name__}.websocket_chatter_filter"}},
        "handlers": {
            _HANDLER_NAME: {
                "class": "logging.StreamHandler",
                "formatter": _HANDLER_NAME,
                "filters": ["websockets"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": [_HANDLER_NAME], "level": level.upper()},
        "loggers": loggers,
    }


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # before the chain runs, not after
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger that writes through `logging` (so through `configure_logging`)."""
    return structlog.stdlib.get_logger(name)


def formatter(json: bool, colors: bool = False) -> structlog.stdlib.ProcessorFormatter:
    # A string traceback, not dict_tracebacks: that one shows local variables by default,
    # and locals hold passwords and tokens. Both act only when the event has exc_info.
    renderer: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, _leading, structlog.processors.JSONRenderer()]
        if json
        else [structlog.dev.ConsoleRenderer(colors=colors)]
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder(), _drop_color],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )


def stderr_formatter(json: bool) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of a handler on standard error (what `uvicorn_log_config` names)."""
    configure_structlog()
    return formatter(json, colors=_is_terminal(sys.stderr))


def websocket_chatter_filter() -> logging.Filter:
    chatter = logging.Filter()
    chatter.filter = _drop_uvicorn_websocket_chatter  # type: ignore[method-assign]
    return chatter


def _drop_uvicorn_websocket_chatter(record: logging.LogRecord) -> bool:
    if not record.name.startswith(("uvicorn", "websockets")) or record.levelno >= logging.WARNING:
        return True
    return not str(record.msg).lstrip("%s -").startswith(_UVICORN_WEBSOCKET_CHATTER)


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _shared_processors() -> list[structlog.typing.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


_LEADING = ("timestamp", "level", "logger", "event")


def _leading(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """The same keys first on every line, for people reading them."""
    leading: structlog.typing.EventDict = {key: event[key] for key in _LEADING if key in event}
    leading.update(event)
    return leading


def _drop_color(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return event


# --- access lines --------------------------------------------------------------------------


@dataclass(slots=True)
class AccessNote:
    """What one request (or WebSocket) did, noted as it runs for its access line."""

    operation_name: str | None = None
    operation_type: str | None = None
    viewer_id: int | None = None
    sql_statements: int | None = None
    cost: int | None = None
    error_codes: list[str] = field(default_factory=list)
    operations: int = 0  # a WebSocket's operations (subscribe messages)

    def fields(self) -> dict[str, Any]:
        noted: dict[str, Any] = {
            "operation_name": self.operation_name,
            "operation_type": self.operation_type,
            "viewer_id": self.viewer_id,
            "sql_statements": self.sql_statements,
            "cost": self.cost,
        }
        if self.error_codes:
            noted["error_codes"] = self.error_codes
        return noted


def access_note(scope: Scope) -> AccessNote | None:
    """The note `AccessLogMiddleware` keeps for this request, if it runs."""
    state = scope.get("state")
    note = state.get(NOTE) if isinstance(state, dict) else None
    return note if isinstance(note, AccessNote) else None


class AccessLogMiddleware:
    """One line per HTTP request, two per WebSocket (accepted, closed). Pure ASGI, inside
    `RequestIdMiddleware`, so that each line carries the request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        note = scope.setdefault("state", {})[NOTE] = AccessNote()
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before starting one

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope.get("path", "")
            level = logging.DEBUG if path in PROBES else _level(status)
            if log.isEnabledFor(level):  # else not even the line's fields are gathered
                log.log(
                    level,
                    "request",
                    method=scope.get("method"),
                    path=path,
                    status=status,
                    duration_ms=_milliseconds(started),
                    **note.fields(),
                )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        note = scope.setdefault("state", {})[NOTE] = AccessNote()
        started = time.perf_counter()
        close_code: int | None = None
        accepted = False

        async def receiving() -> Message:
            nonlocal close_code
            message = await receive()
            if message["type"] == "websocket.disconnect" and close_code is None:
                close_code = int(message.get("code", 1005))
            return message

        async def sending(message: Message) -> None:
            nonlocal close_code, accepted
            if message["type"] == "websocket.accept":
                accepted = True
                log.info("websocket accepted", path=scope.get("path"))
            elif message["type"] == "websocket.close" and close_code is None:
                close_code = int(message.get("code", 1000))
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        finally:
            log.info(
                "websocket closed" if accepted else "websocket refused",
                path=scope.get("path"),
                close_code=close_code,
                duration_ms=_milliseconds(started),
                operations=note.operations,
                viewer_id=note.viewer_id,
            )


def _level(status: int) -> int:
    return logging.WARNING if status >= 500 else logging.INFO


def _milliseconds(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
