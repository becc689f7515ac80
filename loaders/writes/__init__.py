"""The writes of the data model: plain functions of a Session and values, returning rows.

Like the loaders they know nothing of GraphQL or the viewer; the resolvers check access
and validate input first, and run each mutation in one transaction around these calls.
"""
