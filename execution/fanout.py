"""A subscription event executed and encoded once for every subscriber who gets the same.

An event goes to many subscribers (domain/events.py decides, subscriber by subscriber,
who may read it). Two of them get the same payload when they sent the same document and
operation, with the same values of the variables that the selection under the root field
reads (the root field's own arguments chose the stream, not what an event shows), and read
through the same loaders' scope; and, when the selection reads a field whose value may
depend on who the viewer is (`by_viewer`, execution/fields.py: viewerCan*, email,
viewerSubscription …), are the same viewer (user, roles and session). Such subscribers
form a group (`Sharing.key`): the event is executed for the first of them, its body
encoded once (`Payload`), and the others are handed the same `Payload`.

The source a subscription resolver yields offers the sharing: `shared`, a mapping kept for
the event's delivery (SharedReads.results), and `shared_key`, the event's identity within
it. A source whose `shared` is None (RESYNC) is executed for its subscriber alone.

An event reaches a subscriber one of two ways, the same groups either way:
- through its task: the hub's delivery wakes the subscription's resolver, whose source
  event `payloads` turns into the group's payload, which the transport sends;
- without it (`Live`), once the subscriber waits for its next event with nothing queued
  and its transport can write a frame at once (server/websocket.py): the hub hands the
  delivery to the subscriber's group, and the group writes its payload to each of its
  subscribers when made. An event to two hundred subscribers then wakes no task of
  theirs; each costs a dictionary lookup and a frame written to its socket.

    sharing(schema, document, operation, variables)   what a subscriber shares with others
    payloads(executor, sources, sharing)               its stream of Payloads
    Live(executor, sharing, context)                   its events written without its task
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    execute_subscription_event,
    visit,
)
from graphql.execution import Executor as GraphQLExecutor

from core import encoding
from core.errors import ClientError, ServerError
from domain.events import INBOX_LIMIT, Delivery
from domain.policy import Viewer
from execution.documents import error_entries, response_body
from execution.fields import by_viewer, need_of

log = logging.getLogger(__name__)


class Payload:
    """A `next` message's payload: the response body, and its JSON, made once for all the
    subscribers it goes to."""

    __slots__ = ("_json", "body")

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self._json: bytes | None = None

    def json(self) -> bytes:
        """The body as JSON (UTF-8)."""
        if self._json is None:
            self._json = encoding.dumps(self.body)
        return self._json


@dataclass(frozen=True, slots=True)
class Sharing:
    """What a subscriber must have in common with another to get the same payloads:
    `selection` (the document, the operation and the variables its selection reads), and,
    when `by_viewer`, being the same viewer."""

    selection: Hashable
    by_viewer: bool

    def key(self, scope: Hashable, viewer: Viewer) -> Hashable:
        """The group of a subscriber who reads through loaders of `scope`, for the event
        now."""
        if not self.by_viewer:
            return (self.selection, scope)
        user_id = viewer.user.id if viewer.user is not None else None
        roles = tuple(sorted(viewer.roles.items()))
        return (self.selection, scope, user_id, viewer.session_id, roles)


def sharing(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: dict[str, Any] | None,
) -> Sharing:
    fragments = [d for d in document.definitions if isinstance(d, FragmentDefinitionNode)]
    read = _variables_read(operation, fragments)
    given = variables or {}
    values = tuple(
        (name, orjson.dumps(given[name], option=orjson.OPT_SORT_KEYS))
        for name in sorted(read)
        if name in given
    )
    # the document object itself: every subscriber of one text shares the cached one, and
    # it lives as long as any subscription to it, so its id names it while it matters
    selection = (id(document), operation.name.value if operation.name else None, values)
    return Sharing(selection, _reads_viewer(schema, operation, fragments))


class _Variables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


def _variables_read(
    operation: OperationDefinitionNode, fragments: list[FragmentDefinitionNode]
) -> set[str]:
    """The variables the operation reads, except those only its root fields' arguments
    read (every fragment counted, used or not)."""
    collector = _Variables()
    nodes: list[Node] = [*fragments]
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            nodes += selection.directives or ()
            if selection.selection_set is not None:
                nodes.append(selection.selection_set)
        else:
            nodes.append(selection)
    for node in nodes:
        visit(node, collector)
    return collector.names


class _ViewerFields(Visitor):
    def __init__(self, schema: GraphQLSchema, types: TypeInfo) -> None:
        super().__init__()
        self.root = schema.subscription_type
        self.types = types
        self.found = False

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.name.value.startswith("__") or self.types.get_parent_type() is self.root:
            return
        definition = self.types.get_field_def()
        if definition is None or by_viewer(need_of(definition)):
            self.found = True


def _reads_viewer(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: list[FragmentDefinitionNode],
) -> bool:
    """Whether the operation (or any fragment of its document) selects a field whose value
    may depend on who the viewer is."""
    for node in (operation, *fragments):
        types = TypeInfo(schema)
        fields = _ViewerFields(schema, types)
        visit(node, TypeInfoVisitor(types, fields))
        if fields.found:
            return True
    return False


async def payloads(
    executor: GraphQLExecutor[Any], sources: AsyncIterable[Any], sharing: Sharing
) -> AsyncGenerator[Payload, None]:
    """The payload of each source event, shared with the subscriber's group."""
    async with contextlib.aclosing(sources) as events:  # type: ignore[type-var]
        async for source in events:
            yield await _payload(executor, source, sharing)


def failed(error: Exception) -> Payload:
    """The last payload of a stream that failed: its errors, without `data`."""
    if not isinstance(error, ClientError | ServerError):  # raised by the resolver: a hidden project
        log.error("subscription failed", exc_info=error)
        error = ServerError(str(error))
    return Payload({"errors": error_entries(error)})


class _Group:
    """The payload of one event for one group: made (in a task of its own) for the first
    of its subscribers to come. A subscriber's task waits for it on a future of its own,
    so that one who leaves (its future cancelled) cancels nothing the others wait for;
    a subscriber delivered without its task (`Live`) is handed it when it is made."""

    __slots__ = ("done", "error", "loop", "making", "members", "payload", "waiters")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.done = False
        self.payload: Payload | None = None
        self.error: BaseException | None = None
        self.waiters: list[asyncio.Future[Payload]] = []
        self.members: list[Live] = []
        self.making: asyncio.Future[None] | None = None  # kept alive until made

    def start(self, making: Coroutine[Any, Any, Payload]) -> None:
        self.making = asyncio.ensure_future(self._make(making))

    async def _make(self, making: Coroutine[Any, Any, Payload]) -> None:
        try:
            self.payload = await making
        except BaseException as error:  # each waiter raises it
            self.error = error
        self.done = True
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if self.error is None:
                waiter.set_result(self.payload)  # type: ignore[arg-type]
            elif isinstance(self.error, asyncio.CancelledError):
                waiter.cancel()
            else:
                waiter.set_exception(self.error)
        members, self.members = self.members, []
        for member in members:
            member.flush()

    def result(self) -> Payload:
        if self.error is not None:
            raise self.error
        assert self.payload is not None
        return self.payload


async def _payload(executor: GraphQLExecutor[Any], source: Any, sharing: Sharing) -> Payload:
    results: dict[Hashable, _Group] | None = getattr(source, "shared", None)
    if results is None:
        return await _execute(executor, source)
    context = executor.context_value
    key = (source.shared_key, sharing.key(context.loaders.scope, context.viewer))
    group = results.get(key)
    if group is None:
        group = results[key] = _Group()
        group.start(_execute(executor, source))
    elif group.done:
        return group.result()
    waiter: asyncio.Future[Payload] = group.loop.create_future()
    group.waiters.append(waiter)
    return await waiter


async def _execute(executor: GraphQLExecutor[Any], source: Any, context: Any = None) -> Payload:
    """The subscription's selection executed on `source`, in `context` when given (else
    the subscription's own)."""
    per_event = executor.build_per_event_executor(source)
    if context is not None:
        per_event.context_value = context
    result: Any = execute_subscription_event(per_event)
    if per_event.is_awaitable(result):
        result = await result
    assert isinstance(result, ExecutionResult)
    return Payload(response_body(result))


class Live:
    """A subscription whose events are written without waking its task.

    Its transport `attach`es how to write a payload now (`write`: False when it cannot,
    say the socket is backed up), how to send one later (`send`: False when the stream
    ends there) and how to `end` the subscription. The hub then hands each event to the
    subscriber's `sink` (domain/events.py, Inbox): the event joins the group of
    subscribers who get the same payload (made once, by the first of them, with a
    context of its own), and is written when made, in the order the events came: each
    waits in `pending` for the events before it. What cannot be written at once waits in
    a backlog sent in order by a task of its own; a backlog of INBOX_LIMIT payloads is
    dropped for a RESYNC, as a slow subscriber's inbox is."""

    __slots__ = (
        "_backlog",
        "_draining",
        "_end",
        "_send",
        "_source_of",
        "_write",
        "closed",
        "context",
        "executor",
        "pending",
        "sharing",
    )

    def __init__(self, executor: GraphQLExecutor[Any], sharing: Sharing, context: Any) -> None:
        self.executor = executor
        self.sharing = sharing
        self.context = context
        self.pending: deque[tuple[_Group, Delivery]] = deque()
        self.closed = False
        self._backlog: deque[Payload] = deque()
        self._draining: asyncio.Task[None] | None = None
        self._write: Callable[[Payload], bool] | None = None
        self._send: Callable[[Payload], Awaitable[bool]] | None = None
        self._end: Callable[[], None] | None = None
        self._source_of: Callable[[Delivery], Any] | None = None

    def attach(
        self,
        write: Callable[[Payload], bool],
        send: Callable[[Payload], Awaitable[bool]],
        end: Callable[[], None],
    ) -> None:
        self._write, self._send, self._end = write, send, end

    def sink(self, source_of: Callable[[Delivery], Any]) -> Callable[[Delivery], None] | None:
        """Where the hub may hand the subscription's deliveries, `source_of` making the
        source event the subscription's selection is executed on; None when no transport
        attached a way to write."""
        if self._write is None:
            return None
        self._source_of = source_of
        return self.offer

    def offer(self, delivery: Delivery) -> None:
        if self.closed:
            delivery.done()
            return
        try:
            self._join(delivery)
        except Exception:  # this subscriber's failure must not spare it the others' events
            log.exception("could not hand an event to a subscriber")
            delivery.done()
            self._fail()

    def _join(self, delivery: Delivery) -> None:
        shared = delivery.shared
        event = delivery.event
        if event is None or shared is None:  # RESYNC: made for this subscriber alone
            group = _Group()
            group.start(self._execute(delivery))
        else:
            viewer = self.context.viewer
            if delivery.organization_id is not None:
                viewer.set_role(delivery.organization_id, delivery.role)
            scope = shared.scope_of(viewer, self.context.services.access)
            key = (event.id, self.sharing.key(scope, viewer))
            found: _Group | None = shared.results.get(key)
            if found is None:
                found = shared.results[key] = _Group()
                found.start(self._execute(delivery))
            group = found
        self.pending.append((group, delivery))
        if group.done:
            self.flush()
        else:
            group.members.append(self)

    async def _execute(self, delivery: Delivery) -> Payload:
        assert self._source_of is not None
        context = self.context.for_event(delivery)
        try:
            return await _execute(self.executor, self._source_of(delivery), context)
        finally:
            await context.session.close()

    def flush(self) -> None:
        """Write the payloads made, in order, up to the first still in the making."""
        pending = self.pending
        while pending and pending[0][0].done:
            group, delivery = pending.popleft()
            delivery.done()
            if self.closed:
                continue
            try:
                payload = group.result()
            except asyncio.CancelledError:  # (the server is stopping)
                continue
            except Exception as error:
                payload = failed(error)
            try:
                self._put(payload)
            except Exception:  # (as in `offer`)
                log.exception("could not write an event to a subscriber")
                self._fail()

    def _fail(self) -> None:
        assert self._end is not None
        self.close()
        self._end()

    def _put(self, payload: Payload) -> None:
        assert self._write is not None
        if self._draining is None and self._write(payload):  # (none waits before it)
            return
        if len(self._backlog) >= INBOX_LIMIT:  # too slow to keep up: resync instead
            self._backlog.clear()
            self.offer(Delivery(None))
            return
        self._backlog.append(payload)
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        assert self._send is not None and self._end is not None
        try:
            while self._backlog and not self.closed:
                if not await self._send(self._backlog.popleft()):
                    self._end()
                    return
        finally:
            self._draining = None

    def close(self) -> None:
        """The subscription ended: nothing more is written."""
        self.closed = True
        while self.pending:
            self.pending.popleft()[1].done()
        self._backlog.clear()
        if self._draining is not None:
            self._draining.cancel()
