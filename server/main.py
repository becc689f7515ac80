"""The composition root: `create_app()` builds the ASGI app; nothing imports this module.

The lifespan opens the database pool (on DATABASE_URL, or on the embedded PostgreSQL), the
event hub and the rate budget store, and, once everything is loaded, freezes the garbage
collector's view of start-up objects and raises its thresholds: on large responses the
collector otherwise costs more than half of a request's CPU.

Shutdown (SIGTERM or SIGINT) ends within SHUTDOWN_TIMEOUT, whatever the database does:
uvicorn stops accepting, closes WebSockets with 1012 (service restart: reconnect) and waits
for the requests in flight; the app, told by the same signal, brings every request's
deadline forward to SHUTDOWN_MARGIN seconds before the bound. A request still running then is
answered 503 `UNAVAILABLE` and its database connection ended (a transaction not committed
rolls back). Webhook attempts under way get their answers meanwhile (within the bound, but
half a second), and their outcomes are logged. The last second closes the pool, the event
hub and Redis, and ends any connection that does not close in time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from core import logs, observability
from core.db import Breaker, Database
from core.embedded import start_embedded
from core.redis import TIMEOUT as REDIS_TIMEOUT
from core.redis import RedisHealth
from core.settings import Settings, get_settings
from domain.auth import Tokens
from domain.context import Services
from domain.events import EventHub
from domain.policy import Access
from domain.webhooks.delivery import Deliverer
from execution.compiled import CompiledExecutor
from execution.documents import Executor
from execution.ids import encode_id
from execution.limits import Budget, Limits
from execution.persisted import MemoryStore, PersistedQueries, RedisStore, Store
from execution.pipeline import Pipeline
from loaders.accounts import shared_secret
from resolvers.schema import schema
from server.graphiql import STATIC_DIR
from server.http import GraphQLEndpoint
from server.metrics import metrics_endpoint
from server.websocket import GraphQLWebSocket, KeepServerSend

GC_THRESHOLDS = (50_000, 50, 100)
SHUTDOWN_MARGIN = 1.0  # seconds of SHUTDOWN_TIMEOUT kept for closing connections
log = logging.getLogger(__name__)
# The endpoint answers other methods itself: a GraphQL-shaped 405 rather than plain text.
ENDPOINT_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def create_app(settings: Settings | None = None, database: Database | None = None) -> Starlette:
    settings = settings or get_settings()
    logs.configure_logging(settings.log_level, json=settings.log_json)
    observability.configure_tracing("issuegraph")
    # casbin and pgserver log their whole state at INFO; httpx each webhook's URL, which
    # may hold a token
    for chatty in ("casbin", "pgserver", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    compiled = CompiledExecutor(schema) if settings.executor == "compiled" else None
    executor = Executor(
        schema,
        settings.document_cache_size,
        _limits(settings),
        introspection=settings.introspection,
        suggestions=settings.field_suggestions,
        compiled=compiled,
        cache_bytes=settings.document_cache_bytes,
    )
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = database or await _connect(settings)
        services = await build_services(settings, db)
        assert services.hub is not None
        await services.hub.start()
        app.state.hub = services.hub  # (whether it listens yet: `hub.connected`)
        redis = (
            Redis.from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
            if settings.redis_url
            else None
        )
        health = state["redis"] = RedisHealth()
        budget = Budget(
            settings.redis_url,
            anonymous_per_hour=settings.rate_limit_anonymous,
            signed_in_per_hour=settings.rate_limit_signed_in,
            health=health,
        )
        memory = MemoryStore(
            settings.persisted_queries_cache, settings.persisted_queries_cache_bytes
        )
        store: Store = RedisStore(redis, memory, health) if redis else memory
        persisted = PersistedQueries.from_file(
            store, settings.persisted_queries_only, settings.persisted_queries_file
        )
        pipeline = Pipeline(executor, db, services, budget, persisted)
        state["database"] = db
        state["endpoint"] = GraphQLEndpoint(pipeline, settings)
        state["websocket"] = GraphQLWebSocket(pipeline)
        stop_pool = observability.observe_pool(db.pool.get_size, db.pool.get_idle_size)
        await (webhooks := Deliverer(db, settings, encode_id)).start()
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

        def drain() -> None:
            if not pipeline.drain.started:
                bound = settings.shutdown_timeout
                pipeline.drain.start(max(bound / 2, bound - SHUTDOWN_MARGIN))

        restore_signals = _on_shutdown_signals(asyncio.get_running_loop(), drain)
        try:
            yield
        finally:
            restore_signals()
            loop = asyncio.get_running_loop()
            until = (pipeline.drain.until or loop.time()) + SHUTDOWN_MARGIN
            try:
                async with asyncio.timeout_at(until):
                    await state["websocket"].close_all()
                    await services.hub.stop()
                    # attempts under way finish, with what is left of the bound but a margin
                    await webhooks.stop(grace=until - SHUTDOWN_MARGIN / 2 - loop.time())
                    await budget.aclose()
                    if redis is not None:
                        await redis.aclose()
                    if database is None:
                        await db.close()
            except TimeoutError:
                log.warning("shutdown bound reached: ending the connections still open")
                if database is None:
                    db.pool.terminate()
            finally:
                stop_pool()

    graphql = _GraphQLApp(state)

    async def graphql_ws(websocket: WebSocket) -> None:
        await state["websocket"](websocket)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if await state["database"].ping(timeout=1.0):
            # Redis only accelerates: without it this instance serves, from its own memory
            return PlainTextResponse(
                "ready; redis degraded" if state["redis"].degraded else "ready"
            )
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable"}, 503, headers={"Retry-After": "2"}
        )

    routes = [
        Route("/graphql", graphql, methods=ENDPOINT_METHODS),
        Route("/v1/graphql", graphql, methods=ENDPOINT_METHODS),
        WebSocketRoute("/graphql", graphql_ws),
        WebSocketRoute("/v1/graphql", graphql_ws),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint(settings.metrics_token)),
    ]
    if STATIC_DIR.is_dir():  # fetched at setup; without it the page falls back to a CDN
        routes.append(Mount("/static/graphiql", StaticFiles(directory=STATIC_DIR)))
    middleware = [  # the first is the outermost: the access line carries the request id
        Middleware(KeepServerSend),  # for `next` messages straight to the socket
        Middleware(observability.RequestIdMiddleware),
        Middleware(logs.AccessLogMiddleware),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)


class _GraphQLApp:
    """The GraphQL routes' ASGI app: the endpoint the lifespan made, on a Request of its own.
    An object, not a function, so that Starlette calls it as it is rather than through its
    per-request wrapping of function endpoints (a Request, an exception handler around the
    call, a wrapped `send`), which the endpoint, catching everything itself, does not need.
    """

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._state["endpoint"](Request(scope, receive, send))
        await response(scope, receive, send)


def _on_shutdown_signals(
    loop: asyncio.AbstractEventLoop, on_signal: Callable[[], None]
) -> Callable[[], None]:
    """Call `on_signal` in the loop when SIGTERM or SIGINT arrives, then the handler that was
    there (uvicorn's, which starts its own shutdown). Returns what puts the old ones back.
    (Signals are only handled in the main thread; elsewhere, as in tests, nothing changes.)"""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}
    for number in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(number)

        def chained(signum: int, frame: Any, handler: Any = handler) -> None:
            loop.call_soon_threadsafe(on_signal)
            if callable(handler):
                handler(signum, frame)

        previous[number] = signal.signal(number, chained)

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore


def _limits(settings: Settings) -> Limits:
    return Limits(
        max_depth=settings.max_depth,
        max_aliases=settings.max_aliases,
        max_directives=settings.max_directives,
        max_cost=settings.max_cost,
        max_tokens=settings.max_tokens,
    )


async def build_services(settings: Settings, database: Database) -> Services:
    secret = settings.jwt_secret
    if secret is None:
        session = database.session()
        try:
            secret = await shared_secret(session, "jwt-hs256")
        finally:
            await session.close()
    tokens = Tokens(secret, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl)
    access = Access()
    return Services(
        settings=settings,
        access=access,
        tokens=tokens,
        database=database,
        hub=EventHub(database, access),
    )


async def _connect(settings: Settings) -> Database:
    url = settings.database_url or start_embedded(settings.embedded_pgdata)
    return await Database.connect(
        url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        connect_timeout=settings.db_connect_timeout,
        acquire_timeout=settings.db_acquire_timeout,
        command_timeout=settings.db_command_timeout,
        statement_timeout_ms=settings.statement_timeout_ms,
        breaker=Breaker(settings.circuit_failures, settings.circuit_reset),
    )
