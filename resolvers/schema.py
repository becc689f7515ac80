"""The Strawberry schema, built once."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from resolvers.auth import AuthMutations
from resolvers.mutations.follow import NotificationMutations
from resolvers.mutations.issues import IssueMutations
from resolvers.mutations.moves import IssueMoveMutations
from resolvers.mutations.organizations import OrganizationMutations
from resolvers.mutations.projects import ProjectMutations
from resolvers.mutations.webhooks import WebhookMutations
from resolvers.query import Query
from resolvers.scalars import SCALAR_OVERRIDES
from resolvers.subscriptions import Subscription
from resolvers.types import NODE_TYPES
from resolvers.webhooks import Webhook, WebhookDelivery


@strawberry.type(description="Every write of the graph.")
class Mutation(
    AuthMutations,
    OrganizationMutations,
    ProjectMutations,
    IssueMutations,
    IssueMoveMutations,
    NotificationMutations,
    WebhookMutations,
):
    pass


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[*NODE_TYPES, Webhook, WebhookDelivery],
    config=StrawberryConfig(auto_camel_case=True),
    scalar_overrides=SCALAR_OVERRIDES,
)
