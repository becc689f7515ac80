"""Test fixtures: a real PostgreSQL, one database per test session, one transaction per test.

The database server is the one DATABASE_URL names, or else an embedded PostgreSQL in
`.pgdata-test/`. A fresh database is created on it, migrated and loaded with a small demo
data set, and dropped at the end. Each test runs in a transaction that is rolled back.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationType,
    print_ast,
)

from core import encoding, observability
from core.db import Database, Record, Session
from core.embedded import start_embedded
from core.settings import Settings
from domain.auth import Tokens
from domain.context import Services, build_context
from domain.policy import ANONYMOUS, Access, Viewer
from execution.compiled import CompiledExecutor
from execution.documents import Executor, error_entries, format_errors
from execution.ids import encode_id
from execution.selections import fragments_of, pick_operation
from loaders.users import load_viewer
from resolvers.schema import schema
from server.__main__ import prepare_database
from tests.servers import AppSocket, ServedSocket, served_app

TEST_SCALE = 0.05
_addresses = itertools.count(1)
os.environ.setdefault("BCRYPT_ROUNDS", "4")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    server_url = os.environ.get("DATABASE_URL") or start_embedded(".pgdata-test", "postgres")
    name = f"issuegraph_test_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    try:
        await prepare_database(url, TEST_SCALE)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = await Database.connect(database_url, min_size=1, max_size=4)
    yield db
    await db.close()


@pytest.fixture
async def conn(database: Database) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    connection = await database.acquire()
    transaction = connection.transaction()
    await transaction.start()
    try:
        yield connection
    finally:
        await transaction.rollback()
        await database.release(connection)


class RecordingSession(Session):
    """A session on the test's connection that also keeps every statement it ran."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        super().__init__(connection=connection)
        self.log: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Record]:
        self.log.append((sql, args))
        return await super().fetch(sql, *args)


@dataclass
class Outcome:
    data: Any
    errors: list[dict[str, Any]] = field(default_factory=list)
    statements: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [e["extensions"]["code"] for e in self.errors]


Run = Callable[..., Awaitable[Outcome]]
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


def executions(executor: str, operation_type: str = "query") -> float:
    """How many operations of a type `executor` ran in this process (the counter's value)."""
    value = observability.registry.get_sample_value(
        "issuegraph_executions_total", {"executor": executor, "operation_type": operation_type}
    )
    return value or 0.0


def is_introspection(document: DocumentNode, operation_name: str | None = None) -> bool:
    """Does the operation select `__schema` or `__type` at its root? (Those read the schema,
    not the database: graphql-core answers them, not the compiled executor.)"""
    fragments = fragments_of(document)
    operation = pick_operation(document, operation_name)
    pending = [operation.selection_set] if operation is not None else []
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                if selection.name.value in INTROSPECTION_FIELDS:
                    return True
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                pending.append(fragments[selection.name.value].selection_set)
    return False


_fallbacks: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _watch_the_compiled_executor() -> Iterator[None]:
    """Every CompiledExecutor of the session (the app's with EXECUTOR=compiled, the
    differential one of `run`) notes each query it leaves to graphql-core that is not
    introspection: some field it selects lost its compiled path. An app built with
    EXECUTOR=standard has no compiled executor, so it is not watched."""
    original = CompiledExecutor.execute

    async def execute(
        self: CompiledExecutor,
        document: DocumentNode,
        operation_name: str | None,
        context: Any,
        variables: dict[str, Any] | None,
    ) -> ExecutionResult | None:
        result = await original(self, document, operation_name, context, variables)
        operation = pick_operation(document, operation_name)
        if (
            result is None
            and operation is not None
            and operation.operation is OperationType.QUERY
            and not is_introspection(document, operation_name)
        ):
            _fallbacks.append(print_ast(operation)[:1000])
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CompiledExecutor, "execute", execute)
        yield


@pytest.fixture(autouse=True)
def compiled_path_kept() -> Iterator[None]:
    """Fails the test in which a query fell back to graphql-core (see above)."""
    seen = len(_fallbacks)
    yield
    fell_back = _fallbacks[seen:]
    del _fallbacks[seen:]
    assert not fell_back, "graphql-core ran these, not the compiled executor:\n" + "\n".join(
        fell_back
    )


_executor = Executor(schema)
_compiled = Executor(schema, compiled=CompiledExecutor(schema))


def _under_null(data: Any, path: list[Any]) -> bool:
    node = data
    for key in path[:-1]:
        if node is None:
            return True
        node = node[key]
    return node is None


def same_errors(errors: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Errors in a comparable order: executors may finish fields in different orders."""
    return sorted((repr(e.get("path")), e["message"], repr(e.get("extensions"))) for e in errors)


TEST_SETTINGS = Settings(
    bcrypt_rounds=4, jwt_secret="test-secret-" + "x" * 32, max_body_bytes=100_000
)


def services_with(access: Access | None = None) -> Services:
    tokens = Tokens(
        TEST_SETTINGS.jwt_secret or "",
        TEST_SETTINGS.jwt_issuer,
        TEST_SETTINGS.jwt_audience,
        TEST_SETTINGS.access_token_ttl,
    )
    return Services(settings=TEST_SETTINGS, access=access or Access(), tokens=tokens)


_services = services_with()


async def viewer_for(conn: asyncpg.Connection, login: str | None) -> Viewer:
    if login is None:
        return ANONYMOUS
    user_id = await conn.fetchval("SELECT id FROM users WHERE lower(login) = lower($1)", login)
    found = await load_viewer(Session.on_connection(conn), user_id, None)  # (no session)
    assert found is not None, login
    return Viewer(found.user, found.roles)


@pytest.fixture
def run(conn: asyncpg.Connection) -> Run:
    """Execute a document in-process, on the test's transaction, as `viewer` (a login, a
    Viewer, or None for anonymous), optionally with other `services` (another policy)."""

    async def execute(
        query: str,
        variables: dict[str, Any] | None = None,
        viewer: Viewer | str | None = None,
        services: Services | None = None,
    ) -> Outcome:
        prepared = _executor.prepare(query)
        if prepared.error is not None:
            return Outcome(None, error_entries(prepared.error))
        assert prepared.document is not None
        if not isinstance(viewer, Viewer):
            viewer = await viewer_for(conn, viewer)
        session = RecordingSession(conn)
        context = build_context(session, viewer, services or _services)
        result = await _executor.execute(prepared, context, variables)
        await session.close()  # waits for any statement still running
        outcome = Outcome(result.data, format_errors(result.errors or []), session.log)
        operation = pick_operation(prepared.document, None)
        if operation is not None and operation.operation is OperationType.QUERY:
            await _differential(prepared, viewer, services, variables, outcome)
        return outcome

    async def _differential(
        prepared: Any,
        viewer: Viewer,
        services: Services | None,
        variables: dict[str, Any] | None,
        standard: Outcome,
    ) -> None:
        """Every query of the suite also runs through the compiled executor: same answer,
        no more SQL statements."""
        session = RecordingSession(conn)
        context = build_context(
            session, replace(viewer, roles=dict(viewer.roles)), services or _services
        )
        result = await _compiled.execute(prepared, context, variables)
        await session.close()
        # the same JSON (the compiled executor leaves DateTime values to the encoder)
        assert orjson.loads(encoding.dumps(result.data)) == standard.data
        compiled, expected = (
            same_errors(format_errors(result.errors or [])),
            same_errors(standard.errors),
        )
        assert set(expected) <= set(compiled)
        # graphql-core stops waiting for the other fields of an object that an error has
        # nulled, so it may not report their errors; every error only the compiled executor
        # reports must lie under such a nulled object
        for path, *_ in set(compiled) - set(expected):
            assert _under_null(standard.data, eval(path)), path
        if not standard.errors:  # (an error lets graphql-core skip the rest of an object)
            assert len(session.log) <= len(standard.statements), (session.log, standard.statements)

    return execute


@pytest.fixture
def make(conn: asyncpg.Connection) -> Any:
    from tests.factories import Make

    return Make(conn)


@dataclass
class RunningApp:
    """The real ASGI app on the test database: an HTTP client to it, and WebSockets to it
    (`websocket()`), both from the same client address; with `served`, WebSockets over a
    real socket to uvicorn serving the app in this process (`served_websocket()`)."""

    http: Any
    asgi: Any
    address: str
    state: Any = None  # the app's state (its event hub: `state.hub`)
    served_at: str | None = None  # host:port, when served by uvicorn

    def websocket(self, headers: Sequence[tuple[str, str]] = ()) -> AppSocket:
        return AppSocket(self.asgi, client=(self.address, 40001), headers=headers)

    def served_websocket(self, headers: Sequence[tuple[str, str]] = ()) -> ServedSocket:
        """A WebSocket over a real socket to uvicorn (`running_app(..., served=True)`)."""
        assert self.served_at is not None, "the app is not served"
        return ServedSocket(f"ws://{self.served_at}/graphql", headers)


@contextlib.asynccontextmanager
async def running_app(
    database: Database, *, served: bool = False, **overrides: Any
) -> AsyncIterator[RunningApp]:
    """The real ASGI app (lifespan included) on `database`, with settings overridden as
    given; `served`: also by uvicorn on a port of this machine's loopback."""
    import httpx
    from asgi_lifespan import LifespanManager

    from server.main import create_app

    app = create_app(TEST_SETTINGS.model_copy(update=overrides), database=database)
    n = next(_addresses)
    address = f"127.{n // 250}.{n % 250}.1"
    async with LifespanManager(app) as manager, contextlib.AsyncExitStack() as stack:
        served_at = await stack.enter_async_context(served_app(manager.app)) if served else None
        # each test its own client address, so budgets and sign-in throttling stay per test
        transport = httpx.ASGITransport(app=manager.app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield RunningApp(http, manager.app, address, app.state, served_at)


@contextlib.asynccontextmanager
async def app_client(database: Database, **overrides: Any) -> AsyncIterator[Any]:
    """An HTTP client to the real ASGI app (see `running_app`)."""
    async with running_app(database, **overrides) as app:
        yield app.http


@pytest.fixture
async def client(database: Database) -> AsyncIterator[Any]:
    async with app_client(database) as http:
        yield http


@pytest.fixture
async def committed(database: Database) -> dict[str, Any]:
    """A committed organization with a public project and its ADMIN: the app's requests
    run on connections of their own, which see committed rows only."""
    tag = uuid.uuid4().hex[:10]
    connection = await database.acquire()
    try:
        org = await connection.fetchval(
            "INSERT INTO organizations (slug, name) VALUES ($1, $1) RETURNING id", f"ws-{tag}"
        )
        user = await connection.fetchval(
            "INSERT INTO users (login, email, password_hash) VALUES ($1, $1 || '@x.test', '!')"
            " RETURNING id",
            f"ws-{tag}",
        )
        await connection.execute("INSERT INTO memberships VALUES ($1, $2, 'ADMIN')", org, user)
        project = await connection.fetchval(
            "INSERT INTO projects (organization_id, key, name, visibility)"
            " VALUES ($1, 'WS', 'WebSocket', 'PUBLIC') RETURNING id",
            org,
        )
    finally:
        await database.release(connection)
    return {"user": user, "project_id": project, "project": encode_id("Project", project)}
