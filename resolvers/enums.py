"""Enums and inputs shared by the schema's types."""

from __future__ import annotations

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


@strawberry.input(description="Which issues to list; all given conditions must hold.")
class IssueFilters:
    states: list[IssueState] | None = strawberry.field(
        default=None, description="Only issues in one of these states."
    )
    assignee: str | None = strawberry.field(
        default=None, description="Only issues assigned to the user with this login."
    )
    labels: list[str] | None = strawberry.field(
        default=None, description="Only issues carrying at least one label of these names."
    )
