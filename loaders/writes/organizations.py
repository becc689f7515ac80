"""Organizations and memberships."""

from __future__ import annotations

from core.db import Session
from loaders.rows import ORGANIZATION_COLUMNS, OrganizationRow

INSERT_ORGANIZATION = f"""
INSERT INTO organizations AS o (slug, name, description) VALUES ($1, $2, $3)
RETURNING {ORGANIZATION_COLUMNS}
"""
INSERT_MEMBERSHIP = """
INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING role
"""
# Every change to an organization's members locks its OWNER rows first, so that two
# concurrent demotions cannot both see "another owner remains".
LOCK_OWNERS = """
SELECT user_id FROM memberships WHERE organization_id = $1 AND role = 'OWNER' FOR UPDATE
"""
SELECT_ROLE = "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2"
UPDATE_ROLE = "UPDATE memberships SET role = $3 WHERE organization_id = $1 AND user_id = $2"
DELETE_MEMBERSHIP = "DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2"


async def create(
    session: Session, slug: str, name: str, description: str, owner_id: int
) -> OrganizationRow:
    row = await session.fetchrow(INSERT_ORGANIZATION, slug, name, description)
    assert row is not None
    organization = OrganizationRow(*row)
    await session.execute(INSERT_MEMBERSHIP, organization.id, owner_id, "OWNER")
    return organization


async def add_member(session: Session, organization_id: int, user_id: int, role: str) -> bool:
    """False when the user is already a member."""
    return await session.fetchval(INSERT_MEMBERSHIP, organization_id, user_id, role) is not None


async def owners(session: Session, organization_id: int) -> list[int]:
    return [r[0] for r in await session.fetch(LOCK_OWNERS, organization_id)]


async def role_of(session: Session, organization_id: int, user_id: int) -> str | None:
    role = await session.fetchval(SELECT_ROLE, organization_id, user_id)
    return str(role) if role is not None else None


async def set_role(session: Session, organization_id: int, user_id: int, role: str) -> None:
    await session.execute(UPDATE_ROLE, organization_id, user_id, role)


async def remove_member(session: Session, organization_id: int, user_id: int) -> None:
    await session.execute(DELETE_MEMBERSHIP, organization_id, user_id)
