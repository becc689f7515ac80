"""The one way a GraphQL request runs, whatever transport brought it.

`Pipeline.run(payload, caller)` takes a request as the transport read it (a mapping with
`query`, `variables`, `operationName`, `extensions`) and who sent it (`Caller`), and takes
it through these steps, each of which may refuse it:

  1. the request's shape: the fields' types                          BAD_REQUEST
  2. persisted queries: the document by its hash; under PERSISTED_QUERIES_ONLY only
     known documents                                                 PERSISTED_QUERY_*
  3. the document: parsed and validated once (cached)                GRAPHQL_*_FAILED
  4. the operation: picked by name, of a type the transport carries  BAD_USER_INPUT, 405
  5. the limits: tokens, depth, aliases, directives, cost, nodes     QUERY_TOO_COMPLEX
  6. the viewer: from the caller's Bearer token, or the one the transport authenticated
     already (a WebSocket's connection_init)                         UNAUTHENTICATED
  7. the budget: the cost spent from the viewer's hourly budget      RATE_LIMITED
  8. execution, retried on a transient database failure when that is safe; a
     subscription instead gets its stream of events                  UNAVAILABLE

Steps 6 to 8 run within REQUEST_TIMEOUT (TIMEOUT), or until shutdown's drain deadline
(UNAVAILABLE); past it the request's database connections are ended, not waited for.

No SQL runs before step 6. The outcome is one of
  Refused     the request stopped: `error` (its class says the code and HTTP status) and
              the `errors` the response carries;
  Executed    a query or mutation ran: the response `body` (data, errors, extensions.cost),
              the statements it took, the budget left;
  Subscribed  a subscription's `events`, each the payload of one `next` (execution/fanout.py);
              a payload without `data` ends the stream with errors.
Each transport maps these to its own messages: server/http.py to statuses and headers,
server/websocket.py to graphql-transport-ws messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import stamina
from graphql import ExecutionResult, FieldNode, OperationDefinitionNode, OperationType

from core import observability as metrics
from core.db import Database, Session
from core.errors import (
    BadRequest,
    BadUserInput,
    ClientError,
    DatabaseError,
    DocumentError,
    MethodNotAllowed,
    RateLimited,
    RequestTimeout,
    ServerError,
    ShuttingDown,
    TransientError,
    Unauthenticated,
)
from core.logs import AccessNote
from domain.auth import Claims
from domain.context import Context, Services, build_context
from domain.policy import ANONYMOUS, Viewer
from execution.documents import Executor, Prepared, error_entries, response_body
from execution.fanout import Live, Payload, failed, payloads, sharing
from execution.limits import Analysis, Budget, BudgetState, analysis_key, analyze, check
from execution.persisted import PersistedQueries
from execution.selections import pick_operation
from loaders.accounts import session_ended
from loaders.users import load_viewer

log = logging.getLogger(__name__)

ATTEMPTS = 3
QUERIES = frozenset({OperationType.QUERY})
QUERIES_AND_MUTATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
EVERY_OPERATION = frozenset(OperationType)
# Analyses kept per document, one per operation and what its variables make of the figures
# (execution/limits.py `analysis_key`): a few each, so that a client varying page sizes
# cannot grow a cached document without bound.
ANALYSES_PER_DOCUMENT = 16


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    """A request's fields, as `read_request` found them."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends a request, and what their transport carries."""

    address: str  # the client's address: the budget's key when anonymous
    credentials: str | None = None  # an `Authorization` value, `Bearer <token>`
    viewer: Viewer | None = None  # set when the transport authenticated the caller already
    operations: frozenset[OperationType] = QUERIES_AND_MUTATIONS
    request: Any = None  # the transport's request, for the context
    note: AccessNote | None = None  # what the request did, for its access line


@dataclass(slots=True)
class Refused:
    """The request stopped; `error`'s class says its code and HTTP status, `errors` is
    what the response carries."""

    error: ClientError | ServerError
    errors: list[dict[str, Any]]


@dataclass(slots=True)
class Executed:
    """A query or mutation ran (or tried: a body without `data` never started)."""

    body: dict[str, Any]
    operation: str | None
    statements: int
    budget: BudgetState | None


@dataclass(slots=True)
class Subscribed:
    """A subscription started: its budget is spent, its `events` are to be sent."""

    events: EventStream
    operation: str | None
    budget: BudgetState | None
    live: Live  # how a transport writes its events without waking its task


Outcome = Refused | Executed | Subscribed


class Drain:
    """The deadlines of the requests in flight. At shutdown `start(seconds)` brings every
    one of them (and those of requests still to come) forward to `seconds` from now, so that
    the server stops within its shutdown bound whatever the database does."""

    def __init__(self) -> None:
        self.until: float | None = None  # the event loop's clock
        self._scopes: set[asyncio.Timeout] = set()

    @property
    def started(self) -> bool:
        return self.until is not None

    def start(self, seconds: float) -> None:
        self.until = asyncio.get_running_loop().time() + seconds
        for scope in list(self._scopes):
            when = scope.when()
            if not scope.expired() and (when is None or when > self.until):
                scope.reschedule(self.until)

    def bounded(self, seconds: float) -> Bounded:
        """A deadline `seconds` from now, or the drain's if that comes first (`async with`)."""
        return Bounded(self, seconds)


class Bounded:
    """`Drain.bounded`'s deadline: asyncio's, known to the drain while it is entered.
    (A class rather than a generator: it is entered by every request.)"""

    __slots__ = ("_drain", "_scope", "_seconds")

    def __init__(self, drain: Drain, seconds: float) -> None:
        self._drain = drain
        self._seconds = seconds

    async def __aenter__(self) -> None:
        drain = self._drain
        when = asyncio.get_running_loop().time() + self._seconds
        if drain.until is not None:
            when = min(when, drain.until)
        self._scope = scope = asyncio.Timeout(when)
        await scope.__aenter__()
        drain._scopes.add(scope)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._drain._scopes.discard(self._scope)
        await self._scope.__aexit__(kind, error, traceback)


class Deadline:
    """REQUEST_TIMEOUT (or the drain's deadline) over a request's database work, as
    `async with`: past it, its sessions' connections are ended and the request answered
    now (RequestTimeout; ShuttingDown past the drain's), not when the database does."""

    __slots__ = ("_bounded", "_drain", "_sessions", "_timeout")

    def __init__(self, drain: Drain, timeout: float, sessions: list[Session]) -> None:
        self._drain = drain
        self._timeout = timeout
        self._sessions = sessions
        self._bounded = drain.bounded(timeout)

    async def __aenter__(self) -> None:
        await self._bounded.__aenter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._bounded.__aexit__(kind, error, traceback)
        except TimeoutError:
            pass
        else:
            if kind is None or not issubclass(kind, TimeoutError):
                return
        for session in self._sessions:
            await session.abort()
        if self._drain.started:
            raise ShuttingDown("stopped by the shutdown's drain deadline") from None
        raise RequestTimeout(f"past the {self._timeout:g} s deadline") from None


class Pipeline:
    def __init__(
        self,
        executor: Executor,
        database: Database,
        services: Services,
        budget: Budget,
        persisted: PersistedQueries,
    ) -> None:
        self.executor = executor
        self.database = database
        self.services = services
        self.settings = services.settings
        self.budget = budget
        self.drain = Drain()
        self.persisted = persisted

    async def run(self, payload: Mapping[str, Any], caller: Caller) -> Outcome:
        """One request through every step; see the module docstring."""
        try:
            outcome = await self._run(payload, caller)
        except (ClientError, ServerError) as error:
            if error.code == ServerError.code:
                log.error("request failed", exc_info=error)
            outcome = Refused(error, error_entries(error))
        except Exception as unexpected:  # never a traceback for the client
            log.exception("request failed")
            internal = ServerError(str(unexpected))
            return Refused(internal, error_entries(internal))
        if isinstance(outcome, Refused) and isinstance(outcome.error, DocumentError):
            return await self._charge(outcome, caller)
        return outcome

    async def _charge(self, refused: Refused, caller: Caller) -> Refused:
        """A document that cannot run still costs its client address REFUSAL_COST points, so
        that a flood of them is throttled like any other traffic (before any token is read:
        the address pays, signed in or not)."""
        cost = self.settings.refusal_cost
        if cost <= 0:
            return refused
        try:
            await self._spend(f"address:{caller.address}", cost, signed_in=False)
        except RateLimited as limited:
            return Refused(limited, error_entries(limited))
        return refused

    async def authenticate(self, credentials: str | None, session: Session | None = None) -> Viewer:
        """The signed-in user of these credentials; bad ones are an error, never anonymity."""
        return await self.viewer_of(self.claims(credentials), session)

    def claims(self, credentials: str | None) -> Claims | None:
        """What the access token of these credentials says (None: anonymous), before any
        SQL; a bad token is UNAUTHENTICATED."""
        if credentials is None:
            return None
        scheme, _, token = credentials.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Send the access token as `Authorization: Bearer <token>`.")
        return self.services.tokens.verify(token.strip())

    async def viewer_of(self, claims: Claims | None, session: Session | None = None) -> Viewer:
        """The viewer that verified claims name, their session checked in the same statement
        that loads them (no round trip of its own): an ended session is UNAUTHENTICATED."""
        if claims is None:
            return ANONYMOUS
        own = session is None
        session = session or self.database.session()
        try:
            found = await load_viewer(session, claims.user_id, claims.session_id)
        finally:
            if own:
                await session.close()
        if found is None:
            raise Unauthenticated("The access token's user no longer exists.", reason="USER_GONE")
        if not found.session_live:
            raise session_ended(found.session_end)
        return Viewer(found.user, found.roles, claims.session_id, claims.expires_at)

    async def _run(self, payload: Mapping[str, Any], caller: Caller) -> Outcome:
        request = read_request(payload)
        query = await self.persisted.resolve(request.query, request.extensions)
        prepared = self.executor.prepare(query)
        if prepared.error is not None:
            return Refused(prepared.error, error_entries(prepared.error))
        operation = _operation(prepared, request.operation_name, caller.operations)
        analysis = self._limits(query, prepared, operation, request)
        name = request.operation_name or _name(operation)
        note = caller.note
        if note is not None:
            note.operation_name, note.operation_type = name, operation.operation.value
            note.cost = analysis.cost
        sessions = [self.database.session()]
        handed_over = False  # to a subscription's stream, which closes it
        try:
            with metrics.operation_span("graphql " + (name or "anonymous")):
                async with Deadline(self.drain, self.settings.request_timeout, sessions):
                    viewer = await self._viewer(caller, sessions)
                    user = viewer.user
                    if note is not None and user is not None:
                        note.viewer_id = user.id
                    key = f"user:{user.id}" if user else f"address:{caller.address}"
                    state = await self._spend(key, analysis.cost, signed_in=user is not None)
                    context = build_context(sessions[-1], viewer, self.services, caller.request)
                    context.rate_limit, context.cost = state, analysis.cost
                    if operation.operation is not OperationType.SUBSCRIPTION:
                        return await self._execute(
                            prepared, request, operation, context, name, sessions
                        )
                    handed_over = True
                    return await self._subscribe(prepared, request, operation, context, name, state)
        finally:
            if note is not None:  # a retry's statements included
                note.sql_statements = sum(session.statements for session in sessions)
            if not handed_over:
                for session in sessions:
                    await session.close()

    def _limits(
        self,
        query: str,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        request: GraphQLRequest,
    ) -> Analysis:
        assert prepared.document is not None
        name, variables = request.operation_name, request.variables
        key = (name, analysis_key(operation, variables))
        analysis = prepared.analyses.get(key)
        if analysis is None:
            analysis = analyze(self.executor.graphql_schema, prepared.document, name, variables)
            if len(prepared.analyses) < ANALYSES_PER_DOCUMENT:
                prepared.analyses[key] = analysis
        metrics.record_cost(analysis.cost)
        try:
            check(analysis, self.executor.limits)
        except DocumentError as refused:
            # refused whatever its variables: keep the refusal, not the document
            if not request.variables and pick_operation(prepared.document, None) is not None:
                self.executor.refuse(query, refused)
            raise
        return analysis

    async def _viewer(self, caller: Caller, sessions: list[Session]) -> Viewer:
        if caller.viewer is None:
            try:
                return await self.authenticate(caller.credentials, sessions[-1])
            except TransientError:  # a read, safe to run again: on another connection
                await sessions[-1].close()
                sessions.append(self.database.session())
                return await self.authenticate(caller.credentials, sessions[-1])
        # a copy: an operation may change its viewer's roles (see Viewer.set_role)
        return replace(caller.viewer, roles=dict(caller.viewer.roles))

    async def _spend(self, key: str, cost: int, *, signed_in: bool) -> BudgetState:
        """Spend from the key's budget (Budget itself falls back to this process's memory
        while Redis is down, so a store failure never reaches here)."""
        try:
            return await self.budget.spend(key, cost, signed_in)
        except RateLimited:
            metrics.record_rate_limited()
            raise

    async def _execute(
        self,
        prepared: Prepared,
        request: GraphQLRequest,
        operation: OperationDefinitionNode,
        context: Context,
        name: str | None,
        sessions: list[Session],
    ) -> Executed:
        retryable = _retryable(operation)
        try:
            result = await self._attempt(prepared, request, context, retryable, ATTEMPTS == 1)
        except TransientError as failed:
            result = await self._retry(failed, prepared, request, context, retryable, sessions)
        statements = sum(s.statements for s in sessions)
        metrics.record_sql(statements)
        failure = _database_failure(result)
        if failure is not None:
            raise failure
        body = response_body(result)
        body["extensions"] = {"cost": _cost(context.rate_limit, context.cost)}
        return Executed(body, name, statements, context.rate_limit)

    async def _retry(
        self,
        failed: TransientError,
        prepared: Prepared,
        request: GraphQLRequest,
        context: Context,
        retryable: Callable[[TransientError], bool],
        sessions: list[Session],
    ) -> ExecutionResult:
        """The attempts after a first that `failed`, with stamina's backoff, which sees the
        first failure as its own first attempt's. (The first runs outside: stamina's
        machinery costs every request a few per cent of its CPU, and most need no retry.)"""
        async for attempt in stamina.retry_context(
            on=TransientError,
            attempts=ATTEMPTS,
            wait_initial=0.05,
            wait_max=0.5,
            timeout=self.settings.request_timeout,
        ):
            with attempt:
                if attempt.num == 1:
                    raise failed
                sessions.append(self.database.session())
                context = _renewed(context, sessions[-1])
                last = attempt.num == ATTEMPTS
                result = await self._attempt(prepared, request, context, retryable, last)
        return result

    async def _attempt(
        self,
        prepared: Prepared,
        request: GraphQLRequest,
        context: Context,
        retryable: Callable[[TransientError], bool],
        last: bool,
    ) -> ExecutionResult:
        result = await self.executor.execute(
            prepared, context, request.variables, request.operation_name
        )
        transient = [
            e.original_error
            for e in result.errors or ()
            if isinstance(e.original_error, TransientError)
        ]
        if transient and not last and retryable(transient[0]):
            await context.session.close()
            raise transient[0]
        return result

    async def _subscribe(
        self,
        prepared: Prepared,
        request: GraphQLRequest,
        operation: OperationDefinitionNode,
        context: Context,
        name: str | None,
        state: BudgetState | None,
    ) -> Executed | Subscribed:
        try:
            subscribed = await self.executor.subscribe(
                prepared, context, request.variables, request.operation_name
            )
        except BaseException:
            await context.session.close()
            raise
        if isinstance(subscribed, ExecutionResult):  # no stream: its errors say why
            await context.session.close()
            return Executed(response_body(subscribed), name, 0, state)
        executor, sources = subscribed
        assert prepared.document is not None
        shares = sharing(
            self.executor.graphql_schema, prepared.document, operation, request.variables
        )
        live = context.live = Live(executor, shares, context)
        events = EventStream(payloads(executor, sources, shares), context)
        return Subscribed(events, name, state, live)


class EventStream:
    """A subscription's results as `next` payloads (execution/fanout.py: one made for every
    subscriber who gets the same). A payload without `data` is the last one; `aclose` (also
    at the end) stops the stream and frees its database session."""

    def __init__(self, stream: AsyncIterator[Payload], context: Context) -> None:
        self._stream = stream
        self._context = context
        self._closed = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Payload:
        if self._closed:
            raise StopAsyncIteration
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            await self.aclose()
            raise
        except Exception as error:
            await self.aclose()
            return failed(error)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._context.live is not None:
            self._context.live.close()
        aclose = getattr(self._stream, "aclose", None)
        try:
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        finally:
            await self._context.session.close()


def read_request(payload: Mapping[str, Any]) -> GraphQLRequest:
    """The request's fields, checked for their types; BAD_REQUEST when one is wrong."""
    query = payload.get("query")
    extensions = payload.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise BadRequest("`extensions` must be a JSON object.")
    if query is not None and not isinstance(query, str):
        raise BadRequest("`query` must be a string.")
    if (query is None or not query.strip()) and not (extensions or {}).get("persistedQuery"):
        raise BadRequest(
            "The request has no `query`: send a GraphQL document as a string in `query`."
        )
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("`variables` must be a JSON object.")
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("`operationName` must be a string.")
    return GraphQLRequest(query or None, variables, operation_name or None, extensions)


def _operation(
    prepared: Prepared, name: str | None, carried: frozenset[OperationType]
) -> OperationDefinitionNode:
    assert prepared.document is not None
    operation = pick_operation(prepared.document, name)
    if operation is None:
        if name is None:
            raise BadUserInput(
                "The document holds several operations: name one in `operationName`."
            )
        raise BadUserInput(f"No operation named {name[:100]!r} in the document.")
    if operation.operation not in carried:
        raise _not_carried(operation.operation)
    return operation


def _not_carried(kind: OperationType) -> ClientError:
    """What a transport that does not carry operations of this type answers for one: GET
    carries queries only (a link or a prefetch must not write), HTTP no subscriptions."""
    if kind is OperationType.MUTATION:
        return MethodNotAllowed("Mutations must be sent with POST.", allow="POST")
    return BadUserInput("Subscriptions are served over WebSocket (graphql-transport-ws).")


def _retryable(operation: OperationDefinitionNode) -> Callable[[TransientError], bool]:
    # Reads may always run again. A single mutation may run again after a serialization
    # failure or deadlock (its transaction rolled back), not after a lost connection,
    # which may have hidden a commit.
    reads = operation.operation is OperationType.QUERY
    selections = operation.selection_set.selections
    single = len(selections) == 1 and isinstance(selections[0], FieldNode)
    return lambda error: reads or (single and not error.ambiguous)


def _database_failure(result: ExecutionResult) -> DatabaseError | None:
    """The database failure a response is made of, if it holds nothing else: when every
    root field is null and the database failed, the request failed as a whole (503 or 504,
    as the failure's class says), not a 200 with nothing in it."""
    if not result.errors or any(v is not None for v in (result.data or {}).values()):
        return None
    for error in result.errors:
        if isinstance(error.original_error, DatabaseError):
            return error.original_error
    return None


def _renewed(context: Context, session: Session) -> Context:
    """A fresh context on another session, for another attempt: the budget stays."""
    renewed = build_context(session, context.viewer, context.services, context.request)
    renewed.rate_limit, renewed.cost = context.rate_limit, context.cost
    return renewed


def _cost(state: BudgetState | None, cost: int) -> dict[str, Any]:
    return state.extension(cost) if state is not None else {"requested": cost}


def _name(operation: OperationDefinitionNode) -> str | None:
    return operation.name.value if operation.name else None
