"""What each resolver field needs, declared as data for the compiled executor.

The Strawberry resolvers in `types.py` and `query.py` await a loader per object. For the
compiled executor (execution/compiled.py), which fetches a whole operation level by level, each
such field also declares here how to get its values for a whole batch of parents at once:

    Attr(name)                 a plain attribute of the parent row (the default for fields
                               without a resolver)
    Row(loader, key)           one row per parent from a by-key loader, keyed by an
                               attribute of the parent row
    Pages(pages, counts, ...)  a connection: one page per parent from a page loader
    Each(fn, reads)            a value per parent from fn(context, parent, args), sync or
                               async (access flags, emails); `reads` names the optional
                               columns (loaders/rows.py) of the parent row fn reads
    Batch(fn)                  values for all parents at once from fn(context, parents, args)

Sources are rows (loaders' dataclasses), never the Strawberry wrappers. A field of the
schema with a resolver but no need here makes the compiled executor hand the operation to
the standard one (a test lists them).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import BadUserInput, Forbidden
from domain import permissions as _access
from domain.context import Context
from execution.connection import page_info
from execution.ids import decode_id, encode_id
from execution.pagination import encode_cursor, page_request
from loaders import BY_ID
from loaders.comments import BY_CREATED_AT
from loaders.issues import order
from loaders.labels import BY_NAME
from loaders.projects import project_ref
from loaders.rows import (
    CommentRow,
    IssueRow,
    LabelRow,
    OrganizationRow,
    ProjectRow,
    UserRow,
)
from resolvers.query import MAX_NODES, RateLimit
from resolvers.types import issue_filter_of

ROW_TYPES: dict[type, str] = {
    UserRow: "User",
    OrganizationRow: "Organization",
    ProjectRow: "Project",
    IssueRow: "Issue",
    LabelRow: "Label",
    CommentRow: "Comment",
}


@dataclass(frozen=True, slots=True)
class Attr:
    name: str


@dataclass(frozen=True, slots=True)
class Row:
    loader: str
    key: str


def same(row: Any) -> Any:
    return row


@dataclass(frozen=True, slots=True)
class Pages:
    pages: str
    counts: str
    order: Callable[[dict[str, Any]], Any] = lambda args: BY_ID
    filters: Callable[[dict[str, Any]], Any] = lambda args: None
    unwrap: Callable[[Any], Any] = same


@dataclass(frozen=True, slots=True)
class Each:
    fn: Callable[..., Any]
    reads: tuple[str, ...] = ()  # the parent row's optional columns fn reads (loaders/rows.py)


@dataclass(frozen=True, slots=True)
class Batch:
    fn: Callable[..., Any]


Need = Attr | Row | Pages | Each | Batch


@dataclass(frozen=True, slots=True, eq=False)
class EdgeSource:
    cursor: str
    node: Any
    row: Any


async def resolve_pages(
    need: Pages, context: Context, parents: Sequence[Any], args: dict[str, Any]
) -> list[Any]:
    request = page_request(
        need.order(args),
        args.get("first"),
        args.get("after"),
        args.get("last"),
        args.get("before"),
        need.filters(args),
    )
    loaders = context.loaders
    pages = getattr(loaders, need.pages)
    counts = getattr(loaders, need.counts)
    ids = [p.id for p in parents]  # the root's id is ROOT
    loaded = await pages.load_all(ids, request)
    order, wrap, filters = request.order, need.unwrap, request.filters
    return [
        PageSource(page, order, wrap, counts, (i, filters))
        for i, page in zip(ids, loaded, strict=True)
    ]


class PageSource:
    """A connection's page as the compiled executor's connection fields read it: the
    `Connection` type's data without its dataclass equality, which the executor's
    whole-column checks (`None in column`) would call once per object."""

    __slots__ = ("_counts", "_key", "order", "page", "wrap")

    def __init__(self, page: Any, order: Any, wrap: Any, counts: Any, key: Any) -> None:
        self.page, self.order, self.wrap = page, order, wrap
        self._counts, self._key = counts, key

    def count(self) -> Any:
        return self._counts.load(self._key)


def _issue_order(args: dict[str, Any]) -> Any:
    given = args.get("orderBy")
    if given is None:
        return order("CREATED_AT", False)
    return order(given["field"].value, given["direction"].value == "DESC")


def _issue_filters(args: dict[str, Any]) -> Any:
    given = args.get("filterBy")
    if given is None:
        return None
    states = given.get("states")
    return issue_filter_of(
        [s.value for s in states] if states is not None else None,
        given.get("assignee"),
        given.get("labels"),
    )


def _created(args: dict[str, Any]) -> Any:
    return order("CREATED_AT", False)


def _flag(check: Callable[..., Any], action: str) -> Each:
    return Each(lambda context, row, args: check(context, row, action))


def _org_flag(action: str) -> Each:
    return Each(lambda context, row, args: _access.on_organization(context, row.id, action))


async def _email(context: Context, row: UserRow, args: dict[str, Any]) -> Any:
    if not await _access.on_user(context, row, "read_email"):
        raise Forbidden("You may not read this user's email.")
    return row.email


def _role(context: Context, row: OrganizationRow, args: dict[str, Any]) -> str | None:
    return context.viewer.roles.get(row.id)


async def _node(context: Context, global_id: str) -> Any:
    type_name, pk = decode_id(global_id)
    return await getattr(context.loaders, _BY_ID[type_name]).load(pk)


_BY_ID = {
    "User": "user_by_id",
    "Organization": "organization_by_id",
    "Project": "project_by_id",
    "Issue": "issue_by_id",
    "Label": "label_by_id",
    "Comment": "comment_by_id",
}


async def _nodes(context: Context, root: Any, args: dict[str, Any]) -> list[Any]:
    ids = args["ids"]
    if len(ids) > MAX_NODES:
        raise BadUserInput(f"At most {MAX_NODES} ids may be given, got {len(ids)}.", argument="ids")
    decoded = [decode_id(global_id) for global_id in ids]  # any bad id fails them all
    by_type: dict[str, list[int]] = {}
    for type_name, pk in decoded:
        by_type.setdefault(type_name, []).append(pk)
    loaders = {name: getattr(context.loaders, _BY_ID[name]) for name in by_type}
    # one batch per type, all together: no future or task per id
    await asyncio.gather(*(loaders[name].load_all(pks) for name, pks in by_type.items()))
    return [loaders[name].known.get(pk) for name, pk in decoded]


def _rate_limit(context: Context, root: Any, args: dict[str, Any]) -> RateLimit | None:
    state = context.rate_limit
    if state is None:
        return None
    return RateLimit(
        cost=context.cost, limit=state.limit, remaining=state.remaining, reset_at=state.reset_at
    )


async def _project_by_key(context: Context, row: OrganizationRow, args: dict[str, Any]) -> Any:
    return await context.loaders.project_by_key.load(project_ref(row.id, args["key"]))


async def _issue_by_number(context: Context, row: ProjectRow, args: dict[str, Any]) -> Any:
    number = args["number"]
    if not 0 < number < 2**31:
        return None
    return await context.loaders.issue_by_number.load((row.id, number))


def _edges(context: Context, connection: PageSource, args: dict[str, Any]) -> list[Any]:
    order_, wrap = connection.order, connection.wrap
    return [
        EdgeSource(encode_cursor(order_, key), wrap(row), row)
        for row, key in zip(connection.page.rows, connection.page.keys, strict=True)
    ]


def _id(type_name: str) -> Each:
    return Each(lambda context, row, args: encode_id(type_name, row.id))


NEEDS: dict[tuple[str, str], Need] = {
    ("Query", "viewer"): Each(lambda context, root, args: context.viewer.user),
    ("Query", "node"): Each(lambda context, root, args: _node(context, args["id"])),
    ("Query", "nodes"): Each(_nodes),
    ("Query", "user"): Each(
        lambda context, root, args: context.loaders.user_by_login.load(args["login"].lower())
    ),
    ("Query", "organization"): Each(
        lambda context, root, args: context.loaders.organization_by_slug.load(args["slug"])
    ),
    ("Query", "organizations"): Pages("organizations", "organization_count"),
    ("Query", "rateLimit"): Each(_rate_limit),
    ("User", "email"): Each(_email, reads=("email",)),
    ("User", "organizations"): Pages("organizations_by_user", "organization_count_by_user"),
    ("User", "authoredIssues"): Pages(
        "issues_by_author", "issue_count_by_author", _created, _issue_filters
    ),
    ("User", "assignedIssues"): Pages(
        "issues_by_assignee", "issue_count_by_assignee", _created, _issue_filters
    ),
    ("Organization", "viewerRole"): Each(_role),
    ("Organization", "viewerCanAdminister"): _org_flag("manage_members"),
    ("Organization", "viewerCanManageOwners"): _org_flag("manage_owners"),
    ("Organization", "viewerCanCreateProjects"): _org_flag("create_project"),
    ("Organization", "project"): Each(_project_by_key),
    ("Organization", "projects"): Pages(
        "projects_by_organization", "project_count_by_organization"
    ),
    ("Organization", "members"): Pages(
        "members_by_organization",
        "member_count",
        filters=lambda args: None,
        unwrap=lambda member: member.user,
    ),
    ("Project", "viewerCanUpdate"): _flag(_access.on_project, "update"),
    ("Project", "viewerCanCreateIssues"): _flag(_access.on_project, "create_issue"),
    ("Project", "viewerCanManageLabels"): _flag(_access.on_project, "manage_labels"),
    ("Project", "organization"): Row("organization_by_id", "organization_id"),
    ("Project", "issue"): Each(_issue_by_number),
    ("Project", "issues"): Pages(
        "issues_by_project", "issue_count_by_project", _issue_order, _issue_filters
    ),
    ("Project", "labels"): Pages(
        "labels_by_project", "label_count_by_project", lambda args: BY_NAME
    ),
    ("Issue", "viewerCanUpdate"): _flag(_access.on_issue, "edit"),
    ("Issue", "viewerCanTriage"): _flag(_access.on_issue, "update"),
    ("Issue", "viewerCanClose"): _flag(_access.on_issue, "close"),
    ("Issue", "viewerCanComment"): _flag(_access.on_issue, "comment"),
    ("Issue", "project"): Row("project_by_id", "project_id"),
    ("Issue", "author"): Row("user_by_id", "author_id"),
    ("Issue", "assignee"): Row("user_by_id", "assignee_id"),
    ("Issue", "labels"): Pages("labels_by_issue", "label_count_by_issue"),
    ("Issue", "comments"): Pages(
        "comments_by_issue", "comment_count_by_issue", lambda args: BY_CREATED_AT
    ),
    ("Label", "viewerCanUpdate"): _flag(_access.on_label, "manage_labels"),
    ("Label", "viewerCanDelete"): _flag(_access.on_label, "manage_labels"),
    ("Label", "project"): Row("project_by_id", "project_id"),
    ("Comment", "viewerCanUpdate"): _flag(_access.on_comment, "update"),
    ("Comment", "viewerCanDelete"): _flag(_access.on_comment, "delete"),
    ("Comment", "author"): Row("user_by_id", "author_id"),
    ("Comment", "issue"): Row("issue_by_id", "issue_id"),
    ("OrganizationMemberEdge", "role"): Each(lambda context, edge, args: edge.row.role),
}

for _type in ROW_TYPES.values():
    NEEDS[(_type, "id")] = _id(_type)

# Every connection type shares these.
CONNECTION_NEEDS: dict[str, Need] = {
    "edges": Each(_edges),
    "nodes": Each(
        lambda context, c, args: c.page.rows if c.wrap is same else list(map(c.wrap, c.page.rows))
    ),
    "pageInfo": Each(lambda context, c, args: page_info(c.page, c.order)),
    "totalCount": Each(lambda context, c, args: c.count()),
}
EDGE_NEEDS: dict[str, Need] = {"cursor": Attr("cursor"), "node": Attr("node")}


def is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)
