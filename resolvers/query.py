"""The entry points of the graph."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import strawberry

from core.errors import BadUserInput
from domain import search
from domain.context import Context
from execution.connection import Argument, Connection, Ordered, connection
from execution.fields import Root, value
from execution.ids import NODES, decode_id
from execution.pagination import MAX_NODES
from loaders import Loaders
from resolvers.types import Issue, Node, Organization, User


@strawberry.type(
    description="The viewer's budget of query cost points (GitHub style): "
    "each query spends its cost, computed before it runs."
)
class RateLimit:
    cost: int = strawberry.field(description="What this query cost.")
    limit: int = strawberry.field(description="Points per hour.")
    remaining: int = strawberry.field(description="Points left in this hour.")
    reset_at: datetime = strawberry.field(description="When the budget is full again.")


def _rate_limit(context: Context, root: Root) -> RateLimit | None:
    state = context.rate_limit
    if state is None:
        return None
    return RateLimit(
        cost=context.cost, limit=state.limit, remaining=state.remaining, reset_at=state.reset_at
    )


def _node(context: Context, root: Root, id: strawberry.ID) -> Any:
    type_name, pk = decode_id(id)
    return NODES[type_name].loader(context.loaders).load(pk)


async def _nodes(context: Context, root: Root, ids: list[strawberry.ID]) -> list[Any]:
    if len(ids) > MAX_NODES:
        raise BadUserInput(f"At most {MAX_NODES} ids may be given, got {len(ids)}.", argument="ids")
    decoded = [decode_id(global_id) for global_id in ids]  # any bad id fails them all
    by_type: dict[str, list[int]] = {}
    for type_name, pk in decoded:
        by_type.setdefault(type_name, []).append(pk)
    loaders = {name: NODES[name].loader(context.loaders) for name in by_type}
    # one batch per type, all together: no future or task per id
    await asyncio.gather(*(loaders[name].load_all(pks) for name, pks in by_type.items()))
    return [loaders[name].known.get(pk) for name, pk in decoded]


def _search(query: str, context: Context) -> Ordered:
    user = context.viewer.user
    found = search.parse(query, user.login if user is not None else None)
    return Ordered(found.filter, found.order)


SEARCH_QUERY = Argument(
    "query",
    str,
    "What to find, in GitHub's search syntax: words and quoted phrases (matched in titles "
    "and bodies, `-word` excludes), and qualifiers: is:open, is:closed, org:SLUG, "
    "project:SLUG/KEY, author:LOGIN, assignee:LOGIN (@me for the viewer), no:assignee, "
    "no:label, label:NAME (repeat for all of several), priority:N (>, >=, <, <=, N..M), "
    "created: and updated: with a date or range (>=2026-01-01, 2026-01-01..2026-02-01), "
    "sort:relevance|created-desc|created-asc|updated-desc|updated-asc|priority-desc|"
    "comments-desc. `-` before a qualifier negates it.",
    _search,
    required=True,
)


def _user(context: Context, root: Root, login: str) -> Any:
    return context.loaders.user_by_login.load(login.lower())


def _organization(context: Context, root: Root, slug: str) -> Any:
    return context.loaders.organization_by_slug.load(slug)


@strawberry.type(description="The entry points of the graph.")
class Query:
    rate_limit: RateLimit | None = value(
        _rate_limit,
        "The viewer's rate limit, as of this query; null when budgets are not enforced.",
    )
    viewer: User | None = value(
        lambda context, root: context.viewer.user, "The signed-in user; null when anonymous."
    )
    node: Node | None = value(
        _node,
        "Any object by its global id; null if it does not exist or the viewer may not see it.",
    )
    nodes: list[Node | None] = value(
        _nodes,
        f"Objects by global ids (at most {MAX_NODES}), in the order given; null for each "
        "that does not exist or is hidden.",
        sized_by="ids",
    )
    user: User | None = value(_user, "The user with this login (case-insensitive).")
    organization: Organization | None = value(_organization, "The organization with this slug.")
    organizations: Connection[Organization] = connection(
        Loaders.organizations, Loaders.organization_count, "Every organization, oldest first."
    )
    search_issues: Connection[Issue] = connection(
        Loaders.search_issues,
        Loaders.search_issue_count,
        "The issues the viewer may see that match a search query: by relevance when it has "
        "words (those whose title matches the words, then those that match in the body "
        "alone, each most recently updated first), newest first otherwise, unless it says "
        "`sort:`.",
        filters=SEARCH_QUERY,
        unwrap=lambda hit: hit.issue,
    )
