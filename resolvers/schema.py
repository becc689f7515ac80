"""The Strawberry schema, built once."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from resolvers.auth import AuthMutations
from resolvers.mutations.follow import NotificationMutations
from resolvers.mutations.issues import IssueMutations
from resolvers.mutations.organizations import OrganizationMutations
from resolvers.mutations.projects import ProjectMutations
from resolvers.query import Query
from resolvers.subscriptions import Subscription
from resolvers.types import NODE_TYPES


@strawberry.type(description="Every write of the graph.")
class Mutation(
    AuthMutations, OrganizationMutations, ProjectMutations, IssueMutations, NotificationMutations
):
    pass


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=list(NODE_TYPES),
    config=StrawberryConfig(auto_camel_case=True),
)
