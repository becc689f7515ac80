"""Live issue events: from the outbox to every subscriber, on every server process.

A mutation writes its event to the `events` table and NOTIFYs in its own transaction, so
the announcement goes out exactly when the change commits, to every process LISTENing on
the database. Each process runs one `EventHub`: a dedicated LISTEN connection feeds a queue
that one worker drains in order; for an event of a project that someone here subscribes
to, it loads the event, the project and the subscribers' current roles (one statement,
whatever the number of subscribers) and gives the event to each subscriber the access
rules still let read it: a member removed from an organization stops receiving its
private events at once. When the LISTEN connection is lost the hub reconnects by itself
and tells every subscriber to resync (events may have been missed meanwhile).

A subscriber may resume after an event it saw (`resume`): the events after it are read
from the log (replayed) while live ones queue up in its inbox, then the inbox takes over,
skipping what the replay already gave. Events of a project are numbered in the order they
commit (loaders/writes/issues.py), so nothing falls between the two and nothing comes
twice.

The same channel announces ended sessions (`{"session": id}`, by a trigger, migration
0004): the hub calls what each WebSocket of that session registered (`watch_session`), in
the order the notes arrive, so a socket hears of its session's end before any event
committed after it. Whenever it (re)connects it asks the database which watched sessions
are still live, and holds events back until it knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from core.db import Database, Listener, Session
from core.errors import DatabaseError
from domain.policy import Access, Policy, Viewer
from loaders import Loaders, Scope, accounts
from loaders.events import EventRow, events_after, read_event, read_notification
from loaders.rows import NotificationRow, ProjectRow, UserRow
from loaders.writes.issues import EVENTS_CHANNEL

log = logging.getLogger(__name__)

INBOX_LIMIT = 1_000
REPLAY_BATCH = 100  # events read from the log per statement when resuming
HEALTH_CHECK_SECONDS = 5.0


class SharedReads:
    """The reads of one event, shared by every subscriber it goes to: subscribers with the
    same scope share loaders, so two hundred of them resolve `issue` in one statement, and
    all share one database session, released when the last of them is done with it.
    `results` keeps what is made of the event once for many subscribers (their payloads,
    execution/fanout.py), for as long."""

    closing: ClassVar[set[asyncio.Task[None]]] = set()  # keeps closing tasks alive

    def __init__(self, database: Database) -> None:
        self._database = database
        self._session: Session | None = None
        self._loaders: dict[Scope, Loaders] = {}
        self._holders = 0
        self.results: dict[Hashable, Any] = {}
        self._scopes: dict[Hashable, Scope] = {}

    def hold(self) -> None:
        self._holders += 1

    def loaders(self, scope: Scope) -> Loaders:
        if self._session is None:
            self._session = self._database.session()
        found = self._loaders.get(scope)
        if found is None:
            found = self._loaders[scope] = Loaders(self._session, scope, shared=True)
        return found

    def scope_of(self, viewer: Viewer, access: Access) -> Scope:
        """The viewer's scope, worked out once for all the subscribers of the event who
        are alike as far as it goes: the same user (or anonymous), site admin or not, and
        the same roles."""
        user = viewer.user
        key = (
            user.id if user is not None else None,
            user is not None and user.is_site_admin,
            tuple(sorted(viewer.roles.items())),
        )
        found = self._scopes.get(key)
        if found is None:
            found = self._scopes[key] = Policy(viewer, access).scope()
        return found

    def release(self) -> None:
        self._holders -= 1
        if self._holders <= 0 and self._session is not None:
            session, self._session = self._session, None
            self._loaders.clear()
            self.results.clear()
            task = asyncio.get_running_loop().create_task(session.close())
            SharedReads.closing.add(task)
            task.add_done_callback(SharedReads.closing.discard)


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event for one subscriber, with the subscriber's role in its organization now;
    `event` None means: events may have been lost, fetch what you show again."""

    event: EventRow | None
    organization_id: int | None = None
    role: str | None = None
    shared: SharedReads | None = None
    notification: NotificationRow | None = None  # for `notifications` inboxes

    def done(self) -> None:
        if self.shared is not None:
            self.shared.release()


@dataclass(eq=False)
class Inbox:
    """A subscriber's deliveries, in order: a queue with one reader, lighter than
    `asyncio.Queue` because an event is offered to every subscriber.

    Only events of `kinds` (all when None) after event `seen` are kept. A subscriber with a
    `sink` is handed its deliveries there, without waking its reader, whenever the reader
    waits with nothing queued: everything it took before has been sent by then, so the
    sink's deliveries come after it (the sink keeps its own in order)."""

    project_id: int
    viewer: Viewer
    issue_id: int | None = None
    kinds: frozenset[str] | None = None
    sink: Callable[[Delivery], None] | None = None
    seen: int = 0
    queue: deque[Delivery] = field(default_factory=deque)
    _waiter: asyncio.Future[None] | None = None
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)

    def offer(self, delivery: Delivery) -> None:
        if not self._wanted(delivery):
            delivery.done()
            return
        waiter = self._waiter
        if waiter is not None and self.sink is not None and not waiter.done():
            self.sink(delivery)
            return
        if len(self.queue) >= INBOX_LIMIT:  # a subscriber too slow to keep up resyncs instead
            self.drop()
            delivery.done()
            delivery = Delivery(None)
        self.queue.append(delivery)
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wanted(self, delivery: Delivery) -> bool:
        event = delivery.event
        return event is None or (
            event.id > self.seen and (self.kinds is None or event.kind in self.kinds)
        )

    def drop(self) -> None:
        while self.queue:
            self.queue.popleft().done()

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            while not self.queue:
                waiter = self._waiter = self._loop.create_future()
                try:
                    await waiter
                finally:
                    self._waiter = None
            delivery = self.queue.popleft()
            if self._wanted(delivery):  # (`seen` may have moved since it was queued)
                return delivery
            delivery.done()


class EventHub:
    def __init__(self, database: Database, access: Access) -> None:
        self._database = database
        self._access = access
        self._inboxes: dict[int, set[Inbox]] = defaultdict(set)
        self._notified: dict[int, set[Inbox]] = defaultdict(set)  # by user id
        self._pending: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._sessions: dict[int, set[Callable[[], None]]] = defaultdict(set)
        self._sessions_known = asyncio.Event()  # cleared while the listener is away
        self._sessions_known.set()
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever()),
            asyncio.create_task(self._deliver_forever()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        project_id: int,
        viewer: Viewer,
        issue_id: int | None = None,
        kinds: Sequence[str] | None = None,
        sink: Callable[[Delivery], None] | None = None,
    ) -> AsyncIterator[Inbox]:
        """The project's (or one issue's) live events of `kinds` (all when None); with a
        `sink`, handed there while the reader waits (see Inbox)."""
        chosen = frozenset(kinds) if kinds is not None else None
        inbox = Inbox(project_id, viewer, issue_id, chosen, sink)
        self._inboxes[project_id].add(inbox)
        try:
            yield inbox
        finally:
            inbox.drop()
            self._inboxes[project_id].discard(inbox)
            if not self._inboxes[project_id]:
                del self._inboxes[project_id]

    @contextlib.asynccontextmanager
    async def resume(
        self,
        project_id: int,
        viewer: Viewer,
        after: int,
        kinds: Sequence[str],
        issue_id: int | None = None,
        sink: Callable[[Delivery], None] | None = None,
    ) -> AsyncIterator[AsyncIterator[Delivery]]:
        """The events of the project (or of one issue) after event `after` of the kinds
        given, from the log, then live: see the module docstring."""
        async with self.subscribe(project_id, viewer, issue_id, kinds, sink) as inbox:
            yield self._resumed(inbox, after, kinds)

    async def _resumed(
        self, inbox: Inbox, after: int, kinds: Sequence[str]
    ) -> AsyncIterator[Delivery]:
        inbox.seen = after
        while True:
            found = await self._replay(inbox, inbox.seen, kinds)
            if found is None:
                break
            pending = list(reversed(found))
            try:
                while pending:
                    delivery = pending.pop()
                    assert delivery.event is not None
                    inbox.seen = delivery.event.id  # the inbox skips what the replay gave
                    yield delivery
            finally:  # a subscriber that leaves mid-batch releases the rest
                for delivery in pending:
                    delivery.done()
            if len(found) < REPLAY_BATCH:
                break
        async for delivery in inbox:
            yield delivery

    async def _replay(
        self, inbox: Inbox, after: int, kinds: Sequence[str]
    ) -> list[Delivery] | None:
        """A batch of the log after `after`, each checked against the subscriber's access
        now, as live events are; None when the subscriber may no longer read them."""
        viewer = inbox.viewer
        users = [viewer.user.id] if viewer.user is not None else []
        session = self._database.session()
        try:
            found = await events_after(
                session, inbox.project_id, after, inbox.issue_id, kinds, REPLAY_BATCH, users
            )
        finally:
            await session.close()
        if found is None:
            return None
        events, project, now = found
        current = _current(viewer, now, project.organization_id)
        if current is None or not Policy(current, self._access).can_read(project):
            return None
        role = current.roles.get(project.organization_id)
        # one session for the batch, released once its last event is resolved: a replaying
        # subscriber holds no connection after it, as live ones hold none between events
        shared = SharedReads(self._database)
        for _ in events:
            shared.hold()
        return [Delivery(event, project.organization_id, role, shared) for event in events]

    @contextlib.asynccontextmanager
    async def notifications(self, viewer: Viewer) -> AsyncIterator[Inbox]:
        """The signed-in viewer's new notifications, each delivered only while the viewer
        may read its issue."""
        assert viewer.user is not None
        user_id = viewer.user.id
        inbox = Inbox(0, viewer)
        self._notified[user_id].add(inbox)
        try:
            yield inbox
        finally:
            inbox.drop()
            self._notified[user_id].discard(inbox)
            if not self._notified[user_id]:
                del self._notified[user_id]

    @contextlib.contextmanager
    def watch_session(self, session_id: int, ended: Callable[[], None]) -> Iterator[None]:
        """Call `ended()` (once, synchronously) when the session ends, while in this block."""
        self._sessions[session_id].add(ended)
        try:
            yield
        finally:
            watchers = self._sessions.get(session_id)
            if watchers is not None:
                watchers.discard(ended)
                if not watchers:
                    del self._sessions[session_id]

    def _session_ended(self, session_id: int) -> None:
        for ended in list(self._sessions.pop(session_id, ())):
            try:
                ended()
            except Exception:  # one watcher's failure must not spare the others
                log.exception("could not end a connection of session %s", session_id)

    async def _recheck_sessions(self) -> None:
        """On (re)connecting: end the watched sessions that ended while no one listened."""
        watched = list(self._sessions)
        if watched:
            session = self._database.session()
            try:
                live = await accounts.live_sessions(session, watched)
            except DatabaseError:
                log.warning("could not recheck %d sessions after reconnecting", len(watched))
                return
            finally:
                await session.close()
            for session_id in watched:
                if session_id not in live:
                    self._session_ended(session_id)

    async def _listen_forever(self) -> None:
        delay = 0.1
        lost_before = False
        while True:
            try:
                listener = await self._database.listen(EVENTS_CHANNEL, self._on_notify)
            except (TimeoutError, OSError, DatabaseError, Exception) as exc:
                log.warning("event listener cannot connect (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            self.connected.set()
            if lost_before:
                self._broadcast_resync()
            try:
                # sessions watched while no one listened (before the first connection, too)
                await self._recheck_sessions()
                self._sessions_known.set()
                await self._watch(listener)
            finally:
                self.connected.clear()
                self._sessions_known.clear()
                await listener.close()
            log.warning("event listener lost its connection; reconnecting")
            lost_before = True

    async def _watch(self, listener: Listener) -> None:
        while not listener.lost.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(listener.lost.wait(), HEALTH_CHECK_SECONDS)
            if not listener.lost.is_set():
                await listener.check()

    def _on_notify(self, payload: str) -> None:
        try:
            note = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        session_id = note.get("session")
        if session_id is not None:
            self._session_ended(int(session_id))
        elif note.get("project") in self._inboxes or note.get("user") in self._notified:
            self._pending.put_nowait(note)

    def _broadcast_resync(self) -> None:
        for inboxes in [*self._inboxes.values(), *self._notified.values()]:
            for inbox in inboxes:
                inbox.offer(Delivery(None))

    async def _deliver_forever(self) -> None:
        while True:
            note = await self._pending.get()
            await self._sessions_known.wait()  # no event to a session that may have ended
            try:
                if "notification" in note:
                    await self._deliver_notification(int(note["notification"]), int(note["user"]))
                else:
                    await self._deliver(int(note["id"]), int(note["project"]))
            except Exception:  # one bad event must not stop the stream for everyone
                log.exception("could not deliver %s", note)

    async def _deliver_notification(self, notification_id: int, user_id: int) -> None:
        inboxes = list(self._notified.get(user_id, ()))
        if not inboxes:
            return
        session = self._database.session()
        try:
            found = await read_notification(session, notification_id)
        finally:
            await session.close()
        if found is None:
            return
        notification, project, user, role = found
        viewer = Viewer(user, {project.organization_id: role} if role else {})
        if not Policy(viewer, self._access).can_read(project):
            return
        shared = SharedReads(self._database)
        for inbox in inboxes:
            shared.hold()
            inbox.offer(
                Delivery(None, project.organization_id, role, shared, notification=notification)
            )

    async def _deliver(self, event_id: int, project_id: int) -> None:
        inboxes = list(self._inboxes.get(project_id, ()))
        if not inboxes:
            return
        users = sorted({i.viewer.user.id for i in inboxes if i.viewer.user is not None})
        session = self._database.session()
        try:
            found = await read_event(session, event_id, project_id, users)
        finally:
            await session.close()
        if found is None:
            return
        event, project, now = found
        shared = SharedReads(self._database)
        # each subscriber's access as the database says now, decided once per user; the
        # subscribers of one user are handed the same Delivery (each hold is released by
        # one `done`)
        decided: dict[int | None, Delivery | None] = {}
        for inbox in inboxes:
            if inbox.issue_id is not None and inbox.issue_id != event.issue_id:
                continue
            user = inbox.viewer.user
            user_id = user.id if user is not None else None
            if user_id in decided:
                delivery = decided[user_id]
            else:
                viewer = self._reader(inbox.viewer, now, project)
                delivery = decided[user_id] = (
                    None
                    if viewer is None
                    else Delivery(
                        event,
                        project.organization_id,
                        viewer.roles.get(project.organization_id),
                        shared,
                    )
                )
            if delivery is None:
                continue
            shared.hold()
            inbox.offer(delivery)

    def _reader(
        self, viewer: Viewer, now: dict[int, tuple[UserRow, str | None]], project: ProjectRow
    ) -> Viewer | None:
        """The subscriber as the database says now, if they may read the project."""
        current = _current(viewer, now, project.organization_id)
        if current is None or not Policy(current, self._access).can_read(project):
            return None
        return current


def _current(
    viewer: Viewer, now: dict[int, tuple[UserRow, str | None]], organization_id: int
) -> Viewer | None:
    """The subscriber as the database says now; None if the account is gone."""
    if viewer.user is None:
        return viewer
    found = now.get(viewer.user.id)
    if found is None:
        return None
    user, role = found
    return Viewer(user, {organization_id: role} if role else {})
