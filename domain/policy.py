"""Who is asking, and what they may see and do.

`Access` holds the Casbin enforcer (model and policy files in domain/access/), loaded once per
process. Casbin's `enforce()` is synchronous and scans every policy line, so a decision is
asked once per (traits, kind, action) and remembered: traits are the few attributes of the
viewer in relation to an object that the rules read, so a whole page of issues usually
needs one or two decisions, never one per row.

`Policy` is the per-request face of it: it computes traits from the viewer and a row,
caches the request's decisions, and derives the `Scope` of projects the loaders' SQL may
return from the same rules, so that lists and counts never include what `read` denies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path

import casbin  # type: ignore[import-untyped]  # pycasbin ships no type information

from loaders import Scope
from loaders.rows import CommentRow, IssueRow, ProjectRow, UserRow

Traits = frozenset[str]
ROLE_TRAITS = {
    "MEMBER": frozenset({"member"}),
    "ADMIN": frozenset({"member", "admin"}),
    "OWNER": frozenset({"member", "admin", "owner"}),
}
MEMO_LIMIT = 65_536


def _access_file(name: str) -> Path:
    return Path(str(resources.files("domain") / "access" / name))


@dataclass(frozen=True, slots=True)
class Viewer:
    user: UserRow | None = None
    roles: dict[int, str] = field(default_factory=dict)  # organization id -> role
    # the session the access token names, and when the token expires (None: anonymous,
    # or a viewer made in-process)
    session_id: int | None = None
    expires_at: datetime | None = None

    def set_role(self, organization_id: int, role: str | None) -> None:
        """Keep the request's view of the viewer true after it changed their membership."""
        if role is None:
            self.roles.pop(organization_id, None)
        else:
            self.roles[organization_id] = role


ANONYMOUS = Viewer()


class Access:
    """The process-wide enforcer and its memo of decisions."""

    def __init__(self, model: Path | None = None, policy: Path | None = None) -> None:
        self._enforcer = casbin.Enforcer(
            str(model or _access_file("model.conf")), str(policy or _access_file("policy.csv"))
        )
        self._memo: dict[tuple[Traits, str, str], bool] = {}

    def allows(self, traits: Traits, kind: str, action: str) -> bool:
        key = (traits, kind, action)
        decision = self._memo.get(key)
        if decision is None:
            decision = bool(self._enforcer.enforce(tuple(sorted(traits)), kind, action))
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = decision
        return decision


class Policy:
    """One request's access decisions; see the module docstring."""

    def __init__(self, viewer: Viewer, access: Access) -> None:
        self.viewer = viewer
        self._access = access
        user = viewer.user
        base = set()
        if user is not None:
            base.add("signed_in")
            if user.is_site_admin:
                base.add("site_admin")
        self._base: Traits = frozenset(base)

    def allows(self, traits: Traits, kind: str, action: str) -> bool:
        return self._access.allows(traits, kind, action)

    def scope(self) -> Scope:
        """The projects this viewer may read, and the organizations whose webhooks it may
        manage, as the loaders' SQL applies them."""
        all_webhooks = self.allows(self._base, "organization", "manage_webhooks")
        hooks = () if all_webhooks else self._organizations("organization", "manage_webhooks")
        if self.allows(self._base, "project", "read"):
            return Scope(
                all_projects=True, all_webhooks=all_webhooks, webhook_organization_ids=hooks
            )
        public = self.allows(self._base | {"public"}, "project", "read")
        return Scope(
            public=public,
            organization_ids=self._organizations("project", "read"),
            all_webhooks=all_webhooks,
            webhook_organization_ids=hooks,
        )

    def _organizations(self, kind: str, action: str) -> tuple[int, ...]:
        """The organizations in which the viewer's role allows `action` on `kind`."""
        return tuple(
            sorted(
                organization_id
                for organization_id, role in self.viewer.roles.items()
                if self.allows(self._base | ROLE_TRAITS[role], kind, action)
            )
        )

    def can_read(self, project: ProjectRow) -> bool:
        return self.allows(self.project_traits(project), "project", "read")

    def organization_traits(self, organization_id: int) -> Traits:
        role = self.viewer.roles.get(organization_id)
        return self._base | ROLE_TRAITS[role] if role else self._base

    def project_traits(self, project: ProjectRow) -> Traits:
        traits = self.organization_traits(project.organization_id)
        return traits | {"public"} if project.visibility == "PUBLIC" else traits

    def issue_traits(self, project: ProjectRow, issue: IssueRow) -> Traits:
        traits = set(self.project_traits(project))
        me = self.viewer.user
        if me is not None:
            if issue.author_id == me.id:
                traits.add("author")
            if issue.assignee_id == me.id:
                traits.add("assignee")
        return frozenset(traits)

    def comment_traits(self, project: ProjectRow, comment: CommentRow) -> Traits:
        traits = self.project_traits(project)
        me = self.viewer.user
        return traits | {"author"} if me is not None and comment.author_id == me.id else traits

    def user_traits(self, user: UserRow, organization_ids: Iterable[int] = ()) -> Traits:
        me = self.viewer.user
        traits = set(self._base)
        if me is not None and me.id == user.id:
            traits.add("self")
        if any(self.viewer.roles.get(o) in ("ADMIN", "OWNER") for o in organization_ids):
            traits.add("admin_of_user")
        return frozenset(traits)

    def administers_any_organization(self) -> bool:
        return any(role in ("ADMIN", "OWNER") for role in self.viewer.roles.values())

    def site_traits(self) -> Traits:
        return self._base
