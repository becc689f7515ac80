"""The entry points of the graph."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import strawberry

from core.errors import BadUserInput
from execution.connection import Connection
from execution.ids import decode_id
from execution.pagination import PAGE_ARGUMENTS_DOC, page_request
from loaders import BY_ID, Loaders
from loaders._base import RowLoader
from loaders.organizations import ROOT
from resolvers.types import (
    NODE_CLASSES,
    After,
    Before,
    Ctx,
    First,
    Last,
    Node,
    Organization,
    User,
    connect,
)

MAX_NODES = 100


def _row_loader(loaders: Loaders, type_name: str) -> RowLoader[int, Any]:
    by_type: dict[str, RowLoader[int, Any]] = {
        "User": loaders.user_by_id,
        "Organization": loaders.organization_by_id,
        "Project": loaders.project_by_id,
        "Issue": loaders.issue_by_id,
        "Label": loaders.label_by_id,
        "Comment": loaders.comment_by_id,
    }
    return by_type[type_name]


async def _node(loaders: Loaders, global_id: str) -> Node | None:
    type_name, pk = decode_id(global_id)
    row = await _row_loader(loaders, type_name).load(pk)
    return NODE_CLASSES[type_name].from_row(row) if row is not None else None


@strawberry.type(
    description="The viewer's budget of query cost points (GitHub style): "
    "each query spends its cost, computed before it runs."
)
class RateLimit:
    cost: int = strawberry.field(description="What this query cost.")
    limit: int = strawberry.field(description="Points per hour.")
    remaining: int = strawberry.field(description="Points left in this hour.")
    reset_at: datetime = strawberry.field(description="When the budget is full again.")


@strawberry.type(description="The entry points of the graph.")
class Query:
    @strawberry.field(
        description="The viewer's rate limit, as of this query; null when budgets are not enforced."
    )
    def rate_limit(self, info: Ctx) -> RateLimit | None:
        state = info.context.rate_limit
        if state is None:
            return None
        return RateLimit(
            cost=info.context.cost,
            limit=state.limit,
            remaining=state.remaining,
            reset_at=state.reset_at,
        )

    @strawberry.field(description="The signed-in user; null when anonymous.")
    async def viewer(self, info: Ctx) -> User | None:
        user = info.context.viewer.user
        return User.from_row(user) if user is not None else None

    @strawberry.field(
        description="Any object by its global id; null if it does not exist "
        "or the viewer may not see it."
    )
    async def node(self, info: Ctx, id: strawberry.ID) -> Node | None:
        return await _node(info.context.loaders, id)

    @strawberry.field(
        description=f"Objects by global ids (at most {MAX_NODES}), in the order "
        "given; null for each that does not exist or is hidden."
    )
    async def nodes(self, info: Ctx, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise BadUserInput(
                f"At most {MAX_NODES} ids may be given, got {len(ids)}.", argument="ids"
            )
        loaders = info.context.loaders
        for global_id in ids:
            decode_id(global_id)  # every id is checked before anything is fetched
        return list(await asyncio.gather(*(_node(loaders, i) for i in ids)))

    @strawberry.field(description="The user with this login (case-insensitive).")
    async def user(self, info: Ctx, login: str) -> User | None:
        row = await info.context.loaders.user_by_login.load(login.lower())
        return User.from_row(row) if row is not None else None

    @strawberry.field(description="The organization with this slug.")
    async def organization(self, info: Ctx, slug: str) -> Organization | None:
        row = await info.context.loaders.organization_by_slug.load(slug)
        return Organization.from_row(row) if row is not None else None

    @strawberry.field(description="Every organization, oldest first. " + PAGE_ARGUMENTS_DOC)
    async def organizations(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Organization]:
        loaders = info.context.loaders
        request = page_request(BY_ID, first, after, last, before)
        return await connect(
            loaders.organizations, loaders.organization_count, ROOT, request, Organization.from_row
        )
