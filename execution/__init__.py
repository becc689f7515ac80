"""Running GraphQL: the one pipeline every transport calls, documents, limits, field
declarations, pagination and the compiled executor. The schema is passed in."""
