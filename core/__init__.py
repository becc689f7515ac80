"""The ground floor: settings, errors, the database, observability, logs, the JSON encoding,
migrations and seed data.

Floors import one way (import-linter checks it in `make lint`):
core ← loaders ← domain ← execution ← resolvers ← server.
"""
