"""Projects: by id, by (organization, key), and an organization's, all within the scope."""

from __future__ import annotations

from collections.abc import Hashable

from loaders._keyset import PageSpec, Params, Scope
from loaders.rows import PROJECTS, ProjectRow

# $2, $3 and $4 are the request's Scope (see Scope.arguments).
VISIBLE = (
    "($2::boolean OR ($3::boolean AND p.visibility = 'PUBLIC')"
    " OR p.organization_id = ANY($4::bigint[]))"
)
SELECT_PROJECTS_BY_ID = (
    "SELECT {columns} FROM projects p{joins} WHERE p.id = ANY($1::bigint[]) AND " + VISIBLE
)
SELECT_PROJECTS_BY_KEY = f"""
SELECT {{columns}}
FROM unnest($1::text[]) AS k(ref)
JOIN projects p ON p.organization_id = split_part(k.ref, '/', 1)::bigint
               AND p.key = split_part(k.ref, '/', 2){{joins}}
WHERE {VISIBLE}
"""


def readable_by(user: str, project: str = "p") -> str:
    """A condition: the user aliased `user` may read the project aliased `project`. The read
    rule of domain/access/policy.csv (site admins; anyone for a public project; members),
    for users other than the viewer: whom to notify or mention (a test holds it to the
    policy)."""
    return (
        f"({user}.is_site_admin OR {project}.visibility = 'PUBLIC' OR EXISTS ("
        f"SELECT 1 FROM memberships rm WHERE rm.user_id = {user}.id"
        f" AND rm.organization_id = {project}.organization_id))"
    )


def project_ref(organization_id: int, key: str) -> str:
    """The loader key of a project by key: 'organization id/KEY'."""
    return f"{organization_id}/{key}"


def _visible(filters: Hashable, scope: Scope, params: Params) -> list[str]:
    return [scope.visible(params)]


PROJECTS_BY_ORGANIZATION: PageSpec[ProjectRow] = PageSpec(
    source="projects p",
    parent_column="p.organization_id",
    id_column="p.id",
    table=PROJECTS,
    conditions=_visible,
)
