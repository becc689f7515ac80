"""Code generated per selection: a level's objects built without a call per field.

For each object type a compiled plan selects, a `Shape` holds its fields in selection
order and two functions generated from them once, when the plan is made:

    clean(S)     whether every source row has a value for each non-null attribute field
                 (but those read off a table's column that is NOT NULL)
    build(S, C)  the objects of a level: one dict display per source row, with each
                 attribute read and serialised inline, the values of resolved fields taken
                 from their columns in C, and None in the place of object fields (which
                 the executor fills in afterwards)

For the question "is anything here null that may not be?", `clean` and a containment test
per resolved column answer for the whole level at once; only when one says yes does the
executor take the general path, value by value, to report the errors and null what it
must. Generated source only ever spells names the schema defined (GraphQL names and the
rows' attribute names, both identifiers) and `repr`s of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from execution.fields import Attr
from execution.ids import NODES
from loaders.rendered import Rendering
from loaders.rows import COLUMNS

if TYPE_CHECKING:
    from execution.compiled import FieldPlan


def enum_value(value: Any) -> Any:
    return value if isinstance(value, str) else value.value


@dataclass(slots=True)
class Shape:
    type_name: str
    fields: list[FieldPlan]
    resolved: list[int] = field(default_factory=list)  # fields whose values are awaited
    attributes: list[int] = field(default_factory=list)  # object fields read off the row
    nested: list[int] = field(default_factory=list)  # object fields, completed afterwards
    leaves: list[int] = field(default_factory=list)  # resolved leaves
    clean: Callable[[list[Any]], bool] = lambda sources: True
    build: Callable[[list[Any], list[Any]], list[dict[str, Any]]] = lambda s, c: []
    render: Rendering | None = None  # how PostgreSQL writes its objects (execution/rendered.py)

    def __post_init__(self) -> None:
        for n, plan in enumerate(self.fields):
            if plan.need is None:
                continue
            if plan.children is not None:
                self.nested.append(n)
                (self.attributes if type(plan.need) is Attr else self.resolved).append(n)
            elif type(plan.need) is not Attr:
                self.resolved.append(n)
                self.leaves.append(n)
        self.clean, self.build = _generate(self)


def _generate(shape: Shape) -> tuple[Any, Any]:
    namespace: dict[str, Any] = {"enum_value": enum_value}
    kind = NODES.get(shape.type_name)
    table = COLUMNS[kind.row] if kind is not None else None
    # a row's column that may not hold NULL needs no check (a selected optional column is
    # read, so only what the table allows to be NULL can be)
    never_null = frozenset(table.names) - table.nullable if table is not None else frozenset()
    entries: list[str] = []
    required: list[str] = []
    for n, plan in enumerate(shape.fields):
        key = repr(plan.key)
        if plan.need is None:
            entries.append(f"{key}: {shape.type_name!r}")
            continue
        if plan.children is not None:
            entries.append(f"{key}: None")
            continue
        present = False  # known not to be None by the time build runs
        if type(plan.need) is Attr:
            value = f"s.{plan.need.name}"
            if not plan.nullable:
                if plan.need.name not in never_null:
                    required.append(f"{value} is None")
                present = True
        else:
            value = f"C{n}[i]"
            present = not plan.nullable  # the executor checks resolved leaves first
        entries.append(f"{key}: {_serialized(plan, value, present, n, namespace)}")
    columns = "".join(f"    C{n} = C[{n}]\n" for n in shape.resolved)
    loop = "for i, s in enumerate(S)" if shape.resolved else "for s in S"
    body = ", ".join(entries)
    clean = "def clean(S):\n    return True\n"
    if required:  # a loop, not any(): a generator resumes once per row
        clean = (
            f"def clean(S):\n    for s in S:\n        if {' or '.join(required)}:\n"
            "            return False\n    return True\n"
        )
    source = clean + f"def build(S, C):\n{columns}    return [{{{body}}} {loop}]\n"
    exec(compile(source, f"<shape {shape.type_name}>", "exec"), namespace)
    return namespace["clean"], namespace["build"]


def _serialized(
    plan: FieldPlan, value: str, present: bool, n: int, namespace: dict[str, Any]
) -> str:
    """The expression of a leaf's serialised value (None stays None)."""
    serialize = plan.serialize
    if serialize is None:
        return value
    if plan.is_list:
        namespace[f"S{n}"] = serialize
        return f"(None if (x := {value}) is None else [S{n}(y) for y in x])"
    if serialize is enum_value:
        if present:
            return f"(x if (x := {value}).__class__ is str else x.value)"
        return f"(x if (x := {value}) is None or x.__class__ is str else x.value)"
    namespace[f"S{n}"] = serialize
    if present:
        return f"S{n}({value})"
    return f"(None if (x := {value}) is None else S{n}(x))"
