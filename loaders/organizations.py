"""Organizations: by id, by slug, all of them, and a user's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loaders._keyset import PageSpec
from loaders.rows import ORGANIZATION_COLUMNS, OrganizationRow

SELECT_ORGANIZATIONS_BY_ID = (
    f"SELECT {ORGANIZATION_COLUMNS} FROM organizations o WHERE o.id = ANY($1::bigint[])"
)
SELECT_ORGANIZATIONS_BY_SLUG = (
    f"SELECT {ORGANIZATION_COLUMNS} FROM organizations o WHERE o.slug = ANY($1::text[])"
)

# The root collection pages under a single parent, 0, so that it shares the machinery.
ROOT = 0


def organization_row(values: Sequence[Any]) -> OrganizationRow:
    return OrganizationRow(*values)


ALL_ORGANIZATIONS = PageSpec(
    source="organizations o",
    parent_column="0::bigint",
    id_column="o.id",
    columns=ORGANIZATION_COLUMNS,
    make_row=organization_row,
)

ORGANIZATIONS_BY_USER = PageSpec(
    source="memberships m JOIN organizations o ON o.id = m.organization_id",
    parent_column="m.user_id",
    id_column="m.organization_id",
    columns=ORGANIZATION_COLUMNS,
    make_row=organization_row,
)
