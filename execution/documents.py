"""Running GraphQL documents: cached parse and validation, execution, error shaping.

Strawberry's own `Schema.execute` parses and validates every request again and logs every
client error with a traceback; here an LRU keeps each distinct document parsed and
validated once (`DocumentCache`: bounded by count and by the memory the documents hold,
refusals kept small), and errors are shaped in one place: client errors keep their message and
code, server errors show their fixed message and code, anything unexpected is logged in
full and masked as INTERNAL.

    Executor.prepare(query)          -> Prepared (a document, or the DocumentError it is)
    Executor.execute                 run a prepared query or mutation (compiled executor first)
    Executor.subscribe               a prepared subscription's source events
    response_body(result)            an execution result as the response's body
    error_entries(error)             a refusal as the response's `errors`
    format_errors(errors)            execution errors as the response's `errors`
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    NoSchemaIntrospectionCustomRule,
    create_source_event_stream,
    execute,
    specified_rules,
    validate,
)
from graphql.execution import Executor as GraphQLExecutor
from graphql.pyutils import RefMap
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema._graphql_core import execution_context_class_kwargs

from core import observability as metrics
from core.errors import ClientError, DocumentError, ParseFailed, ServerError, ValidationFailed
from execution.fields import ROOT_SOURCE
from execution.limits import Limits, parse_within
from execution.selections import pick_operation

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A document parsed and validated once, or the error that it is instead."""

    document: DocumentNode | None
    error: DocumentError | None = None
    # Cost analyses of its operations, by operation name and what the variables make of
    # the figures (execution/limits.py `analysis_key`): each made once.
    analyses: dict[tuple[str | None, Any], Any] = field(default_factory=dict, compare=False)


# What a parsed and validated document holds per token of its text (its nodes, and the
# token chain their locations keep), measured on documents of 1,000 to 10,000 tokens.
TOKEN_BYTES = 400
REFUSAL_BYTES = 512  # a refusal's own entry, beside the size of its errors


class DocumentCache:
    """Prepared documents by their text, the least recently used dropped first when there
    are more than `size` or their estimated memory passes `max_bytes` (their text, plus
    TOKEN_BYTES a token of a document). A refusal is kept by the text's digest, as its
    formatted errors: a flood of distinct large documents that cannot run costs the cache
    little, and the same bad document sent again is refused without parsing it."""

    def __init__(self, size: int, max_bytes: int) -> None:
        self._size = size
        self._max_bytes = max_bytes
        # both LRUs: key -> (prepared, its estimated bytes)
        self._documents: OrderedDict[str, tuple[Prepared, int]] = OrderedDict()
        self._refusals: OrderedDict[bytes, tuple[Prepared, int]] = OrderedDict()
        self.bytes = 0

    def get(self, query: str) -> Prepared | None:
        found = self._documents.get(query)
        if found is not None:
            self._documents.move_to_end(query)
            return found[0]
        if not self._refusals:
            return None
        digest = _digest(query)
        refused = self._refusals.get(digest)
        if refused is None:
            return None
        self._refusals.move_to_end(digest)
        return refused[0]

    def put(self, query: str, prepared: Prepared) -> None:
        self._drop(query)
        if prepared.document is not None:
            weight = len(query) + TOKEN_BYTES * _tokens(prepared.document)
            self._documents[query] = (prepared, weight)
        else:
            assert prepared.error is not None
            weight = REFUSAL_BYTES + sum(len(str(e)) for e in prepared.error.errors)
            self._refusals[_digest(query)] = (prepared, weight)
        self.bytes += weight
        while self.bytes > self._max_bytes or len(self) > self._size:
            # refusals go first: a flood of them must not push out the documents that run
            oldest: OrderedDict[Any, tuple[Prepared, int]] = (
                self._refusals if self._refusals else self._documents
            )
            self.bytes -= oldest.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._documents) + len(self._refusals)

    def _drop(self, query: str) -> None:
        found = self._documents.pop(query, None)
        if found is None and self._refusals:
            found = self._refusals.pop(_digest(query), None)
        if found is not None:
            self.bytes -= found[1]


def _detached(error: DocumentError) -> DocumentError:
    """A copy of a raised error to keep: the original's traceback holds the frames that
    held the document and its text."""
    kept = type(error)(error.message)
    kept.extensions = dict(error.extensions)
    kept.errors = error.errors
    return kept


def _digest(query: str) -> bytes:
    return hashlib.sha256(query.encode()).digest()


def _tokens(document: DocumentNode) -> int:
    """The lexical tokens of a parsed document (its location keeps the chain)."""
    count, token = 0, document.loc.start_token if document.loc is not None else None
    while token is not None:
        count += 1
        token = token.next
    return count


class Executor:
    def __init__(
        self,
        schema: strawberry.Schema,
        cache_size: int = 1024,
        limits: Limits | None = None,
        introspection: bool = True,
        compiled: Any = None,
        cache_bytes: int = 64_000_000,
        suggestions: bool | None = None,
    ) -> None:
        self.schema = schema
        # A faster executor for what it covers (execution/compiled.py): its `execute`
        # answers None for an operation it leaves to graphql-core.
        self.compiled = compiled
        self.limits = limits or Limits()
        # Field suggestions ("did you mean …") follow introspection unless said otherwise:
        # without it they would leak the schema piece by piece.
        self._rules = None if introspection else [*specified_rules, NoSchemaIntrospectionCustomRule]
        self._hide_suggestions = not (introspection if suggestions is None else suggestions)
        self.graphql_schema = schema._schema
        self.executor_kwargs = execution_context_class_kwargs(schema.execution_context_class)
        self._subscription_class = _per_event_memos(
            self.executor_kwargs.get("executor_class", GraphQLExecutor)
        )
        self.documents = DocumentCache(cache_size, cache_bytes)

    def prepare(self, query: str) -> Prepared:
        prepared = self.documents.get(query)
        if prepared is None:
            prepared = self._prepare(query)
            self.documents.put(query, prepared)
        return prepared

    def refuse(self, query: str, error: DocumentError) -> None:
        """Keep `error` as what `query` is from now on (the limits refused it whatever its
        variables), in place of its document."""
        self.documents.put(query, Prepared(None, _detached(error)))

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse_within(query, self.limits)
        except GraphQLError as error:
            return Prepared(None, ParseFailed.listing(format_errors([error], ParseFailed.code)))
        except DocumentError as error:  # over the token limit
            return Prepared(None, _detached(error))
        errors = validate(
            self.graphql_schema,
            document,
            rules=self._rules,
            hide_suggestions=self._hide_suggestions,
        )
        if errors:
            entries = format_errors(errors, ValidationFailed.code)
            return Prepared(None, ValidationFailed.listing(entries))
        return Prepared(document)

    async def execute(
        self,
        prepared: Prepared,
        context: Any,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> ExecutionResult:
        """Run a query or a mutation: through the compiled executor when it covers it."""
        assert prepared.document is not None
        if self.compiled is not None:
            fast = await self.compiled.execute(
                prepared.document, operation_name, context, variables
            )
            if fast is not None:
                metrics.record_execution("compiled", "query")
                return fast  # type: ignore[no-any-return]
        _count_standard(prepared.document, operation_name)
        context.loaders.project(None)  # resolvers may read any column
        # When a field fails, graphql-core cancels the fields of its object (or list) still
        # running (`gather_with_cancel`): a load they await must stay whole for the other
        # fields awaiting it.
        context.loaders.share()
        result = execute(
            self.graphql_schema,
            prepared.document,
            root_value=ROOT_SOURCE,  # the root object the compiled executor's fields see
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # a bool is a TypeGuard
            **self.executor_kwargs,
        )
        if not isinstance(result, ExecutionResult):
            result = await result
        return result

    async def subscribe(
        self,
        prepared: Prepared,
        context: Any,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> tuple[GraphQLExecutor[Any], AsyncIterable[Any]] | ExecutionResult:
        """A subscription's executor and its stream of source events (each to be executed
        with it, see execution/fanout.py), or the result holding why there are none."""
        assert prepared.document is not None
        _count_standard(prepared.document, operation_name)
        executor = self._subscription_class.build(
            self.graphql_schema,
            prepared.document,
            context_value=context,
            raw_variable_values=variables,
            operation_name=operation_name,
        )
        if isinstance(executor, list):  # the variables do not fit
            return ExecutionResult(None, errors=executor)
        sources: Any = create_source_event_stream(executor)
        if executor.is_awaitable(sources):
            sources = await sources
        if not executor.is_async_iterable(sources):
            return sources  # type: ignore[no-any-return]  # the resolver's error
        return executor, sources


def _per_event_memos(base: type[GraphQLExecutor[Any]]) -> type[GraphQLExecutor[Any]]:
    """`base`, but each subscription event executes with memos of its own.

    graphql-core 3.3 makes each event's executor a shallow copy of the subscription's and
    so shares its memo of collected subfields, keyed by the identity of lists that are
    made anew for every event: each event added entries (about 3.4 KB per delivery) that
    lived as long as the subscription, gigabytes within the hour under steady traffic.
    Reproduction: subscribe, deliver events, and watch `len(executor._relevant_sub_fields)`
    of the subscription's executor grow by one entry per object field per event."""

    class PerEventMemos(base):  # type: ignore[valid-type, misc]
        def build_per_event_executor(self, payload: Any) -> GraphQLExecutor[Any]:
            executor: GraphQLExecutor[Any] = super().build_per_event_executor(payload)
            executor._relevant_sub_fields = {}
            executor._stream_usages = RefMap()
            return executor

    return PerEventMemos


def _count_standard(document: DocumentNode, operation_name: str | None) -> None:
    operation = pick_operation(document, operation_name)
    if operation is not None:  # else graphql-core only says that there is none
        metrics.record_execution("standard", operation.operation.value)


def error_entries(error: ClientError | ServerError) -> list[dict[str, Any]]:
    """A request's refusal as the response's `errors`: a document error lists its own
    errors (with their locations); any other error is one entry."""
    if isinstance(error, DocumentError) and error.errors:  # copies: transports add to them
        return [{**entry, "extensions": dict(entry["extensions"])} for entry in error.errors]
    if isinstance(error, ClientError):
        return [{"message": error.message, "extensions": dict(error.extensions)}]
    return [{"message": error.public_message, "extensions": {"code": error.code}}]


def format_errors(errors: Any, code: str = "BAD_USER_INPUT") -> list[dict[str, Any]]:
    """Errors as the response carries them; see the module docstring."""
    return [_format(error, code) for error in errors]


def _format(error: GraphQLError | ClientError, default_code: str) -> dict[str, Any]:
    if isinstance(error, ClientError):
        return {"message": error.message, "extensions": dict(error.extensions)}
    original = error.original_error
    formatted = error.formatted
    if original is None or isinstance(original, GraphQLError):
        extensions = dict(formatted.get("extensions") or {})
        extensions.setdefault("code", default_code)
        formatted["extensions"] = extensions
        return dict(formatted)
    if isinstance(original, ClientError):
        formatted["message"] = original.message
        formatted["extensions"] = dict(original.extensions)
        return dict(formatted)
    if isinstance(original, ServerError) and original.code != ServerError.code:
        log.warning("%s at %s: %s", original.code, error.path, original)
        formatted["message"] = original.public_message
        formatted["extensions"] = {"code": original.code}
        return dict(formatted)
    log.error("unexpected error at %s", error.path, exc_info=original)
    masked: dict[str, Any] = {"message": ServerError.public_message}
    if error.locations is not None:
        masked["locations"] = formatted.get("locations")
    if error.path is not None:
        masked["path"] = error.path
    masked["extensions"] = {"code": ServerError.code}
    return masked


def response_body(result: ExecutionResult) -> dict[str, Any]:
    """The response body of an execution result: `data` unless execution never started,
    and the `errors` formatted."""
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = format_errors(result.errors)
    # Execution errors (they have a path) leave `data`, null at worst; request errors
    # (bad variables) mean execution never started, and `data` is absent.
    executed = result.data is not None or any(e.path for e in result.errors or ())
    if executed or not result.errors:
        body["data"] = result.data
    return body
