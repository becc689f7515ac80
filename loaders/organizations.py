"""Organizations: by id, by slug, all of them, and a user's."""

from __future__ import annotations

from loaders._keyset import PageSpec
from loaders.rows import ORGANIZATIONS, OrganizationRow

SELECT_ORGANIZATIONS_BY_ID = (
    "SELECT {columns} FROM organizations o{joins} WHERE o.id = ANY($1::bigint[])"
)
SELECT_ORGANIZATIONS_BY_SLUG = (
    "SELECT {columns} FROM organizations o{joins} WHERE o.slug = ANY($1::text[])"
)

# The root collection pages under a single parent, 0, so that it shares the machinery.
ROOT = 0


ALL_ORGANIZATIONS: PageSpec[OrganizationRow] = PageSpec(
    source="organizations o",
    parent_column="0::bigint",
    id_column="o.id",
    table=ORGANIZATIONS,
)

ORGANIZATIONS_BY_USER: PageSpec[OrganizationRow] = PageSpec(
    source="memberships m JOIN organizations o ON o.id = m.organization_id",
    parent_column="m.user_id",
    id_column="m.organization_id",
    table=ORGANIZATIONS,
)
