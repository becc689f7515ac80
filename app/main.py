"""The composition root: `create_app()` builds the ASGI app; nothing imports this module.

The lifespan opens the database pool (on DATABASE_URL, or on the embedded PostgreSQL) and,
once everything is loaded, freezes the garbage collector's view of start-up objects and
raises its thresholds: on large responses the collector otherwise costs more than half of
a request's CPU.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket
from starlette.staticfiles import StaticFiles

from app.accounts import shared_secret
from app.auth import Tokens
from app.context import Services
from app.db import Database
from app.embedded import start_embedded
from app.events import EventHub
from app.execution import Executor
from app.graphiql import STATIC_DIR
from app.http import GraphQLEndpoint
from app.policy import Access
from app.settings import Settings, get_settings
from app.websocket import GraphQLWebSocket
from resolvers.schema import schema

GC_THRESHOLDS = (50_000, 50, 100)


def create_app(settings: Settings | None = None, database: Database | None = None) -> Starlette:
    settings = settings or get_settings()
    for chatty in ("casbin", "pgserver"):  # both log their whole state at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    executor = Executor(schema, settings.document_cache_size)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = database or await _connect(settings)
        services = await build_services(settings, db)
        assert services.hub is not None
        await services.hub.start()
        state["endpoint"] = GraphQLEndpoint(executor, db, services)
        state["websocket"] = GraphQLWebSocket(executor, db, services)
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            await state["websocket"].close_all()
            await services.hub.stop()
            if database is None:
                await db.close()

    async def graphql(request: Request) -> Response:
        return await state["endpoint"](request)  # type: ignore[no-any-return]

    async def graphql_ws(websocket: WebSocket) -> None:
        await state["websocket"](websocket)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/v1/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_ws),
        WebSocketRoute("/v1/graphql", graphql_ws),
        Route("/healthz", healthz),
    ]
    if STATIC_DIR.is_dir():  # fetched at setup; without it the page falls back to a CDN
        routes.append(Mount("/static/graphiql", StaticFiles(directory=STATIC_DIR)))
    return Starlette(routes=routes, lifespan=lifespan)


async def build_services(settings: Settings, database: Database) -> Services:
    secret = settings.jwt_secret
    if secret is None:
        session = database.session()
        try:
            secret = await shared_secret(session, "jwt-hs256")
        finally:
            await session.close()
    tokens = Tokens(secret, settings.jwt_issuer, settings.jwt_audience,
                    settings.access_token_ttl)
    access = Access()
    return Services(settings=settings, access=access, tokens=tokens, database=database,
                    hub=EventHub(database, access))


async def _connect(settings: Settings) -> Database:
    url = settings.database_url or start_embedded(settings.embedded_pgdata)
    return await Database.connect(
        url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        connect_timeout=settings.db_connect_timeout,
        acquire_timeout=settings.db_acquire_timeout,
        command_timeout=settings.db_command_timeout,
    )
