"""Issues: by id, by (project, number), a project's (filtered, ordered), a user's."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from loaders._keyset import Order, PageSpec, Params, Scope
from loaders.projects import VISIBLE
from loaders.rows import ISSUES, IssueRow

SELECT_ISSUES_BY_ID = f"""
SELECT {{columns}}
FROM issues i JOIN projects p ON p.id = i.project_id{{joins}}
WHERE i.id = ANY($1::bigint[]) AND {VISIBLE}
"""
SELECT_ISSUES_BY_NUMBER = """
SELECT {columns}
FROM unnest($1::bigint[], $2::int[]) AS k(project_id, number)
JOIN issues i ON i.project_id = k.project_id AND i.number = k.number{joins}
"""

ORDER_ATTRIBUTES = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at", "PRIORITY": "priority"}


def order(field: str, descending: bool) -> Order:
    """An order of Project.issues; each has an index on (project_id, column, id)."""
    attribute = ORDER_ATTRIBUTES[field]
    return Order(field, f"i.{attribute}", attribute, descending)


@dataclass(frozen=True, slots=True)
class IssueFilter:
    states: tuple[str, ...] | None = None
    assignee_login: str | None = None
    label_names: tuple[str, ...] | None = None


def _filtered(filters: Hashable, scope: Scope, params: Params) -> list[str]:
    found: list[str] = []
    if not isinstance(filters, IssueFilter):
        return found
    if filters.states is not None:
        found.append(f"i.state = ANY({params.add(list(filters.states), 'text[]')})")
    if filters.assignee_login is not None:
        login = params.add(filters.assignee_login.lower(), "text")
        found.append(f"i.assignee_id = (SELECT id FROM users WHERE lower(login) = {login})")
    if filters.label_names is not None:
        names = params.add(list(filters.label_names), "text[]")
        found.append(
            "EXISTS (SELECT 1 FROM issue_labels il JOIN labels l ON l.id = il.label_id"
            f" WHERE il.issue_id = i.id AND l.name = ANY({names}))"
        )
    return found


def _visible_filtered(filters: Hashable, scope: Scope, params: Params) -> list[str]:
    return [scope.visible(params), *_filtered(filters, scope, params)]


def _by(parent_column: str, source: str, conditions: Any) -> PageSpec[IssueRow]:
    return PageSpec(
        source=source,
        parent_column=parent_column,
        id_column="i.id",
        table=ISSUES,
        conditions=conditions,
    )


ISSUES_BY_PROJECT = _by("i.project_id", "issues i", _filtered)
_WITH_PROJECT = "issues i JOIN projects p ON p.id = i.project_id"
ISSUES_BY_AUTHOR = _by("i.author_id", _WITH_PROJECT, _visible_filtered)
ISSUES_BY_ASSIGNEE = _by("i.assignee_id", _WITH_PROJECT, _visible_filtered)
