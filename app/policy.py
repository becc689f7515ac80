"""Who is asking, and what they may see and do.

`Viewer` is the signed-in user (or nobody). `Policy` answers access questions for one
request and caches each decision; it also hands the loaders the `Scope` of projects the
request may read, so that lists are filtered in SQL by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loaders import PUBLIC, Scope
from loaders.rows import UserRow


@dataclass(frozen=True, slots=True)
class Viewer:
    user: UserRow | None = None
    # organization id -> role, for the organizations the user belongs to
    roles: dict[int, str] = field(default_factory=dict)

    @property
    def is_anonymous(self) -> bool:
        return self.user is None


ANONYMOUS = Viewer()


class Policy:
    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer

    def scope(self) -> Scope:
        user = self.viewer.user
        if user is None:
            return PUBLIC
        if user.is_site_admin:
            return Scope(all_projects=True)
        return Scope(organization_ids=tuple(sorted(self.viewer.roles)))

    def can_read_email(self, user: UserRow) -> bool:
        me = self.viewer.user
        if me is None:
            return False
        return me.is_site_admin or me.id == user.id
