"""The three shapes of DataLoader every entity uses: rows by key, pages by parent, counts.

Each loader batches the keys of one event-loop tick into one statement (pages and counts:
one per distinct request) and answers in key order; a missing key answers None. `loop`, the
request's event loop, spares each loader aiodataloader's own lookup of it (on CPython 3.11
a getpid() system call each).

Loaders may be `shared` by several tasks (the subscribers an event goes to, see
domain/events.py; the fields graphql-core resolves, see execution/documents.py): then each
caller awaits a future of its own (`own`: a shield of the loader's), since a task cancelled
while awaiting a future cancels that future, which would fail every other task waiting on
it (a subscriber that disconnects mid-event would end the others'; a field graphql-core
gives up on would fail every other field awaiting the same row with a CancelledError, and
every later load of it, the cancelled future staying cached).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from functools import partial
from operator import attrgetter
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader, failed_dispatch

from core import observability
from core.db import Session
from loaders._keyset import (
    ALL_COLUMNS,
    Page,
    PageRequest,
    PageSpec,
    Params,
    Scope,
    load_counts,
    load_pages,
    load_request,
)
from loaders.rows import Columns, Projection

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

by_id = attrgetter("id")  # the key of a row by id


def own(loop: asyncio.AbstractEventLoop, found: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """A future of the caller's own that settles as `found` does: the caller's task
    cancelled, it is cancelled, and `found` goes on for the others. (`asyncio.shield`, with
    one callback where it adds two, and none for a future already done.)"""
    if found.done():
        return found
    mine = loop.create_future()
    found.add_done_callback(partial(_settle, mine))
    return mine


def _settle(mine: asyncio.Future[Any], found: asyncio.Future[Any]) -> None:
    if found.cancelled():
        if not mine.done():
            mine.cancel()
        return
    error = found.exception()  # (retrieved even for a cancelled caller: no warning)
    if mine.done():
        return
    if error is not None:
        mine.set_exception(error)
    else:
        mine.set_result(found.result())


class _Shareable:
    """`load` for loaders that several tasks may share (see the module docstring)."""

    shared = False
    loop: asyncio.AbstractEventLoop  # DataLoader's

    def load(self, key: Any) -> Any:
        found = super().load(key)  # type: ignore[misc]  # DataLoader's, in the subclasses
        return own(self.loop, found) if self.shared else found


class RowLoader(DataLoader[K, R | None], Generic[K, R]):
    """Rows by a key; `arguments` turns the batch of keys into the statement's parameters.

    `rows` makes a row of a record: a table's `Columns`, whose select list (as the
    request's `projection` has it) replaces `{columns}` in `sql`, or a function."""

    def __init__(
        self,
        session: Session,
        sql: str,
        rows: Columns[R] | Callable[[Any], R],  # of a record
        key_of: Callable[[R], K],
        arguments: Callable[[Sequence[K]], Sequence[Any]] = lambda keys: (list(keys),),
        scope: Scope | None = None,
        projection: Projection = ALL_COLUMNS,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(loop=loop)
        self._session = session
        self._sql = sql
        self.columns = rows if isinstance(rows, Columns) else None
        self._make_row = rows.make if isinstance(rows, Columns) else rows
        self._projection = projection
        # by select list and joins: the statement, and what makes a row of its records
        self._statements: dict[str, tuple[str, Callable[[Any], R]]] = {}
        self._key_of = key_of
        self._arguments = arguments
        self._scope = scope
        self._label = sql.split("FROM", 1)[-1].split()[0]  # the table, for metrics
        self.shared = False  # awaited by several tasks (see the module docstring)
        # Rows already read (by page loaders too), by key: a plain dict rather than
        # aiodataloader's `prime`, which builds a future per row.
        self.known: dict[K, R] = {}
        self._absent: set[K] = set()
        self._pending: tuple[set[K], asyncio.Future[None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def load(self, key: K) -> Any:
        row = self.known.get(key)
        if row is None:
            found = super().load(key)
            return own(self.loop, found) if self.shared else found
        future = self.loop.create_future()
        future.set_result(row)
        return future

    def clear_all(self) -> Any:
        self.known.clear()
        self._absent.clear()
        return super().clear_all()

    async def load_all(self, keys: Collection[K]) -> list[R | None]:
        """Rows for many keys with one future per call rather than per key: the keys of
        every call in the same event-loop tick are fetched together, in one statement (as
        `load` does, key by key, and with the keys `load` is asked meanwhile), and kept in
        `known` for the rest of the request."""
        known = self.known
        missing = [k for k in keys if k not in known and k not in self._absent]
        if missing:
            if self._pending is None:
                self._pending = (set(), self.loop.create_future())
                self.loop.call_soon(self._dispatch_soon)
            wanted, done = self._pending
            wanted.update(missing)
            await (own(self.loop, done) if self.shared else done)
        return [known.get(k) for k in keys]

    # `load` (aiodataloader's queue) and `load_all` (`_pending`) batch apart, over the same
    # ticks, but whichever reads first also reads the keys the other waits for: the same rows
    # asked both ways (a field's to-one rows by `load_all`, a permission's by `load` in tasks
    # of its own, a tick later) cost one statement, as they do when only `load` asks.

    def _dispatch_soon(self) -> None:
        """A tick later, as aiodataloader's dispatch (its call_soon, then its task)."""
        self.loop.call_soon(self._dispatch_pending)

    def _dispatch_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:  # `load`'s batch read its keys (batch_load_fn)
            return
        queue, self._queue = self._queue, []  # aiodataloader's dispatch finds it empty
        task = self.loop.create_task(self._fetch_pending(pending, queue))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_pending(
        self, pending: tuple[set[K], asyncio.Future[None]], queue: list[Any]
    ) -> None:
        wanted, done = pending
        try:
            found = await self._read(
                list(dict.fromkeys([*wanted, *(entry.key for entry in queue)]))
                if queue
                else list(wanted)
            )
        except Exception as error:
            if not done.done():
                done.set_exception(error)
            failed_dispatch(self, queue, error)
            return
        self._keep(pending, found)
        for entry in queue:
            if not entry.future.done():
                entry.future.set_result(found.get(entry.key))

    async def batch_load_fn(self, keys: Sequence[K]) -> list[R | None]:
        """`load`'s batch (aiodataloader's), with the keys `load_all` waits for."""
        pending, self._pending = self._pending, None
        if pending is None and not keys:  # `load_all`'s batch read the queue's keys
            return []
        try:
            found = await self._read(
                list(dict.fromkeys([*keys, *pending[0]])) if pending is not None else keys
            )
        except Exception as error:
            if pending is not None and not pending[1].done():
                pending[1].set_exception(error)
            raise
        if pending is not None:
            self._keep(pending, found)
        return [found.get(key) for key in keys]

    def _keep(self, pending: tuple[set[K], asyncio.Future[None]], found: dict[K, R]) -> None:
        """Keep the rows `load_all` waits for, and let it go on."""
        wanted, done = pending
        for key in wanted:
            row = found.get(key)
            if row is None:
                self._absent.add(key)
            else:
                self.known[key] = row
        if not done.done():
            done.set_result(None)

    async def _read(self, keys: Sequence[K]) -> dict[K, R]:
        """The rows of these keys (each once), by key: one statement."""
        observability.record_batch(self._label, len(keys))
        params = Params(*self._arguments(keys))
        if self._scope is not None:
            params.values += self._scope.arguments()
        found: dict[K, R] = {}
        key_of = self._key_of
        sql, make_row = self._statement(params)
        for record in await self._session.fetch(sql, *params.values):
            row = make_row(record)
            found[key_of(row)] = row
        return found

    def _statement(self, params: Params) -> tuple[str, Callable[[Any], R]]:
        """The statement as the request's projection has it (the objects it writes with
        lists inside add their parameters to `params`), and what makes its rows."""
        if self.columns is None:
            return self._sql, self._make_row
        projection = self._projection
        select = projection.select(self.columns, params)
        joins = projection.joined(self.columns)
        found = self._statements.get(select + joins)
        if found is None:
            sql = self._sql.replace("{columns}", select).replace("{joins}", joins)
            found = (sql, projection.reader(self.columns) or self._make_row)
            self._statements[select + joins] = found
        return found

    @property
    def joinable(self) -> bool:
        """Whether statements of other tables may read this loader's rows for it: it reads
        whole rows by id, whatever the request may see (see loaders/rows.py, `Join`)."""
        return self.columns is not None and self._scope is None and self._key_of is by_id


class PageLoader(_Shareable, DataLoader[tuple[int, PageRequest], Page[R]], Generic[R]):
    """Pages of children keyed by (parent id, page request). The rows of each page also
    prime a by-id loader (`primes`, with `unwrap` to get the row it holds), so that a later
    lookup of the same object by id costs no statement."""

    def __init__(
        self,
        session: Session,
        spec: PageSpec[R],
        scope: Scope,
        primes: RowLoader[int, Any] | None = None,
        unwrap: Callable[[R], Any] | None = None,  # the primed row a page row holds
        projection: Projection = ALL_COLUMNS,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(loop=loop)
        self._session = session
        self._spec = spec
        self._scope = scope
        self._projection = projection
        self._batch_label = f"pages:{spec.source.split()[0]}"
        self._primes = primes
        self._unwrap = unwrap
        self.known_pages: dict[PageRequest, dict[int, Page[R]]] = {}

    @property
    def spec(self) -> PageSpec[R]:
        """How it pages its rows."""
        return self._spec

    async def load_all(self, parents: Sequence[int], request: PageRequest) -> list[Page[R]]:
        """Pages for a whole level at once, in one statement, without a future per key (the
        compiled executor asks for all of a level's pages of one field together)."""
        known = self.known_pages.get(request)
        if known is None:
            known = self.known_pages[request] = {}
        missing = [p for p in dict.fromkeys(parents) if p not in known]
        if missing:
            observability.record_batch(self._batch_label, len(missing))
            pages = await load_request(
                self._session, self._spec, self._scope, request, missing, self._projection
            )
            self._prime(pages.values())
            known.update(pages)
        return [known[p] for p in parents]

    def clear_all(self) -> Any:
        self.known_pages.clear()
        return super().clear_all()

    async def batch_load_fn(self, keys: Sequence[tuple[int, PageRequest]]) -> list[Page[R]]:
        observability.record_batch(self._batch_label, len(keys))
        pages = await load_pages(self._session, self._spec, self._scope, keys, self._projection)
        self._prime(pages)
        return pages

    def _prime(self, pages: Iterable[Page[R]]) -> None:
        """Let the by-id loader answer for the rows of these pages without a statement."""
        if self._primes is None:
            return
        known, unwrap = self._primes.known, self._unwrap
        rows: Iterable[Any] = [row for page in pages for row in page.rows]
        if unwrap is not None:
            rows = map(unwrap, rows)
        fresh = {row.id: row for row in rows}
        fresh.update(known)  # a row read before stays the one known
        known.update(fresh)


class CountLoader(_Shareable, DataLoader[tuple[int, Hashable], int]):
    """Total children keyed by (parent id, filters)."""

    def __init__(
        self,
        session: Session,
        spec: PageSpec[Any],
        scope: Scope,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(loop=loop)
        self._session = session
        self._spec = spec
        self._scope = scope

    async def batch_load_fn(self, keys: Sequence[tuple[int, Hashable]]) -> list[int]:
        return await load_counts(self._session, self._spec, self._scope, keys)
