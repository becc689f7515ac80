"""Fields declared once: what each field of the schema needs, and both ways of resolving it.

A field of an object type is declared once, in the Strawberry class, with its type (the
class annotation), its description, its arguments and the data it needs:

    name: str = strawberry.field(description=…)      an attribute of the row (no resolver)
    author: User = to_one(Loaders.user_by_id, "author_id", …)
                                                      the row that a key of this row names
    email: str | None = value(_email, …, reads=("email",))
                                                      a value per object: fn(context, row,
                                                      **arguments), sync or async; the field's
                                                      arguments are fn's keyword parameters;
                                                      `by_viewer=False` when it depends on the
                                                      row and the loaders alone
    issues: Connection[Issue] = connection(…)         a page of a list per object
                                                      (execution/connection.py)

Each returns a Strawberry field that carries its `Need` in its metadata. graphql-core (which
runs mutations' payloads, subscriptions and the differential tests) calls the resolver made
here from the need, one object at a time through the per-request DataLoaders; the compiled
executor reads the same need (`need_of`) and resolves the field for a whole level of objects
at once. Sources are loader rows (loaders/rows.py) in both: a node type's `is_type_of` knows
its row class (`node`).

`by_viewer(need)` says whether a field's value may differ between two viewers who read
through the same loaders' scope (their identity, roles or session, not only what they may
see): subscriptions share one execution of an event among subscribers whose selection
reads no such field (execution/fanout.py). An attribute or a row by key never does; a
value or a page does unless its declaration says otherwise; a field with a resolver of its
own is assumed to.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLField
from strawberry.types import Info
from strawberry.types.field import StrawberryField

from domain.context import Context
from execution.ids import NodeKind, register, register_row
from loaders import Loaders, using
from loaders._base import RowLoader

NEED = "need"  # the key of a field's need in its Strawberry metadata
DEFINITION = "strawberry-definition"  # where Strawberry keeps its field in graphql-core's


class Root:
    """The parent of the root fields, for both executors: root lists page under id 0."""

    __slots__ = ()
    id = 0


ROOT_SOURCE = Root()


@dataclass(frozen=True, slots=True)
class Attr:
    """An attribute of the row, read as it is."""

    name: str


@dataclass(frozen=True, slots=True)
class Row:
    """The row a key of the parent row names, from a by-key loader (null for a null key).
    `loader` is the `Loaders` property itself, so no name is looked up."""

    loader: Callable[[Loaders], RowLoader[Any, Any]]
    key: str

    def of(self, loaders: Loaders) -> RowLoader[Any, Any]:
        return using(self.loader, loaders)


@dataclass(frozen=True, slots=True)
class Each:
    """A value per object from fn(context, row, **arguments), sync or async. `reads` names
    the optional columns (loaders/rows.py) of the row that fn reads; `sized_by` names a list
    argument whose length is the number of objects the field fetches (its cost, as a page
    size is a connection's); `batch`, fn for a whole level."""

    fn: Callable[..., Any]
    reads: tuple[str, ...] = ()
    sized_by: str | None = None
    # The values of a whole level at once, batch(context, rows) (for a field without
    # arguments whose values cost less made together: a page's cursors): what the
    # compiled executor calls, where graphql-core calls fn object by object.
    batch: Callable[[Context, Sequence[Any]], list[Any]] | None = None
    # False when fn reads only the row and the loaders (whose scope says what the viewer
    # may see), never who the viewer is: see `by_viewer`
    by_viewer: bool = True
    # How PostgreSQL writes the same value, where it can (a kind of loaders/rendered.py's
    # `Entry`: "global_id"), so that a level of objects can be written there whole.
    rendered: str | None = None


def need_of(definition: GraphQLField) -> Any:
    """The declared need of a graphql-core field: an Attr, Row, Each or Pages; None for a
    field with a resolver of its own (mutations, subscriptions)."""
    field = (definition.extensions or {}).get(DEFINITION)
    if not isinstance(field, StrawberryField):
        return None
    need = field.metadata.get(NEED)
    if need is None and field.base_resolver is None:
        return Attr(field.python_name)
    return need


def by_viewer(need: Any) -> bool:
    """Whether the value of a field with this need may differ between two viewers of the
    same scope; see the module docstring."""
    if isinstance(need, Attr | Row):
        return False
    if isinstance(need, Each):
        return need.by_viewer
    return True  # a page (its parent, order and filters may read the viewer), a resolver


def declared(
    need: Any,
    resolve: Callable[..., Any],
    description: str,
    parameters: Sequence[inspect.Parameter] = (),
    module: str = __name__,
    name: str | None = None,
) -> Any:
    """A Strawberry field resolved by `resolve(root, info, **arguments)`, with the given
    argument parameters (their annotations as Strawberry reads them), carrying `need`."""
    resolve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Info),
            *parameters,
        ]
    )
    resolve.__module__ = module  # string annotations resolve where they were written
    return strawberry.field(
        resolver=resolve, description=description, metadata={NEED: need}, name=name
    )


def to_one(loader: Callable[[Loaders], RowLoader[Any, Any]], key: str, description: str) -> Any:
    """The row that the parent row's `key` names, through the by-key `loader`."""
    need = Row(loader, key)

    def resolve(root: Any, info: Info[Context, Any]) -> Any:
        value = getattr(root, key)
        return None if value is None else need.of(info.context.loaders).load(value)

    return declared(need, resolve, description)


def value(
    fn: Callable[..., Any],
    description: str,
    *,
    reads: tuple[str, ...] = (),
    sized_by: str | None = None,
    name: str | None = None,
    batch: Callable[[Context, Sequence[Any]], list[Any]] | None = None,
    by_viewer: bool = True,
    rendered: str | None = None,
) -> Any:
    """A value per object from fn(context, row, **arguments); the field's arguments are fn's
    parameters after the first two, with their annotations and defaults. `name` is its
    GraphQL name where it is not the attribute's in camelCase (`bodyHTML`). `batch(context,
    rows)`, for a field without arguments, gives the compiled executor a whole level's
    values at once (it must answer as fn does, row by row). `by_viewer=False` declares that
    fn reads only the row and the loaders, never who the viewer is. `rendered` names how
    PostgreSQL writes the same value (see `Each`)."""
    need = Each(fn, reads, sized_by, batch, by_viewer, rendered)

    def resolve(root: Any, info: Info[Context, Any], **arguments: Any) -> Any:
        return fn(info.context, root, **arguments)

    parameters = list(inspect.signature(fn).parameters.values())[2:]
    keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters]
    return declared(need, resolve, description, keyword, fn.__module__, name)


def flag(check: Callable[[Context, Any, str], Any], action: str, description: str) -> Any:
    """Whether the policy lets the viewer do `action` on the row: check(context, row, action)."""
    return value(lambda context, row: check(context, row, action), description)


def node(
    row: type, by_id: Callable[[Loaders], RowLoader[Any, Any]], description: str
) -> Callable[[type], Any]:
    """A Strawberry node type whose objects are `row`s: registered for global ids and
    `node(id:)`, and recognised by its row class wherever the schema returns `Node`."""

    def make(cls: type) -> Any:
        register(NodeKind(cls.__name__, row, by_id))
        return _of_rows(cls, row, description)

    return make


def typed(row: type, description: str) -> Callable[[type], Any]:
    """A Strawberry type whose objects are `row`s, recognised by their class wherever the
    schema returns a union or an interface (both executors)."""

    def make(cls: type) -> Any:
        register_row(cls.__name__, row)
        return _of_rows(cls, row, description)

    return make


def _of_rows(cls: type, row: type, description: str) -> Any:
    def is_type_of(_cls: type, obj: Any, info: Any) -> bool:
        return type(obj) is row

    cls.is_type_of = classmethod(is_type_of)  # type: ignore[attr-defined]
    return strawberry.type(cls, description=description)
