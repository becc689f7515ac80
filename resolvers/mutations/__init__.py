"""Every write of the graph: one `input` argument, a payload with the changed objects and
`userErrors`, an optional `clientMutationId` echoed back; one transaction each."""
