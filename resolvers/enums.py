"""Enums and inputs shared by the schema's types."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry


@strawberry.enum(description="Whether an issue is open or closed.")
class IssueState(Enum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


@strawberry.enum(description="Who may read a project: anyone, or its organization's members.")
class ProjectVisibility(Enum):
    PUBLIC = "PUBLIC"
    PRIVATE = "PRIVATE"


@strawberry.enum(description="A member's role in an organization.")
class MembershipRole(Enum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


@strawberry.enum(description="The field issues are ordered by.")
class IssueOrderField(Enum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    PRIORITY = "PRIORITY"


@strawberry.enum(description="Ascending or descending.")
class OrderDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.input(description="How to order issues; ties are broken by creation.")
class IssueOrder:
    field: IssueOrderField = strawberry.field(description="The field to order by.")
    direction: OrderDirection = strawberry.field(description="The direction.")


@strawberry.input(description="A span of time: from `since` (inclusive) until `until` (exclusive).")
class TimeRange:
    since: datetime | None = strawberry.field(default=None, description="The first moment.")
    until: datetime | None = strawberry.field(
        default=None, description="The moment after the last."
    )


@strawberry.input(description="Which issues to list; all given conditions must hold.")
class IssueFilters:
    states: list[IssueState] | None = strawberry.field(
        default=None, description="Only issues in one of these states."
    )
    assignee: str | None = strawberry.field(
        default=None, description="Only issues assigned to the user with this login."
    )
    unassigned: bool | None = strawberry.field(
        default=None,
        description="true: only issues assigned to nobody; false: only issues assigned to someone.",
    )
    author: str | None = strawberry.field(
        default=None, description="Only issues opened by the user with this login."
    )
    mentioned: str | None = strawberry.field(
        default=None,
        description="Only issues whose body or comments mention the user with this login.",
    )
    labels: list[str] | None = strawberry.field(
        default=None,
        description="Only issues carrying every label of these names (case-insensitive).",
    )
    priorities: list[int] | None = strawberry.field(
        default=None, description="Only issues of one of these priorities (0 to 4)."
    )
    created: TimeRange | None = strawberry.field(
        default=None, description="Only issues opened within this span."
    )
    updated: TimeRange | None = strawberry.field(
        default=None, description="Only issues last changed within this span."
    )
