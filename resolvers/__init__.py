"""The GraphQL schema: Strawberry types, queries (and later mutations and subscriptions).

Resolvers hold no SQL: they ask the per-request loaders in `info.context.loaders`.
"""
