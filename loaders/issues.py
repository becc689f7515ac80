"""Issues: by id, by (project, number), and every list of them: a project's, an
organization's, a user's, and the search across all of them.

Every list takes an `IssueFilter`: a conjunction of `Condition`s, each of which may be
negated, and optionally words for full-text search. `filterBy` and the query language of
`searchIssues` both make one (resolvers/types.py, domain/search.py), and `_conditions` is the
one place that writes its SQL.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from loaders._keyset import Order, PageSpec, Params, Scope
from loaders.mentions import involves_user, mentions_user
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

TEXT_CONFIG = "english"  # the text search configuration of issues.search_vector (0005)
ORDER_ATTRIBUTES = {
    "CREATED_AT": "created_at",
    "UPDATED_AT": "updated_at",
    "PRIORITY": "priority",
    "COMMENTS": "comment_count",
}
# How well an issue matches the words: issues whose title matches them come first, then
# those that match in the body alone, each most recently updated first. Each tier walks
# issues_updated (or, for a rare word, reads the GIN index), so that a page never ranks
# every match. `{title_match}` is written into a statement once its words are.
# The most issues a tier's walk of issues_updated reads before the tier is read from the
# GIN index instead: a page is found within it wherever one issue in 200 matches (by
# measure, ~1 ms per 1,000 issues read at any scale).
SEARCH_WALK = 4_000
RELEVANCE = Order("RELEVANCE", "i.updated_at", "relevance", descending=True, tier="title_match")


def order(field: str, descending: bool) -> Order:
    """An order of issues by a column; each list has an index on (parent, column, id)."""
    attribute = ORDER_ATTRIBUTES[field]
    return Order(field, f"i.{attribute}", attribute, descending)


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition an issue must meet (or, `negated`, must not):

    state (a tuple of states), organization (a slug), project ((slug, KEY)), author,
    assignee, mentions, involves (logins), unassigned (None), label (a name,
    case-insensitive), unlabeled (None), priority (a tuple of priorities), created and
    updated ((since, until): since inclusive, until exclusive, either None)."""

    kind: str
    value: Hashable = None
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IssueFilter:
    """Every condition holds, and the words (websearch_to_tsquery's syntax) match."""

    conditions: tuple[Condition, ...] = ()
    words: str | None = None


def _login(params: Params, login: object) -> str:
    return f"(SELECT id FROM users WHERE lower(login) = lower({params.add(login, 'text')}))"


def _label(params: Params, name: object) -> str:
    return (
        "EXISTS (SELECT 1 FROM issue_labels il JOIN labels l ON l.id = il.label_id"
        f" WHERE il.issue_id = i.id AND lower(l.name) = lower({params.add(name, 'text')}))"
    )


def _range(column: str, params: Params, value: Any) -> str:
    since, until = value
    parts = []
    if since is not None:
        parts.append(f"{column} >= {params.add(since, 'timestamptz')}")
    if until is not None:
        parts.append(f"{column} < {params.add(until, 'timestamptz')}")
    return " AND ".join(parts) or "TRUE"


def _organization(params: Params, slug: object) -> str:
    return (
        "i.project_id = ANY(ARRAY(SELECT pp.id FROM projects pp JOIN organizations oo"
        f" ON oo.id = pp.organization_id WHERE oo.slug = lower({params.add(slug, 'text')})))"
    )


def _project(params: Params, value: Any) -> str:
    slug, key = value
    return (
        "i.project_id = (SELECT pp.id FROM projects pp JOIN organizations oo"
        f" ON oo.id = pp.organization_id WHERE oo.slug = lower({params.add(slug, 'text')})"
        f" AND pp.key = upper({params.add(key, 'text')}))"
    )


def _condition(condition: Condition, params: Params) -> str:
    kind, value = condition.kind, cast(Any, condition.value)
    if kind == "state":
        return f"i.state = ANY({params.add(list(value), 'text[]')})"
    if kind == "priority":
        return f"i.priority = ANY({params.add(list(value), 'smallint[]')})"
    if kind == "author":
        return f"i.author_id = {_login(params, value)}"
    if kind == "assignee":
        return f"i.assignee_id = {_login(params, value)}"
    if kind == "mentions":
        return mentions_user("i", _login(params, value))
    if kind == "involves":
        return involves_user("i", _login(params, value))
    if kind == "unassigned":
        return "i.assignee_id IS NULL"
    if kind == "label":
        return _label(params, value)
    if kind == "unlabeled":
        return "NOT EXISTS (SELECT 1 FROM issue_labels il WHERE il.issue_id = i.id)"
    if kind in ("created", "updated"):
        return _range(f"i.{kind}_at", params, value)
    if kind == "organization":
        return _organization(params, value)
    if kind == "project":
        return _project(params, value)
    raise AssertionError(f"unknown condition {kind}")


def _conditions(filters: Hashable, scope: Scope, params: Params) -> list[str]:
    """The SQL of a filter: each condition (a negated one rejects where the condition is
    false or unknown, so `-assignee:x` keeps the unassigned), then the words."""
    found: list[str] = []
    if not isinstance(filters, IssueFilter):
        return found
    for condition in filters.conditions:
        sql = _condition(condition, params)
        found.append(f"({sql}) IS NOT TRUE" if condition.negated else sql)
    if filters.words is not None:
        query = f"websearch_to_tsquery('{TEXT_CONFIG}', {params.add(filters.words, 'text')})"
        found.append(f"i.search_vector @@ {query}")
        params.named["title_match"] = f"i.title_vector @@ {query}"
    return found


def _visible_filtered(filters: Hashable, scope: Scope, params: Params) -> list[str]:
    return [scope.visible(params), *_conditions(filters, scope, params)]


def _by(parent_column: str, source: str, conditions: Any) -> PageSpec[IssueRow]:
    return PageSpec(
        source=source,
        parent_column=parent_column,
        id_column="i.id",
        table=ISSUES,
        conditions=conditions,
    )


ISSUES_BY_PROJECT = _by("i.project_id", "issues i", _conditions)
_WITH_PROJECT = "issues i JOIN projects p ON p.id = i.project_id"
ISSUES_BY_AUTHOR = _by("i.author_id", _WITH_PROJECT, _visible_filtered)
ISSUES_BY_ASSIGNEE = _by("i.assignee_id", _WITH_PROJECT, _visible_filtered)
ISSUES_BY_ORGANIZATION = _by("p.organization_id", _WITH_PROJECT, _visible_filtered)


class SearchHit(NamedTuple):
    """An issue found by searchIssues, with what its orders read that an issue row does not
    hold: whether its title matches the words, its number of comments."""

    issue: IssueRow
    title_match: bool
    comment_count: int

    @property
    def relevance(self) -> tuple[bool, datetime]:
        """Its place in RELEVANCE: the tier, then the time within it."""
        return self.title_match, self.issue.updated_at

    @property
    def id(self) -> int:
        return self.issue.id

    @property
    def created_at(self) -> datetime:
        return self.issue.created_at

    @property
    def updated_at(self) -> datetime:
        return self.issue.updated_at

    @property
    def priority(self) -> int:
        return self.issue.priority


_WIDTH = len(ISSUES.names)


def _search_hit(values: Sequence[Any]) -> SearchHit:
    return SearchHit(ISSUES.make(values[:_WIDTH]), values[_WIDTH], values[_WIDTH + 1])


# Every issue the request may see, in one root list (parent 0).
SEARCH = PageSpec(
    source=_WITH_PROJECT,
    parent_column="0::bigint",
    id_column="i.id",
    table=ISSUES,
    conditions=_visible_filtered,
    extra=", {title_match} AS title_match, i.comment_count",
    make_row=_search_hit,
    placeholders=(("title_match", "FALSE"),),
    walk_source="{walk} JOIN projects p ON p.id = i.project_id",
    walk=SEARCH_WALK,
)
