"""A compiled executor: a whole query fetched level by level, with no per-field machinery.

graphql-core resolves a response field by field: for each of thousands of fields it builds
an info object, calls a resolver, checks for awaitables and completes the value, which
costs several microseconds a field (and much more for async resolvers). Here a plan is
built once per (document, operation, @skip/@include variables) from the validated
document: fragments merged, directives applied, each field bound to the need it was
declared with (execution/fields.py, execution/connection.py), fields collected as the
limits collect them (execution/selections.py). Executing a plan resolves each field for
all its parents at once (one loader batch per field per level; all fields of a level
concurrently, so their loaders batch together) and writes plain dicts in selection order,
with code generated per selected type (execution/_shapes.py). A plan also records which
optional columns of each table its fields read, and narrows the request's loaders to them,
and which rows its rows point to (an issue's author), which the statements reading them
then join: the fields that follow such a pointer find their rows loaded (loaders/rows.py,
`Join`). And a plan knows which of its objects PostgreSQL can write whole (a comment with its
author's login, a project with a page of its issues and theirs of comments, cursors and
pageInfo included: execution/rendered.py); the statements reading their rows write each as
the object's JSON text, which the response embeds as it is (an orjson `Fragment`), and the
lists inside cost no statement of their own.

It follows graphql-core's semantics for what it covers: aliases, fragments, @skip/@include,
__typename, abstract types, argument and variable coercion, errors with paths and
locations, and null propagation to the nearest nullable parent. It covers queries whose
every field has a declared need; anything else (introspection, mutations, subscriptions,
fields without a need) returns None so that the standard executor runs it. A differential
test runs every query through both and compares data and errors.
"""

from __future__ import annotations

import asyncio
import weakref
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_argument_values,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    located_error,
)
from graphql.execution.values import get_directive_values, get_variable_values
from orjson import Fragment
from strawberry import Schema
from strawberry.types.arguments import convert_argument

from execution._shapes import Shape, enum_value
from execution.connection import Pages, resolve_pages
from execution.fields import ROOT_SOURCE, Attr, Each, Row, need_of
from execution.ids import NAMES, NODES
from execution.rendered import rendering, renderings
from execution.selections import collect_fields, fragments_of, pick_operation
from loaders import PageRequest
from loaders.rendered import Entry, Rendering
from loaders.rows import COLUMNS

__all__ = ["ROOT_SOURCE", "CompiledExecutor"]
TYPENAME = "__typename"
PLANS_PER_DOCUMENT = 16
Need = Attr | Row | Each | Pages
Object = dict[str, Any] | Fragment  # an object of the response: built, or PostgreSQL's text


class NotCompilable(Exception):
    """The operation uses something this executor does not cover."""


@dataclass(slots=True)
class FieldPlan:
    key: str
    name: str
    nodes: list[FieldNode]
    need: Need | None  # None: __typename
    definition: Any
    nullable: bool
    is_list: bool
    item_nullable: bool
    serialize: Any = None
    children: dict[str, Shape] | None = None
    arguments: Any = None  # the Strawberry field's arguments by GraphQL name, if any


@dataclass(slots=True)
class Plan:
    operation: OperationDefinitionNode
    root: Shape
    root_type: str
    columns: dict[type, frozenset[str]]  # the optional columns its fields read, by row type
    joins: dict[type, frozenset[tuple[str, Any]]]  # the rows its rows point to, by row type
    renders: tuple[Rendering, ...]  # the objects PostgreSQL may write (execution/rendered.py)
    lists: tuple[tuple[Entry, FieldPlan], ...]  # the lists they write, with their fields


@dataclass(slots=True)
class _Known:
    """What the executor keeps of a document: the variables its @skip/@include read, and
    its plans by operation and those variables' values."""

    directive_variables: tuple[str, ...]
    plans: dict[tuple[Any, ...], Plan | None] = field(default_factory=dict)


@dataclass(slots=True)
class _Run:
    context: Any
    variables: Any
    convert: Callable[[dict[str, Any], tuple[tuple[str, Any], ...]], dict[str, Any]]
    errors: list[GraphQLError] = field(default_factory=list)


_ERROR = object()


def _serializer(named: Any) -> Any:
    """How a leaf's value becomes its JSON value; None: as it is. DateTime values stay
    datetimes: the response's encoder (core/encoding.py) writes them as the same RFC 3339
    text as the scalar, several times faster."""
    if isinstance(named, GraphQLEnumType):
        return enum_value
    return None


class CompiledExecutor:
    def __init__(self, schema: Schema) -> None:
        self.schema: GraphQLSchema = schema._schema
        self._config = schema.config
        self._scalars = schema.schema_converter.scalar_registry
        # What is known of a document lives as long as it does (the document cache bounds
        # both, by count and by bytes): keyed by `id(document)`, a plan could outlive its
        # document and answer a later one given the same address.
        self._documents: weakref.WeakKeyDictionary[DocumentNode, _Known]
        self._documents = weakref.WeakKeyDictionary()

    async def execute(
        self,
        document: DocumentNode,
        operation_name: str | None,
        context: Any,
        variables: dict[str, Any] | None,
    ) -> ExecutionResult | None:
        """The result, or None when the standard executor must run this operation."""
        operation = pick_operation(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        coerced = get_variable_values(
            self.schema, operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            return ExecutionResult(data=None, errors=coerced)
        plan = self._plan(document, operation, coerced)
        if plan is None:
            return None
        pages = self._pages(plan, context, coerced) if plan.lists else None
        context.loaders.project(plan.columns, plan.joins, plan.renders, pages)
        run = _Run(context, coerced, self._convert)
        results = await _objects(run, {plan.root_type: plan.root}, [ROOT_SOURCE], [()])
        data = results[0]
        assert not isinstance(data, Fragment)  # (the root is no row's)
        return ExecutionResult(data=data, errors=run.errors or None)

    def _plan(
        self, document: DocumentNode, operation: OperationDefinitionNode, variables: Any
    ) -> Plan | None:
        known = self._documents.get(document)
        if known is None:  # which variables @skip/@include use: one walk per document
            known = _Known(tuple(sorted(_directive_variables(document))))
            self._documents[document] = known
        key = (
            operation.name.value if operation.name else None,
            *((name, repr(variables.coerced.get(name))) for name in known.directive_variables),
        )
        if key in known.plans:
            return known.plans[key]
        try:
            plan: Plan | None = _Planner(self, document, variables).plan(operation)
        except NotCompilable:
            plan = None
        if len(known.plans) < PLANS_PER_DOCUMENT:  # per operation and @skip/@include values
            known.plans[key] = plan
        return plan

    def _pages(self, plan: Plan, context: Any, variables: Any) -> dict[Entry, PageRequest]:
        """The page request of each list that PostgreSQL may write, where its arguments
        make one (where they do not, the list is read as the executor reaches it, which
        reports the error at its path)."""
        found = {}
        for entry, listed in plan.lists:
            need = listed.need
            assert isinstance(need, Pages)
            try:
                values = get_argument_values(listed.definition, listed.nodes[0], variables)
                arguments = self._convert(values, listed.arguments) if listed.arguments else {}
                found[entry] = need.request(arguments, context)
            except Exception:  # (reported where the executor meets it)
                continue
        return found

    def _convert(
        self, values: dict[str, Any], declared: tuple[tuple[str, Any], ...]
    ) -> dict[str, Any]:
        """A field's argument values as its resolver takes them, as graphql-core's path gets
        them: by Python name, input objects made into their Strawberry classes. Scalars and
        enums are already what the resolver takes (graphql-core coerced them): Strawberry's
        own conversion, which resolves each argument's type again, costs far more."""
        converted: dict[str, Any] = {}
        for graphql_name, argument in declared:
            if graphql_name in values:
                value = values[graphql_name]
                if isinstance(value, dict | list):
                    value = convert_argument(value, argument.type, self._scalars, self._config)
                converted[argument.python_name] = value
        return converted

    def arguments(self, definition: Any) -> tuple[tuple[str, Any], ...]:
        """The Strawberry arguments of a field, with their GraphQL names."""
        name_of = self._config.name_converter.get_graphql_name
        declared = definition.extensions["strawberry-definition"].arguments
        return tuple((name_of(argument), argument) for argument in declared)


def _directive_variables(document: DocumentNode) -> set[str]:
    found: set[str] = set()

    def visit(node: Any) -> None:
        for directive in getattr(node, "directives", None) or ():
            for argument in directive.arguments or ():
                if argument.value.kind == "variable":
                    found.add(argument.value.name.value)
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            for selection in selection_set.selections:
                visit(selection)

    for definition in document.definitions:
        visit(definition)
    return found


class _Planner:
    def __init__(self, owner: CompiledExecutor, document: DocumentNode, variables: Any) -> None:
        self.owner = owner
        self.schema = owner.schema
        self.variables = variables
        self.fragments = fragments_of(document)
        self.columns: dict[type, set[str]] = {}
        self.joins: dict[type, set[tuple[str, Any]]] = {}
        self.lists: dict[Entry, FieldPlan] = {}  # connection entries, with their fields

    def _reads(self, type_name: str, need: Need) -> None:
        """Note the optional columns of the parent's row a field reads (the rows it points
        to are noted once the plan knows which objects PostgreSQL writes: `_joins`)."""
        kind = NODES.get(type_name)
        if kind is None:
            return
        row = kind.row
        if isinstance(need, Attr):
            names: Sequence[str] = (need.name,)
        elif isinstance(need, Each):
            names = need.reads
        else:
            return
        optional = COLUMNS[row].optional
        self.columns.setdefault(row, set()).update(n for n in names if n in optional)

    def plan(self, operation: OperationDefinitionNode) -> Plan:
        root = self.schema.query_type
        assert root is not None
        shape = self.shape(root, [operation.selection_set])
        renders = renderings(shape)
        self._joins(shape)
        columns = {row: frozenset(names) for row, names in self.columns.items()}
        joins = {row: frozenset(pairs) for row, pairs in self.joins.items()}
        lists = {entry: self.lists[entry] for r in renders for entry, _parent in r.lists}
        return Plan(operation, shape, root.name, columns, joins, renders, tuple(lists.items()))

    def _joins(self, shape: Shape) -> None:
        """Note the rows each row points to, which the statements reading it may join: not
        under an object PostgreSQL writes (its rows are in its text; should a statement
        not write it, the pointer costs a statement, as without a join)."""
        if shape.render is not None:
            return
        kind = NODES.get(shape.type_name)
        for plan in shape.fields:
            need = plan.need
            if kind is not None and isinstance(need, Row):
                self.joins.setdefault(kind.row, set()).add((need.key, need.loader))
            for child in (plan.children or {}).values():
                self._joins(child)

    def shape(self, parent: GraphQLObjectType, selection_sets: Sequence[SelectionSetNode]) -> Shape:
        grouped = collect_fields(
            self.schema, self.fragments, parent, selection_sets, self._included
        )
        fields = [self._field(parent, key, nodes) for key, nodes in grouped.items()]
        shape = Shape(parent.name, fields)
        shape.render = rendering(shape, self.lists)
        return shape

    def _included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and include.get("if") is False)

    def _field(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> FieldPlan:
        name = nodes[0].name.value
        if name == TYPENAME:
            return FieldPlan(key, name, nodes, None, None, False, False, False)
        if name.startswith("__"):
            raise NotCompilable(name)
        definition = parent.fields[name]
        need = need_of(definition)
        if need is None:
            raise NotCompilable(f"{parent.name}.{name}")
        self._reads(parent.name, need)
        plan = FieldPlan(
            key,
            name,
            nodes,
            need,
            definition,
            nullable=not isinstance(definition.type, GraphQLNonNull),
            is_list=False,
            item_nullable=True,
            arguments=self.owner.arguments(definition) if definition.args else None,
        )
        inner = (
            definition.type.of_type
            if isinstance(definition.type, GraphQLNonNull)
            else definition.type
        )
        if isinstance(inner, GraphQLList):
            plan.is_list = True
            plan.item_nullable = not isinstance(inner.of_type, GraphQLNonNull)
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            plan.serialize = _serializer(named)
            return plan
        possible = self.schema.get_possible_types(named) if is_abstract_type(named) else [named]
        sets = [n.selection_set for n in nodes if n.selection_set is not None]
        plan.children = {t.name: self.shape(t, sets) for t in possible}
        return plan


async def _objects(
    run: _Run, shapes: dict[str, Shape], sources: list[Any], paths: Any
) -> list[Object | None]:
    """Complete objects of one (possibly abstract) type; None where null propagated (or
    where the source itself is None: a null item of a list that may hold nulls)."""
    if None in sources:
        present = [i for i, s in enumerate(sources) if s is not None]
        completed_present = (
            await _objects(run, shapes, [sources[i] for i in present], [paths[i] for i in present])
            if present
            else []
        )
        out: list[Object | None] = [None] * len(sources)
        for position, value in zip(present, completed_present, strict=True):
            out[position] = value
        return out
    if len(shapes) == 1:
        for shape in shapes.values():
            return await _typed(run, shape, sources, paths)
    groups: dict[str, list[int]] = {}
    for i, source in enumerate(sources):
        groups.setdefault(NAMES[type(source)], []).append(i)
    grouped: list[Object | None] = [None] * len(sources)
    # spread: each type resolves its fields in tasks one level down, so that the loads of
    # every type register in the same loop tick and batch together
    done = await asyncio.gather(
        *(
            _typed(run, shapes[name], [sources[i] for i in idx], [paths[i] for i in idx], True)
            for name, idx in groups.items()
        )
    )
    for (_name, idx), completed in zip(groups.items(), done, strict=True):
        for i, result in zip(idx, completed, strict=True):
            grouped[i] = result
    return grouped


async def _typed(
    run: _Run, shape: Shape, sources: list[Any], paths: Any, spread: bool = False
) -> list[Object | None]:
    """One type's objects of a level: the resolved fields for all of them at once (all
    concurrently, so that their loaders batch together), then the objects, then their
    object fields, level by level. `spread`: resolve even a single field in a task of its
    own (the types of an abstract field do, see `_objects`)."""
    if shape.render is not None:  # written by PostgreSQL, if the statement could
        texts = run.context.loaders.rendered.get(shape.render)
        if texts is not None:
            written = [texts.get(s.id) for s in sources]
            if None not in written:
                return list(map(Fragment, written))
    fields, type_name = shape.fields, shape.type_name
    columns: list[Any] = [None] * len(fields)
    for n in shape.attributes:
        name = fields[n].need.name  # type: ignore[union-attr]
        columns[n] = [getattr(s, name) for s in sources]
    if shape.resolved:
        pending = []
        for n in shape.resolved:
            column = _loaded_rows(run, fields[n], sources)
            if column is None:
                pending.append(n)
            else:
                columns[n] = column
        if pending:
            waiting = [_resolve(run, type_name, fields[n], sources, paths) for n in pending]
            many = len(waiting) > 1 or spread
            done = await asyncio.gather(*waiting) if many else [await waiting[0]]
            for n, column in zip(pending, done, strict=True):
                columns[n] = column
    dead: list[bool] | None = None
    if shape.clean(sources) and all(
        _ERROR not in columns[n] and (fields[n].nullable or None not in columns[n])
        for n in shape.leaves
    ):
        results = shape.build(sources, columns)
    else:
        dead = [False] * len(sources)
        results = _build_checked(run, shape, sources, columns, dead, paths)
    if shape.nested:
        if dead is None:
            dead = [False] * len(sources)
        completing = [
            _complete(run, type_name, fields[n], columns[n], results, dead, paths)
            for n in shape.nested
        ]
        if len(completing) > 1:
            await asyncio.gather(*completing)
        else:
            await completing[0]
    if dead is None or True not in dead:
        return results  # type: ignore[return-value]
    return [None if dead[i] else results[i] for i in range(len(sources))]


def _build_checked(
    run: _Run,
    shape: Shape,
    sources: list[Any],
    columns: list[Any],
    dead: list[bool],
    paths: Any,
) -> list[dict[str, Any]]:
    """The objects, value by value: where a value that may not be null is null or failed,
    the error is reported and the object marked dead (its parent then nulls it)."""
    count = len(sources)
    row_values: list[list[Any]] = []
    for n, plan in enumerate(shape.fields):
        need = plan.need
        if plan.children is not None:
            row_values.append([None] * count)  # keeps the selection order; filled later
        elif need is None:
            row_values.append([shape.type_name] * count)
        else:
            if type(need) is Attr:
                columns[n] = [getattr(s, need.name) for s in sources]
            row_values.append(_leaves(run, shape.type_name, plan, columns[n], dead, paths))
    keys = [plan.key for plan in shape.fields]
    if not keys:  # every field skipped: empty objects
        return [{} for _ in range(count)]
    return [dict(zip(keys, values, strict=True)) for values in zip(*row_values, strict=True)]


def _leaves(
    run: _Run,
    type_name: str,
    plan: FieldPlan,
    values: list[Any],
    dead: list[bool],
    paths: Any,
) -> list[Any]:
    """A column of serialized leaf values; nulls and errors where a value may not be null
    kill their object."""
    if None in values or _ERROR in values:
        values = list(values)
        for i, value in enumerate(values):
            if value is _ERROR or value is None:
                values[i] = None
                if not plan.nullable:
                    if value is None:
                        _null_error(run, type_name, plan, paths[i])
                    dead[i] = True
    serialize = plan.serialize
    if serialize is None:
        return values
    if plan.is_list:
        return [None if v is None else [serialize(x) for x in v] for v in values]
    return [None if v is None else serialize(v) for v in values]


async def _complete(
    run: _Run,
    type_name: str,
    plan: FieldPlan,
    values: list[Any],
    results: list[dict[str, Any]],
    dead: list[bool],
    paths: Any,
) -> None:
    """Complete a field of objects (or lists of objects) for every parent at once."""
    assert plan.children is not None
    if _ERROR not in values and None not in values:
        if not plan.is_list:
            return await _complete_each(run, plan, values, results, dead, paths)
        if not any(None in value for value in values):
            return await _complete_lists(run, plan, values, results, dead, paths)
    key = plan.key
    sources: list[Any] = []
    spans: list[tuple[int, int, int]] = []  # parent index, start in sources, length (-1: one)
    for i, value in enumerate(values):
        if value is _ERROR or value is None:
            if not plan.nullable:
                if value is None:
                    _null_error(run, type_name, plan, paths[i])
                dead[i] = True
            continue
        if not plan.is_list:
            spans.append((i, len(sources), -1))
            sources.append(value)
            continue
        if None in value:
            value = _drop_null_items(run, type_name, plan, value, results, dead, i, paths[i])
            if value is None:
                continue
        spans.append((i, len(sources), len(value)))
        sources.extend(value)
    if not sources:
        for i, _start, _length in spans:
            results[i][key] = []
        return
    completed = await _objects(run, plan.children, sources, _ChildPaths(paths, key, lambda: spans))
    for i, start, length in spans:
        if length < 0:
            result = completed[start]
            results[i][key] = result
            if result is None and not plan.nullable:
                dead[i] = True
            continue
        items = completed[start : start + length]
        if not plan.item_nullable and None in items:
            results[i][key] = None
            if not plan.nullable:
                dead[i] = True
        else:
            results[i][key] = items


async def _complete_each(
    run: _Run,
    plan: FieldPlan,
    values: list[Any],
    results: list[dict[str, Any]],
    dead: list[bool],
    paths: Any,
) -> None:
    """`_complete` where every parent has an object."""
    assert plan.children is not None
    key = plan.key

    def spans() -> list[tuple[int, int, int]]:
        return [(i, i, -1) for i in range(len(values))]

    completed = await _objects(run, plan.children, values, _ChildPaths(paths, key, spans))
    for result, value in zip(results, completed, strict=True):
        result[key] = value
    if not plan.nullable and None in completed:
        for i, value in enumerate(completed):
            if value is None:
                dead[i] = True


async def _complete_lists(
    run: _Run,
    plan: FieldPlan,
    values: list[Any],
    results: list[dict[str, Any]],
    dead: list[bool],
    paths: Any,
) -> None:
    """`_complete` where every parent has a list without null items."""
    assert plan.children is not None
    key = plan.key
    sources = [item for value in values for item in value]
    if not sources:
        for result in results:
            result[key] = []
        return

    def spans() -> list[tuple[int, int, int]]:
        found, start = [], 0
        for i, value in enumerate(values):
            found.append((i, start, len(value)))
            start += len(value)
        return found

    completed = await _objects(run, plan.children, sources, _ChildPaths(paths, key, spans))
    start = 0
    if plan.item_nullable or None not in completed:
        for result, value in zip(results, values, strict=True):
            end = start + len(value)
            result[key] = completed[start:end]
            start = end
        return
    for i, (result, value) in enumerate(zip(results, values, strict=True)):
        end = start + len(value)
        items = completed[start:end]
        start = end
        if None in items:
            result[key] = None
            if not plan.nullable:
                dead[i] = True
        else:
            result[key] = items


class _ChildPaths:
    """The paths of a field's children, made only when one is asked for (for an error):
    building a path per object costs more than the rest of a cheap field. `spans` gives
    (parent index, start among the children, length; -1 for a single object)."""

    def __init__(
        self, parents: Any, key: str, spans: Callable[[], list[tuple[int, int, int]]]
    ) -> None:
        self._parents = parents
        self._key = key
        self._made = spans
        self._spans: list[tuple[int, int, int]] = []
        self._starts: list[int] = []

    def _span(self, position: int) -> tuple[int, int, int]:
        if not self._spans:
            self._spans = self._made()
            self._starts = [start for _, start, _ in self._spans]
        found = self._spans[bisect_right(self._starts, position) - 1]
        _parent, start, length = found
        if position < 0 or position >= start + max(length, 1):
            raise IndexError(position)
        return found

    def __getitem__(self, position: int) -> tuple[Any, ...]:
        parent, start, length = self._span(position)
        if length < 0:
            return (self._parents[parent], self._key)
        return (self._parents[parent], self._key, position - start)


def _drop_null_items(
    run: _Run,
    type_name: str,
    plan: FieldPlan,
    value: list[Any],
    results: list[dict[str, Any]],
    dead: list[bool],
    i: int,
    parent: Any,
) -> Any:
    """A list with null items: fine where items may be null (they are completed as nulls),
    else the error graphql-core reports and a null list."""
    if plan.item_nullable:
        return _NullableItems(value)
    for j, item in enumerate(value):
        if item is None:
            _null_error(run, type_name, plan, (parent, plan.key, j))
            break
    results[i][plan.key] = None
    if not plan.nullable:
        dead[i] = True
    return None


class _NullableItems(list[Any]):
    """Items of a list that may hold nulls; `_objects` completes a None source as null."""


def _path(path: Any) -> list[Any]:
    """Paths are linked (parent, key[, index]) tuples, built for every object but turned
    into lists only for the rare error."""
    keys: list[Any] = []
    while path:
        keys[:0] = path[1:]
        path = path[0]
    return keys


def _null_error(run: _Run, type_name: str, plan: FieldPlan, path: Any) -> None:
    message = f"Cannot return null for non-nullable field {type_name}.{plan.name}."
    run.errors.append(located_error(TypeError(message), plan.nodes, _path(path)))


def _loaded_rows(run: _Run, plan: FieldPlan, sources: list[Any]) -> list[Any] | None:
    """The column of a to-one field whose rows are all loaded already (the statement that
    read the sources joined them), without a task: None when some must still be read."""
    need = plan.need
    if type(need) is not Row:
        return None
    key = need.key
    keys = [getattr(s, key) for s in sources]
    known = need.of(run.context.loaders).known
    if not known.keys() >= set(keys) - {None}:
        return None
    return [None if k is None else known[k] for k in keys]


async def _resolve(
    run: _Run, type_name: str, plan: FieldPlan, sources: list[Any], paths: Any
) -> list[Any]:
    need = plan.need
    if need is None:
        return [type_name] * len(sources)
    if isinstance(need, Attr):
        name = need.name
        return [getattr(s, name) for s in sources]
    context = run.context
    try:
        args = (
            run.convert(
                get_argument_values(plan.definition, plan.nodes[0], run.variables),
                plan.arguments,
            )
            if plan.arguments is not None
            else {}
        )
        if isinstance(need, Row):
            keys = [getattr(s, need.key) for s in sources]
            loader = need.of(context.loaders)
            await loader.load_all({k for k in keys if k is not None})
            known = loader.known
            return [None if k is None else known.get(k) for k in keys]
        if isinstance(need, Pages):
            return await resolve_pages(need, context, sources, args)
    except Exception as error:  # the same error for every parent, as graphql-core reports it
        for i in range(len(sources)):
            _error(run, plan, paths[i], error)
        return [_ERROR] * len(sources)
    assert isinstance(need, Each)
    return await _each(run, plan, need, sources, paths, args)


async def _each(
    run: _Run,
    plan: FieldPlan,
    need: Each,
    sources: list[Any],
    paths: Any,
    args: dict[str, Any],
) -> list[Any]:
    fn, context = need.fn, run.context
    if need.batch is not None and not args:
        try:
            return need.batch(context, sources)
        except Exception as error:  # the same error for every parent
            for i in range(len(sources)):
                _error(run, plan, paths[i], error)
            return [_ERROR] * len(sources)
    values: list[Any] = []
    pending: list[tuple[int, Any]] = []
    for i, source in enumerate(sources):
        try:
            value = fn(context, source, **args) if args else fn(context, source)
        except Exception as error:
            _error(run, plan, paths[i], error)
            value = _ERROR
        if hasattr(type(value), "__await__"):  # (inspect.isawaitable is much slower)
            pending.append((i, value))
        values.append(value)
    if pending:
        done = await asyncio.gather(*(a for _, a in pending), return_exceptions=True)
        for (i, _), value in zip(pending, done, strict=True):
            if isinstance(value, Exception):
                _error(run, plan, paths[i], value)
                value = _ERROR
            values[i] = value
    return values


def _error(run: _Run, plan: FieldPlan, path: Any, error: Exception) -> None:
    run.errors.append(located_error(error, plan.nodes, [*_path(path), plan.key]))
