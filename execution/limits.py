"""Query limits checked before execution, and each client's hourly budget of cost points.

    parse_within(source, limits) -> DocumentNode        QUERY_TOO_COMPLEX past max_tokens
    analyze(schema, document, operation_name, variables) -> Analysis
    check(analysis, limits)                             QUERY_TOO_COMPLEX past a limit
    Budget.spend(key, points, signed_in) -> BudgetState RATE_LIMITED when the points do not fit

How `analyze` counts
--------------------
The operation is walked as the executor will run it, with the executor's own field collector
(execution/selections.py): per object type, fields are collected by response key (alias or
name) and merged, named and inline fragments are expanded where their type condition applies,
a named fragment spread twice into one selection counts once, and a selection left out by
`@skip`/`@include` (literal or variable condition; a variable without a value counts as
included) counts nothing but its own directives. Where a type is abstract
(`node` returns `Node`), every possible object type is walked and each figure is the worst.

- cost, GitHub style, the number of page requests the query can cause. Every connection field
  (declared with `connection(…)`, execution/connection.py) and every field declared with a
  `sized_by` list argument (`nodes(ids:)`) is one request, made once per item of every
  connection above it. The cost is the sum, over
  those fields, of the product of the page sizes of the connections above it; at least 1.
  A page size is `first` or `last` (literal, variable or default; the larger if both),
  clamped to 0..MAX_PAGE_SIZE (the resolver refuses the rest with a clearer error), and
  DEFAULT_PAGE_SIZE when neither is given (execution/pagination.py); for `ids` it is the
  number of ids (at most MAX_NODES). So
  `projects(first: 20) { nodes { issues(first: 10) { nodes { comments(first: 5) {…} } } } }`
  costs 1 + 20 + 20*10 = 221.
- nodes, GitHub's node count, the most objects the connections can return: the sum over the
  same fields of the product of the page sizes down to and including their own; 20 + 20*10 +
  20*10*5 = 1,220 above.
- depth: the deepest nesting of fields; `{ viewer { login } }` is 2. Fragments are transparent,
  `__typename` adds nothing, and neither does `ofType` in introspection, whose nesting the
  schema's type wrappers bound: GraphiQL's introspection query has depth 6.
- aliases: response keys that differ from their field's name, once per place in the response
  (two fragments merging the same alias at one place count once; one fragment spread at two
  places counts twice).
- directives: those on the operation and on every field, fragment spread and inline fragment
  walked, again at each place a fragment is spread.

Introspection (`__schema`, `__type`) costs a fixed 1 and counts no nodes whatever it selects: it
reads the schema in memory, not the database. Depth and aliases count inside it as anywhere,
so a self-nested `__type { fields { type { fields … } } }` is still cut by `max_depth`.

Each (object type, merged selections) pair is walked once and reused, so fragments cannot make
the walk exponential, and a cycle (validation refuses them anyway) ends. A document that still
expands past MAX_SELECTIONS selections is refused as QUERY_TOO_COMPLEX (figure "selections").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import graphql
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLCompositeType,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionNode,
    SelectionSetNode,
    TypeMetaFieldDef,
    Undefined,
    get_named_type,
    is_abstract_type,
    is_composite_type,
    is_object_type,
    value_from_ast_untyped,
)
from limits import RateLimitItem, RateLimitItemPerHour
from limits.aio.storage import RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from limits.util import WindowStats
from redis.asyncio import Redis

from core.encoding import rfc3339
from core.errors import QueryTooComplex, RateLimited
from core.redis import TIMEOUT as REDIS_TIMEOUT
from core.redis import RedisHealth
from execution.connection import Pages
from execution.fields import Each, need_of
from execution.pagination import DEFAULT_PAGE_SIZE, MAX_NODES, MAX_PAGE_SIZE
from execution.selections import collect_fields, fragments_of, pick_operation

log = logging.getLogger(__name__)

INTROSPECTION_COST: Final = 1
MAX_SELECTIONS: Final = 20_000  # about 0.1 s of walking; real queries stay far below
KEY_PREFIX: Final = "issuegraph:budget"


@dataclass(frozen=True, slots=True)
class Analysis:
    """The figures of one operation; the module docstring says how each is counted."""

    cost: int
    depth: int
    aliases: int
    directives: int
    nodes: int


@dataclass(frozen=True, slots=True)
class Limits:
    """The most a single query may be; `max_tokens` is checked by `parse_within`."""

    max_depth: int = 15
    max_aliases: int = 30
    max_directives: int = 50
    max_cost: int = 50_000
    max_nodes: int = 500_000  # GitHub's figure
    max_tokens: int = 10_000


_ZERO: Final = Analysis(0, 0, 0, 0, 0)


def _plus(a: Analysis, b: Analysis) -> Analysis:
    return Analysis(
        a.cost + b.cost,
        max(a.depth, b.depth),
        a.aliases + b.aliases,
        a.directives + b.directives,
        a.nodes + b.nodes,
    )


def _worst(a: Analysis, b: Analysis) -> Analysis:
    return Analysis(
        max(a.cost, b.cost),
        max(a.depth, b.depth),
        max(a.aliases, b.aliases),
        max(a.directives, b.directives),
        max(a.nodes, b.nodes),
    )


def analyze(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> Analysis:
    """The figures of the operation `operation_name` selects in a validated document."""
    operation = pick_operation(document, operation_name)
    root = schema.get_root_type(operation.operation) if operation is not None else None
    if operation is None or root is None:
        return replace(_ZERO, cost=1)  # nothing will run; the executor says why
    walk = _Walk(schema, document, _variables(operation, variables))
    figures = walk.selections(root, (operation.selection_set,))
    return replace(
        figures,
        cost=max(1, figures.cost),
        directives=figures.directives + len(operation.directives or ()),
    )


_MISSING: Final = ("missing",)


def analysis_key(
    operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
) -> tuple[Any, ...]:
    """What the figures of `operation` depend on in `variables`: two requests of one
    operation with equal keys have the same analysis, so it can be kept by this key.

    The walk reads a variable's value in four ways only: as a page size (`_integer`), as
    a count of ids (`_count`), and as `@skip`/`@include`'s condition (`is True`, `is
    False`); a variable inside a list or object literal changes none of the literal's
    readings. So a value stands for what those four make of it, and the cursors, ids and
    filters that differ from request to request share one key. A variable not given stands
    apart (its default applies), and a validated operation uses each variable it defines.
    """
    given = variables or {}
    return tuple(
        _reading(given[name]) if name in given else _MISSING
        for name in (d.variable.name.value for d in operation.variable_definitions or ())
    )


def _reading(value: Any) -> tuple[Any, ...]:
    return (_integer(value), _count(value), value is True, value is False)


def _variables(
    operation: OperationDefinitionNode, given: Mapping[str, Any] | None
) -> dict[str, Any]:
    values = {
        definition.variable.name.value: value_from_ast_untyped(definition.default_value)
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    return {**values, **(given or {})}


class _Walk:
    """One walk of an operation; `done` keeps the figures of each walked selection."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = fragments_of(document)
        self.done: dict[tuple[str, tuple[int, ...]], Analysis] = {}
        self.steps = 0

    def selections(
        self, type_: GraphQLCompositeType, sets: tuple[SelectionSetNode, ...]
    ) -> Analysis:
        if is_object_type(type_):
            return self._object(type_, sets)
        figures = _ZERO
        if is_abstract_type(type_):
            for possible in self.schema.get_possible_types(type_):
                figures = _worst(figures, self._object(possible, sets))
        return figures

    def _object(self, type_: GraphQLObjectType, sets: tuple[SelectionSetNode, ...]) -> Analysis:
        key = (type_.name, tuple(map(id, sets)))
        if key in self.done:
            return self.done[key]
        self.done[key] = _ZERO  # reached again inside itself: a cycle, counted once
        fields, directives = self._collect(type_, sets)
        figures = replace(_ZERO, directives=directives)
        for response_key, nodes in fields.items():
            figures = _plus(figures, self._field(type_, response_key, nodes))
        self.done[key] = figures
        return figures

    def _collect(
        self, type_: GraphQLObjectType, sets: tuple[SelectionSetNode, ...]
    ) -> tuple[dict[str, list[FieldNode]], int]:
        """Fields by response key and the directives met, as the executor collects them."""
        directives = 0

        def visit(selection: SelectionNode) -> None:
            nonlocal directives
            self._step()
            directives += len(selection.directives or ())

        fields = collect_fields(self.schema, self.fragments, type_, sets, self._included, visit)
        return fields, directives

    def _included(self, selection: SelectionNode) -> bool:
        for directive in selection.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            condition = next(
                (a.value for a in directive.arguments or () if a.name.value == "if"), None
            )
            value = None if condition is None else value_from_ast_untyped(condition, self.variables)
            if value is (name == "skip"):  # skip(if: true) or include(if: false)
                return False
        return True

    def _step(self) -> None:
        self.steps += 1
        if self.steps > MAX_SELECTIONS:
            raise QueryTooComplex(
                f"The query expands to more than {MAX_SELECTIONS:,} selections.",
                figure="selections",
                value=MAX_SELECTIONS + 1,
                limit=MAX_SELECTIONS,
            )

    def _field(
        self, parent: GraphQLObjectType, response_key: str, nodes: list[FieldNode]
    ) -> Analysis:
        name = nodes[0].name.value
        aliases = int(response_key != name)
        definition = self._definition(parent, name)
        if definition is None:  # __typename (or a field validation refuses)
            return replace(_ZERO, aliases=aliases)
        named = get_named_type(definition.type)
        sets = tuple(n.selection_set for n in nodes if n.selection_set is not None)
        child = self.selections(named, sets) if sets and is_composite_type(named) else _ZERO
        own_depth = 0 if (parent.name, name) == ("__Type", "ofType") else 1
        figures = replace(child, depth=child.depth + own_depth, aliases=child.aliases + aliases)
        if definition is SchemaMetaFieldDef or definition is TypeMetaFieldDef:
            return replace(figures, cost=INTROSPECTION_COST, nodes=0)
        size = self._size(definition, nodes)
        if size is None:
            return figures
        return replace(figures, cost=1 + size * child.cost, nodes=size + size * child.nodes)

    def _definition(self, parent: GraphQLObjectType, name: str) -> GraphQLField | None:
        if parent is self.schema.query_type and name == "__schema":
            return SchemaMetaFieldDef
        if parent is self.schema.query_type and name == "__type":
            return TypeMetaFieldDef
        field: GraphQLField | None = parent.fields.get(name)
        return field

    def _size(self, definition: GraphQLField, nodes: list[FieldNode]) -> int | None:
        """The page size a connection or a `sized_by` list multiplies by, as the field's
        declaration says; None for other fields."""
        need = need_of(definition)
        if isinstance(need, Pages):
            return max(self._page_size(definition, node) for node in nodes)
        if isinstance(need, Each) and need.sized_by is not None:
            argument = need.sized_by
            return max(_count(self._argument(definition, node, argument)) for node in nodes)
        return None

    def _page_size(self, definition: GraphQLField, node: FieldNode) -> int:
        sizes = [
            size
            for argument in ("first", "last")
            if (size := _integer(self._argument(definition, node, argument))) is not None
        ]
        if not sizes:
            return DEFAULT_PAGE_SIZE
        return min(max(max(sizes), 0), MAX_PAGE_SIZE)

    def _argument(self, definition: GraphQLField, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return value_from_ast_untyped(argument.value, self.variables)
        declared = definition.args.get(name)
        return declared.default_value if declared is not None else None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) else None


def _count(ids: Any) -> int:
    """How many ids an `ids` argument holds; one value alone is coerced to a list of one."""
    if ids is None or ids is Undefined:
        return 0
    return min(len(ids) if isinstance(ids, list) else 1, MAX_NODES)


def parse_within(source: str, limits: Limits) -> DocumentNode:
    """Parse with the token limit, which is reported as QUERY_TOO_COMPLEX.

    graphql-core stops at the first token over the limit, so the error's `value` is a lower
    bound (the limit + 1). Other syntax errors propagate as GraphQLError.
    """
    try:
        return graphql.parse(source, max_tokens=limits.max_tokens)
    except GraphQLError as error:
        if f"more than {limits.max_tokens} tokens" not in error.message:
            raise
    raise QueryTooComplex(
        f"The query has more than {limits.max_tokens:,} tokens, the limit.",
        figure="tokens",
        value=limits.max_tokens + 1,
        limit=limits.max_tokens,
    )


# (figure, the Limits attribute, the message before ", over the limit of N.")
_CHECKS: Final = (
    ("depth", "max_depth", "The query's depth is {value:,}"),
    ("aliases", "max_aliases", "The query has {value:,} aliases"),
    ("directives", "max_directives", "The query has {value:,} directives"),
    ("cost", "max_cost", "The query's cost is {value:,}"),
    ("nodes", "max_nodes", "The query may return {value:,} nodes"),
)


def check(analysis: Analysis, limits: Limits) -> None:
    """Raise QUERY_TOO_COMPLEX for the first figure over its limit, in `_CHECKS` order."""
    for figure, attribute, text in _CHECKS:
        value: int = getattr(analysis, figure)
        limit: int = getattr(limits, attribute)
        if value > limit:
            raise QueryTooComplex(
                f"{text.format(value=value)}, over the limit of {limit:,}.",
                figure=figure,
                value=value,
                limit=limit,
            )


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A key's budget for the current hour; `reset_at` (UTC) is when all of it is back."""

    limit: int
    remaining: int
    reset_at: datetime

    def extension(self, cost: int) -> dict[str, Any]:
        """The `rateLimit` entry of a response's `extensions`, named as GitHub's."""
        return {
            "requested": cost,
            "limit": self.limit,
            "remaining": self.remaining,
            "resetAt": rfc3339(self.reset_at),
        }

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset_at.timestamp())),
        }


class Budget:
    """Cost points per key and hour, in Redis when a URL is given (shared by every process
    using it), else in this process's memory; while Redis is down or slow (core/redis.py),
    in this process's memory too, so that budgets keep counting, per process.

    A fixed hourly window, as GitHub's: one counter per key whatever the cost (a moving
    window keeps one entry per point, 50,000 list items per busy viewer), and `reset_at` is
    the counter's expiry, when the whole budget comes back. The price is that a
    client may spend up to twice its budget across a window's end. A window opens with a
    key's first spend; before that, `reset_at` is an hour from now, when a window opened now
    would end. `reset_at` is in whole seconds, never early, and on Redis may move by a
    second between calls (Redis reports expiries rounded to the second).

    What a client spends here while Redis is away is owed to Redis: the first call that
    reaches Redis again adds it to the shared counters, so an outage does not hand every
    client a fresh budget (nor, with several processes, one per process).
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        anonymous_per_hour: int = 5_000,
        signed_in_per_hour: int = 50_000,
        key_prefix: str = KEY_PREFIX,
        timeout: float = REDIS_TIMEOUT,
        health: RedisHealth | None = None,
    ) -> None:
        # Redis when a URL is given; this process's memory without one, and while Redis
        # is down or slow (`health`): budgets are then counted per process, not refused
        self._shared = _storage(redis_url, key_prefix, timeout) if redis_url else None
        self._local = Counters()
        self._limiters: dict[int, FixedWindowRateLimiter | Counters] = {
            id(self._local): self._local
        }
        if self._shared is not None:
            self._limiters[id(self._shared)] = FixedWindowRateLimiter(self._shared)
        self._health = health or RedisHealth()
        self._owed: dict[str, tuple[int, float]] = {}  # counter key: points, window end
        self._items: dict[bool, RateLimitItem] = {
            False: RateLimitItemPerHour(anonymous_per_hour, namespace="anonymous"),
            True: RateLimitItemPerHour(signed_in_per_hour, namespace="viewer"),
        }

    @property
    def shared(self) -> bool:
        return self._shared is not None

    async def peek(self, key: str, signed_in: bool) -> BudgetState:
        item = self._items[signed_in]
        return await self._guarded(lambda storage: self._state(storage, item, key))

    async def spend(self, key: str, points: int, signed_in: bool) -> BudgetState:
        """Spend `points` and return what is left; RATE_LIMITED, spending nothing, if they
        do not fit."""
        item = self._items[signed_in]
        return await self._guarded(lambda storage: self._spend(storage, item, key, points))

    async def healthy(self) -> bool:
        return self._shared is None or await self._shared.check()

    async def aclose(self) -> None:
        """Close the Redis connections; limits never closes the client it made."""
        if isinstance(self._shared, RedisStorage):
            bridge = self._shared.bridge
            if isinstance(bridge, RedispyBridge):
                client = bridge.get_connection()
                assert isinstance(client, Redis)
                await client.aclose()

    async def _guarded(
        self, call: Callable[[Storage | Counters], Awaitable[BudgetState]]
    ) -> BudgetState:
        """`call` on Redis while it answers, else on this process's memory."""
        shared = self._shared
        if shared is None or not self._health.usable:
            return await call(self._local)
        try:
            if self._owed:
                await self._settle(shared)
            found = await call(shared)
        except StorageError as error:
            self._health.failed(error)
            return await call(self._local)
        self._health.succeeded()
        return found

    async def _settle(self, shared: Storage) -> None:
        """Add the points spent in memory while Redis was away to its counters (each with
        what was left of its window); StorageError keeps what could not be added owed."""
        owed, self._owed = self._owed, {}
        now = time.time()
        try:
            while owed:
                counter, (points, ends) = next(iter(owed.items()))
                if ends > now:
                    await shared.incr(counter, max(1, math.ceil(ends - now)), amount=points)
                del owed[counter]
        finally:
            for counter, (points, ends) in owed.items():  # not added: still owed
                was, _ = self._owed.get(counter, (0, ends))
                self._owed[counter] = (was + points, ends)
        log.info("budgets spent while redis was away added to it")

    async def _spend(
        self, storage: Storage | Counters, item: RateLimitItem, key: str, points: int
    ) -> BudgetState:
        if points > item.amount:
            raise _refusal(await self._state(storage, item, key), points)
        limiter = self._limiters[id(storage)]
        if points > 0 and not await limiter.hit(item, key, cost=points):
            # A refused fixed-window hit still counted its points: give them back. (Should
            # the window end in between, the next one starts `points` in credit; harmless.)
            await storage.incr(item.key_for(key), item.get_expiry(), amount=-points)
            raise _refusal(await self._state(storage, item, key), points)
        state = await self._state(storage, item, key)
        if storage is self._local and self._shared is not None and points > 0:
            counter = item.key_for(key)
            was, _ = self._owed.get(counter, (0, 0.0))
            self._owed[counter] = (was + points, state.reset_at.timestamp())
        return state

    async def _state(
        self, storage: Storage | Counters, item: RateLimitItem, key: str
    ) -> BudgetState:
        stats = await self._limiters[id(storage)].get_window_stats(item, key)
        now = time.time()
        if stats.reset_time <= now:  # no window open yet
            reset = now + item.get_expiry()
        else:  # Redis reports the expiry rounded to the second: never announce it early
            reset = stats.reset_time + (0.5 if storage is self._shared else 0.0)
        return BudgetState(
            item.amount, stats.remaining, datetime.fromtimestamp(math.ceil(reset), UTC)
        )


class Counters:
    """Fixed-window counters in this process's memory, for `Budget` without Redis: what
    limits' MemoryStorage and FixedWindowRateLimiter do together, counted the same way (a
    window opens when its counter leaves 0, and ends `item.get_expiry()` seconds later),
    without what that pair costs every call: a task that walks every key, a lock, and
    wrappers. Ended windows are dropped when next read, and all at once every SWEEP
    seconds, so that a key seen once does not stay."""

    SWEEP = 60.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._ends: dict[str, float] = {}
        self._swept = clock()

    def __len__(self) -> int:
        """How many windows are kept (some may have ended since the last sweep)."""
        return len(self._ends)

    async def hit(self, item: RateLimitItem, key: str, cost: int = 1) -> bool:
        return await self.incr(item.key_for(key), item.get_expiry(), cost) <= item.amount

    async def get_window_stats(self, item: RateLimitItem, key: str) -> WindowStats:
        counter, now = item.key_for(key), self._clock()
        remaining = max(0, item.amount - self._count(counter, now))
        return WindowStats(self._ends.get(counter, now), remaining)

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        count = self._counts[key] = self._count(key, now) + amount
        if count == amount:
            self._ends[key] = now + expiry
        if now - self._swept > self.SWEEP:
            self._sweep(now)
        return count

    def _count(self, key: str, now: float) -> int:
        if self._ends.get(key, 0) <= now:
            self._counts.pop(key, None)
            self._ends.pop(key, None)
        return self._counts.get(key, 0)

    def _sweep(self, now: float) -> None:
        self._swept = now
        for key in [key for key, ends in self._ends.items() if ends <= now]:
            self._counts.pop(key, None)
            del self._ends[key]


def _storage(redis_url: str, key_prefix: str, timeout: float) -> Storage:
    # redis-py's bridge increments and sets the expiry in one Lua script (coredis's, the
    # default, in two commands), and redis-py is the project's Redis client anyway.
    return RedisStorage(
        _limits_uri(redis_url),
        implementation="redispy",
        key_prefix=key_prefix,
        wrap_exceptions=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


def _limits_uri(redis_url: str) -> str:
    """limits names its asyncio Redis schemes `async+redis`, `async+rediss`, `async+redis+unix`."""
    scheme, _, rest = redis_url.partition("://")
    if scheme in ("async+redis", "async+rediss", "async+redis+unix"):
        return redis_url
    if scheme in ("redis", "rediss"):
        return f"async+{redis_url}"
    if scheme == "unix":
        return f"async+redis+unix://{rest}"
    raise ValueError(f"Not a Redis URL: {redis_url!r} (use redis://, rediss:// or unix://).")


def _refusal(state: BudgetState, points: int) -> RateLimited:
    reset_at = rfc3339(state.reset_at)
    retry_after: int | None
    if points > state.limit:  # waiting does not help: say so, with no retryAfter
        message = (
            f"The query costs {points:,} points, more than the whole budget of "
            f"{state.limit:,} an hour; ask for fewer items."
        )
        retry_after = None
    else:
        message = (
            f"The query costs {points:,} points and {state.remaining:,} of "
            f"{state.limit:,} an hour remain; the budget resets at {reset_at}."
        )
        retry_after = max(1, math.ceil(state.reset_at.timestamp() - time.time()))
    return RateLimited(
        message,
        cost=points,
        limit=state.limit,
        remaining=state.remaining,
        resetAt=reset_at,
        retryAfter=retry_after,
    )
