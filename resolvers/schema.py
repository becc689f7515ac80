"""The Strawberry schema, built once."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from resolvers.query import Query
from resolvers.types import Comment, Issue, Label, Organization, Project, User

schema = strawberry.Schema(
    query=Query,
    types=[User, Organization, Project, Issue, Label, Comment],
    config=StrawberryConfig(auto_camel_case=True),
)
