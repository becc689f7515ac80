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

    sharing(schema, document, operation, variables)   what a subscriber shares with others
    payloads(executor, sources, sharing)               its stream of Payloads
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Hashable
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
from execution.documents import response_body
from execution.fields import by_viewer, need_of


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

    def key(self, context: Any) -> Hashable:
        """The group of the subscriber whose context this is, for the event now."""
        scope = context.loaders.scope
        if not self.by_viewer:
            return (self.selection, scope)
        viewer = context.viewer
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


class _Group:
    """The payload of one event for one group: made (in a task of its own) for the first
    of its subscribers to come; each waits for it on a future of its own, so that one who
    leaves (its future cancelled) cancels nothing the others wait for."""

    __slots__ = ("done", "error", "loop", "making", "payload", "waiters")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.done = False
        self.payload: Payload | None = None
        self.error: BaseException | None = None
        self.waiters: list[asyncio.Future[Payload]] = []
        self.making: asyncio.Future[None] | None = None  # kept alive until made

    async def make(self, executor: GraphQLExecutor[Any], source: Any) -> None:
        try:
            self.payload = await _execute(executor, source)
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

    def result(self) -> Payload:
        if self.error is not None:
            raise self.error
        assert self.payload is not None
        return self.payload


async def _payload(executor: GraphQLExecutor[Any], source: Any, sharing: Sharing) -> Payload:
    results: dict[Hashable, _Group] | None = getattr(source, "shared", None)
    if results is None:
        return await _execute(executor, source)
    key = (source.shared_key, sharing.key(executor.context_value))
    group = results.get(key)
    if group is None:
        group = results[key] = _Group()
        group.making = asyncio.ensure_future(group.make(executor, source))
    elif group.done:
        return group.result()
    waiter: asyncio.Future[Payload] = group.loop.create_future()
    group.waiters.append(waiter)
    return await waiter


async def _execute(executor: GraphQLExecutor[Any], source: Any) -> Payload:
    result: Any = execute_subscription_event(executor.build_per_event_executor(source))
    if executor.is_awaitable(result):
        result = await result
    assert isinstance(result, ExecutionResult)
    return Payload(response_body(result))
