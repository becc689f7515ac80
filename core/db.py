"""The only module that talks to asyncpg.

`Database` owns the pool for the life of the process. Each request gets a `Session`: it
acquires one pooled connection on its first statement and keeps it until the request ends
(once per request rather than once per statement), serialises the statements of concurrent
loaders on that connection, and counts them.

A connection goes back to the pool without asyncpg's reset query (`RESET ALL`, `UNLISTEN *`
…), which would cost a round trip per request: no request leaves session state behind (no
`SET` outside a transaction, no `LISTEN`, no advisory lock, no cursor), and asyncpg still
rolls back a transaction left open. A pooled connection whose backend died while it sat idle
is found by its first statement, which fails as a lost connection *before* anything ran:
reads run again on a new connection (the pipeline retries them), and so does a `BEGIN`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from core.errors import BadUserInput, DatabaseError, QueryTimeout, TransientError, Unavailable
from core.observability import sql_span

log = logging.getLogger(__name__)

Record = asyncpg.Record


class Breaker:
    """A circuit breaker on the database: after `failures` connection failures in a row it
    opens, and requests fail at once with UNAVAILABLE instead of queueing on a dead server;
    `reset` seconds later one request may try again (half-open), and a success closes it.
    Written here because it must count only connection failures, seen in this module."""

    def __init__(self, failures: int = 3, reset: float = 2.0) -> None:
        self._threshold = failures
        self._reset = reset
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None and time.monotonic() - self._opened_at < self._reset

    def before(self) -> None:
        if self.is_open:
            raise Unavailable("The database is unavailable; retry in a few seconds.")

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None

    def failure(self) -> None:
        self._failures += 1
        if self._failures >= self._threshold:
            self._opened_at = time.monotonic()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset: nothing beyond the rollback asyncpg does itself (module docstring)."""


async def _timestamps_as_text(connection: asyncpg.Connection) -> None:
    """Read timestamptz values as text, parsed by `datetime.fromisoformat`: about a third
    of the CPU of asyncpg's binary decoding, which builds a timedelta per value (a page of
    comments holds thousands). The session's time zone is UTC, so every value arrives in
    UTC, as the binary decoding gave it. (Setting the codec looks the type up: exempt from
    the pool's statement timeout, however short.)"""
    async with connection.transaction():
        await connection.execute("SET LOCAL statement_timeout = 0")
        await connection.set_type_codec(
            "timestamptz",
            schema="pg_catalog",
            encoder=datetime.isoformat,
            decoder=datetime.fromisoformat,
            format="text",
        )


class Database:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        acquire_timeout: float,
        url: str = "",
        breaker: Breaker | None = None,
    ) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self.url = url
        self.breaker = breaker or Breaker()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        acquire_timeout: float = 5.0,
        command_timeout: float = 10.0,
        statement_timeout_ms: int | None = None,
        breaker: Breaker | None = None,
    ) -> Database:
        settings = {"timezone": "UTC"}
        if statement_timeout_ms:
            settings["statement_timeout"] = str(statement_timeout_ms)
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            server_settings=settings,
            init=_timestamps_as_text,
            reset=_keep_session,
        )
        return cls(pool, acquire_timeout=acquire_timeout, url=url, breaker=breaker)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def listen(self, channel: str, on_message: Callable[[str], None]) -> Listener:
        """A dedicated connection (not from the pool) LISTENing on `channel`."""
        connection = await asyncpg.connect(
            self.url, timeout=5, server_settings={"application_name": "issuegraph-listener"}
        )
        try:
            listener = Listener(connection)
            await connection.add_listener(
                channel, lambda _c, _pid, _ch, payload: on_message(payload)
            )
        except BaseException:  # cancelled or failed half-way: never leak the connection
            connection.terminate()
            raise
        return listener

    def session(self) -> Session:
        return Session(self)

    async def acquire(self) -> asyncpg.Connection:
        self.breaker.before()
        try:
            connection = await self._pool.acquire(timeout=self._acquire_timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if not self._exhausted():  # a busy pool is not a failing database
                self.breaker.failure()
            raise Unavailable("The database is unavailable; retry in a few seconds.") from exc
        return connection  # type: ignore[return-value]  # a pool proxy acts as a Connection

    def _exhausted(self) -> bool:
        pool = self._pool
        return pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size()

    async def ping(self, timeout: float = 1.0) -> bool:
        """Is the database reachable now? (For /readyz; fails fast while it is down.)"""
        try:
            connection = await self.acquire()
        except Unavailable:
            return False
        try:
            await connection.fetchval("SELECT 1", timeout=timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self.breaker.failure()
            return False
        finally:
            await self._release_quietly(connection)
        self.breaker.success()
        return True

    async def _release_quietly(self, connection: asyncpg.Connection) -> None:
        try:
            await self._pool.release(connection, timeout=2)  # type: ignore[arg-type]
        except Exception:
            # asyncpg raises several kinds here (InternalClientError too, when the backend
            # died mid-reset), and none may fail the request. The pool may have taken the
            # connection back before failing: then there is nothing to end.
            with contextlib.suppress(Exception):
                connection.terminate()

    async def release(self, connection: asyncpg.Connection) -> None:
        await self._release_quietly(connection)

    async def close(self) -> None:
        await self._pool.close()


class Listener:
    """A LISTENing connection; `lost` is set when it closes or stops answering."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self.lost = asyncio.Event()
        connection.add_termination_listener(lambda _c: self.lost.set())

    async def check(self, timeout: float = 5.0) -> bool:
        """Ping the connection; a silent network failure shows up here."""
        try:
            await self._connection.fetchval("SELECT 1", timeout=timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self.lost.set()
        return not self.lost.is_set()

    async def close(self) -> None:
        if not self._connection.is_closed():
            try:
                await asyncio.wait_for(self._connection.close(), 2)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                self._connection.terminate()


class UniqueViolation(DatabaseError):
    """A unique constraint refused a row; `constraint` names it."""

    def __init__(self, message: str, constraint: str | None) -> None:
        super().__init__(message)
        self.constraint = constraint


# Everything asyncpg raises for a statement; turned into the project's errors.
DRIVER_ERRORS = (
    TimeoutError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # protocol state broken by a connection lost mid-statement
)
LOST = (
    asyncpg.InternalClientError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.ConnectionDoesNotExistError,
)


def _statement_name(sql: str) -> str:
    """A short name for a span: the statement's verb and its first table."""
    words = sql.split()
    table = words[words.index("FROM") + 1] if "FROM" in words else ""
    return f"{words[0]} {table}".strip() if words else "SQL"


def _database_error(exc: BaseException) -> Exception:
    if isinstance(
        exc, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
    ):
        return BadUserInput("Text may not contain NUL (U+0000) characters.")
    if isinstance(exc, asyncpg.UniqueViolationError):
        return UniqueViolation(str(exc), exc.constraint_name)
    if isinstance(exc, asyncpg.QueryCanceledError | asyncio.TimeoutError):
        return QueryTimeout("A statement ran past its time limit.")
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return TransientError(str(exc), ambiguous=False)
    if isinstance(exc, LOST):
        return TransientError(f"The database connection was lost: {exc}", ambiguous=True)
    return DatabaseError(str(exc))


class Session:
    """One request's database access; see the module docstring."""

    def __init__(
        self, database: Database | None = None, *, connection: asyncpg.Connection | None = None
    ) -> None:
        self._database = database
        self._connection = connection
        self._owns_connection = connection is None
        self._lock = asyncio.Lock()
        self._closed = False
        self.statements = 0

    @classmethod
    def on_connection(cls, connection: asyncpg.Connection) -> Session:
        """A session on a connection the caller owns (tests run inside their transaction)."""
        return cls(connection=connection)

    async def fetch(self, sql: str, *args: Any) -> list[Record]:
        async with self._lock:
            connection = await self._connect()
            self.statements += 1
            try:
                with sql_span(_statement_name(sql)):
                    rows = list(await connection.fetch(sql, *args))
            except DRIVER_ERRORS as exc:
                raise self._failed(exc) from exc
            if self._database is not None:
                self._database.breaker.success()
            return rows

    async def fetchrow(self, sql: str, *args: Any) -> Record | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return row[0] if row is not None else None

    async def execute(self, sql: str, *args: Any) -> str:
        async with self._lock:
            connection = await self._connect()
            self.statements += 1
            try:
                return str(await connection.execute(sql, *args))
            except DRIVER_ERRORS as exc:
                raise self._failed(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One transaction (a savepoint when one is already open): all or nothing."""
        async with self._lock:
            connection = await self._connect()
            transaction = connection.transaction()
            try:
                await self._driver(transaction.start)
            except TransientError as error:
                # nothing ran yet: a connection lost on BEGIN hides no commit
                raise TransientError(str(error), ambiguous=False) from error
        try:
            yield
        except asyncio.CancelledError:
            # a deadline: waiting for a rollback could take as long as the database likes
            # (a partition: DB_COMMAND_TIMEOUT). Ending the connection rolls it back too.
            self._terminate()
            raise
        except BaseException:
            async with self._lock:
                with contextlib.suppress(DatabaseError):  # the first error is the one to tell
                    await self._driver(transaction.rollback)
            raise
        else:
            async with self._lock:
                await self._driver(transaction.commit)

    async def _driver(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        try:  # asyncpg may raise before it even returns the awaitable
            return await operation()
        except DRIVER_ERRORS as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: BaseException) -> Exception:
        error = _database_error(exc)
        if isinstance(error, TransientError) and error.ambiguous and self._database:
            self._database.breaker.failure()
        return error

    async def _connect(self) -> asyncpg.Connection:
        if self._closed:
            raise DatabaseError("The request is over: its database session is closed.")
        if self._connection is None:
            assert self._database is not None
            self._connection = await self._database.acquire()
        return self._connection

    async def abort(self) -> None:
        """End the session at once, its connection with it, whatever runs on it: for a
        request past its deadline, which must not wait for the database to answer."""
        self._terminate()
        await self.close()

    def _terminate(self) -> None:
        self._closed = True
        if self._owns_connection and self._connection is not None:
            connection, self._connection = self._connection, None
            # asyncpg gives a terminated connection's place in the pool back at once; once
            # given back, its proxy refuses every call (so this runs once)
            with contextlib.suppress(asyncpg.InterfaceError):
                connection.terminate()

    async def close(self) -> None:
        """Wait for a statement still running (graphql-core may answer before every field
        of an object nulled by an error has finished), then give the connection back; any
        later statement of this session is refused rather than taking a new connection."""
        async with self._lock:
            self._closed = True
            if self._owns_connection and self._connection is not None:
                assert self._database is not None
                connection, self._connection = self._connection, None
                await self._database.release(connection)
