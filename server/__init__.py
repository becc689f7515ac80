"""issuegraph: a headless issue tracker served as one GraphQL API."""
