"""Relay cursor connections over keyset pages.

`Connection[T]` becomes `TConnection` in the schema, its edges `TEdge`. A connection holds
one loaded page and a way to count; `totalCount` runs its (batched) count only when asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry

from execution.pagination import encode_cursor
from loaders import Order, Page

T = TypeVar("T")


@strawberry.type(description="Where a page sits in its connection.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(description="Items precede this page.")
    start_cursor: str | None = strawberry.field(description="The cursor of the first item.")
    end_cursor: str | None = strawberry.field(description="The cursor of the last item.")


@strawberry.type(description="An item of a connection, with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="An opaque cursor for `after` or `before`.")
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list, with cursors to fetch the pages around it.")
class Connection(Generic[T]):
    page: strawberry.Private[Page[Any]]
    order: strawberry.Private[Order]
    wrap: strawberry.Private[Callable[[Any], T]]
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The items of this page, with their cursors.")
    def edges(self) -> list[Edge[T]]:
        wrap, order = self.wrap, self.order
        return [
            Edge(cursor=encode_cursor(order, key), node=wrap(row))
            for row, key in zip(self.page.rows, self.page.keys, strict=True)
        ]

    @strawberry.field(description="The items of this page.")
    def nodes(self) -> list[T]:
        return [self.wrap(row) for row in self.page.rows]

    @strawberry.field(description="Where this page sits.")
    def page_info(self) -> PageInfo:
        return page_info(self.page, self.order)

    @strawberry.field(description="How many items the whole list holds (for this viewer).")
    async def total_count(self) -> int:
        return await self.count()


def page_info(page: Page[Any], order: Order) -> PageInfo:
    keys: Sequence[tuple[Any, int]] = page.keys
    return PageInfo(
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        start_cursor=encode_cursor(order, keys[0]) if keys else None,
        end_cursor=encode_cursor(order, keys[-1]) if keys else None,
    )
