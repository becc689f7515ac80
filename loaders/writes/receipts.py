"""Idempotent creates: a receipt per (viewer, mutation, clientMutationId)."""

from __future__ import annotations

from core.db import Session

CLAIM_RECEIPT = """
INSERT INTO mutation_receipts (user_id, mutation, client_mutation_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING true
"""
SELECT_RECEIPT = """
SELECT result_id FROM mutation_receipts
WHERE user_id = $1 AND mutation = $2 AND client_mutation_id = $3
"""
FILL_RECEIPT = """
UPDATE mutation_receipts SET result_id = $4
WHERE user_id = $1 AND mutation = $2 AND client_mutation_id = $3
"""


async def claim(session: Session, user_id: int, mutation: str, client_id: str) -> int | None:
    """Claim the receipt inside the create's transaction. None: go ahead and create; an
    id: this create already happened (a concurrent twin waits here until the first
    commits), answer with that object."""
    if await session.fetchval(CLAIM_RECEIPT, user_id, mutation, client_id):
        return None
    result = await session.fetchval(SELECT_RECEIPT, user_id, mutation, client_id)
    return int(result) if result is not None else None


async def fill(
    session: Session, user_id: int, mutation: str, client_id: str, result_id: int
) -> None:
    await session.execute(FILL_RECEIPT, user_id, mutation, client_id, result_id)
