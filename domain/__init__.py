"""Domain services: access rules (policy), tokens, the per-request context and live events.
Above the loaders, below GraphQL: nothing here knows a document or a resolver."""
