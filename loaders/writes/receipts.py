"""Idempotent creates: a receipt per (viewer, mutation, clientMutationId), holding a
fingerprint of the input the key came with and the id of what the create made.

A key is good for a day (RECEIPT_TTL): an older receipt is taken over by the next create
with its key, and every fill deletes up to 100 expired receipts, so the table stays
small with no job to run.
"""

from __future__ import annotations

from typing import NamedTuple

from core.db import Session

RECEIPT_TTL = "24 hours"

# Claims the key, or takes over an expired receipt; nothing (and a lock on the receipt
# until this transaction ends) when a live receipt holds the key: a concurrent twin waits
# here until the first create commits, then reads its receipt.
CLAIM_RECEIPT = f"""
INSERT INTO mutation_receipts AS r (user_id, mutation, client_mutation_id, fingerprint)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, mutation, client_mutation_id) DO UPDATE
    SET fingerprint = excluded.fingerprint, result_id = NULL, created_at = now()
    WHERE r.created_at <= now() - interval '{RECEIPT_TTL}'
RETURNING true
"""
SELECT_RECEIPT = """
SELECT result_id, fingerprint FROM mutation_receipts
WHERE user_id = $1 AND mutation = $2 AND client_mutation_id = $3
"""
FILL_RECEIPT = f"""
WITH expired AS (
    DELETE FROM mutation_receipts WHERE (user_id, mutation, client_mutation_id) IN (
        SELECT user_id, mutation, client_mutation_id FROM mutation_receipts
        WHERE created_at <= now() - interval '{RECEIPT_TTL}'
        ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED)
)
UPDATE mutation_receipts SET result_id = $4
WHERE user_id = $1 AND mutation = $2 AND client_mutation_id = $3
"""


class Earlier(NamedTuple):
    """The receipt that holds a key already: what the first create made, and whether it
    came with the same input."""

    result_id: int | None
    same_input: bool


async def claim(
    session: Session, user_id: int, mutation: str, client_id: str, fingerprint: bytes
) -> Earlier | None:
    """Claim the key inside the create's transaction. None: go ahead and create; else the
    receipt that holds the key."""
    if await session.fetchval(CLAIM_RECEIPT, user_id, mutation, client_id, fingerprint):
        return None
    row = await session.fetchrow(SELECT_RECEIPT, user_id, mutation, client_id)
    assert row is not None, "a live receipt holds the key"
    result_id, stored = tuple(row)
    return Earlier(result_id, bytes(stored) == fingerprint)


async def fill(
    session: Session, user_id: int, mutation: str, client_id: str, result_id: int
) -> None:
    await session.execute(FILL_RECEIPT, user_id, mutation, client_id, result_id)
