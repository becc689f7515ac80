"""Running GraphQL documents: cached parse and validation, execution, error shaping.

Strawberry's own `Schema.execute` parses and validates every request again and logs every
client error with a traceback; here a bounded LRU keeps each distinct document parsed and
validated once, and errors are shaped in one place: client errors keep their message and
code, anything unexpected is logged in full and masked as INTERNAL.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    OperationType,
    execute,
    specified_rules,
    validate,
)
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema._graphql_core import execution_context_class_kwargs

from core.errors import ClientError, QueryTimeout, TransientError, Unavailable
from execution.fields import ROOT_SOURCE
from execution.limits import Limits, parse_within

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A document parsed and validated once; `errors` are its parse or validation errors."""

    document: DocumentNode | None
    errors: tuple[GraphQLError | ClientError, ...] = ()
    code: str | None = None
    # Cost analyses of its operations run without variables, by operation name: they
    # depend on nothing else, so each is made once.
    analyses: dict[str | None, Any] = field(default_factory=dict, compare=False)

    def operation(self, name: str | None) -> OperationDefinitionNode | None:
        assert self.document is not None
        found = [d for d in self.document.definitions if isinstance(d, OperationDefinitionNode)]
        if name is None:
            return found[0] if len(found) == 1 else None
        return next((d for d in found if d.name and d.name.value == name), None)


class Executor:
    def __init__(
        self,
        schema: strawberry.Schema,
        cache_size: int = 1024,
        limits: Limits | None = None,
        introspection: bool = True,
        compiled: Any = None,
    ) -> None:
        self.schema = schema
        # A faster executor for what it covers (resolvers/compiled.py): its `execute`
        # answers None for an operation it leaves to graphql-core.
        self.compiled = compiled
        self.limits = limits or Limits()
        # Without introspection, field suggestions ("did you mean …") are off too: they
        # would leak the schema piece by piece.
        self._rules = None if introspection else [*specified_rules, NoSchemaIntrospectionCustomRule]
        self._hide_suggestions = not introspection
        self.graphql_schema = schema._schema
        self.executor_kwargs = execution_context_class_kwargs(schema.execution_context_class)
        self._cache: OrderedDict[str, Prepared] = OrderedDict()
        self._cache_size = cache_size

    def prepare(self, query: str) -> Prepared:
        prepared = self._cache.get(query)
        if prepared is not None:
            self._cache.move_to_end(query)
            return prepared
        prepared = self._prepare(query)
        self._cache[query] = prepared
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return prepared

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse_within(query, self.limits)
        except GraphQLError as error:
            return Prepared(None, (error,), "GRAPHQL_PARSE_FAILED")
        except ClientError as error:  # over the token limit
            return Prepared(None, (error,), error.code)
        errors = validate(
            self.graphql_schema,
            document,
            rules=self._rules,
            hide_suggestions=self._hide_suggestions,
        )
        if errors:
            return Prepared(None, tuple(errors), "GRAPHQL_VALIDATION_FAILED")
        return Prepared(document)

    async def execute(
        self,
        prepared: Prepared,
        context: Any,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> ExecutionResult:
        assert prepared.document is not None
        if self.compiled is not None:
            fast = await self.compiled.execute(
                prepared.document, operation_name, context, variables
            )
            if fast is not None:
                return fast  # type: ignore[no-any-return]
        context.loaders.project(None)  # resolvers may read any column
        result = execute(
            self.graphql_schema,
            prepared.document,
            context_value=context,
            root_value=ROOT_SOURCE,
            variable_values=variables,
            operation_name=operation_name,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # a bool is a TypeGuard
            **self.executor_kwargs,
        )
        if not isinstance(result, ExecutionResult):
            result = await result
        return result


def format_errors(errors: Any, code: str = "BAD_USER_INPUT") -> list[dict[str, Any]]:
    """Errors as the response carries them; see the module docstring."""
    return [_format(error, code) for error in errors]


# Database failures the client should know about, with their codes; the rest is INTERNAL.
DATABASE_CODES: dict[type[Exception], tuple[str, str]] = {
    Unavailable: ("UNAVAILABLE", "The database is unavailable; retry in a few seconds."),
    QueryTimeout: ("TIMEOUT", "The query took too long and was stopped."),
    TransientError: ("UNAVAILABLE", "The database connection failed; retry."),
}


def _format(error: GraphQLError | ClientError, default_code: str) -> dict[str, Any]:
    if isinstance(error, ClientError):
        return {"message": error.message, "extensions": error.extensions}
    original = error.original_error
    formatted = error.formatted
    if original is None or isinstance(original, GraphQLError):
        extensions = dict(formatted.get("extensions") or {})
        extensions.setdefault("code", default_code)
        formatted["extensions"] = extensions
        return dict(formatted)
    if isinstance(original, ClientError):
        formatted["message"] = original.message
        formatted["extensions"] = original.extensions
        return dict(formatted)
    for kind, (code, message) in DATABASE_CODES.items():
        if isinstance(original, kind):
            log.warning("database failure at %s: %s", error.path, original)
            formatted["message"] = message
            formatted["extensions"] = {"code": code}
            return dict(formatted)
    log.error("unexpected error at %s", error.path, exc_info=original)
    masked: dict[str, Any] = {"message": "Internal server error."}
    if error.locations is not None:
        masked["locations"] = formatted.get("locations")
    if error.path is not None:
        masked["path"] = error.path
    masked["extensions"] = {"code": "INTERNAL"}
    return masked


def operation_type(prepared: Prepared, name: str | None) -> OperationType | None:
    operation = prepared.operation(name)
    return operation.operation if operation is not None else None
