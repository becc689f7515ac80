"""A deterministic data generator: the demo data of `make run` and the benchmark data sets.

Scale 1 is the size PRODUCT.md names (about 2,000 users, 200 projects, 20,000 issues,
100,000 comments); the demo loads a smaller scale so that it starts in a second or two.
The same scale always produces the same rows, ids and timestamps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WORDS = [
    "login",
    "crash",
    "cache",
    "layout",
    "timeout",
    "migration",
    "search",
    "export",
    "billing",
    "webhook",
    "token",
    "sidebar",
    "dark-mode",
    "upload",
    "avatar",
    "render",
    "mobile",
    "sync",
    "retry",
    "latency",
    "index",
    "deploy",
]
LABELS = (
    ("bug", "#d73a4a"),
    ("feature", "#a2eeef"),
    ("docs", "#0075ca"),
    ("perf", "#fbca04"),
    ("security", "#b60205"),
    ("ux", "#c5def5"),
    ("good-first-issue", "#7057ff"),
    ("wontfix", "#ffffff"),
)

# Demo accounts; README.md lists them. Each generated user has no usable password.
DEMO_USERS = (
    ("alice", "Alice Liddell", "alice@example.com", "alice-in-acme", "Owner of acme.", False),
    ("bob", "Bob Builder", "bob@example.com", "bob-builds-web", "Member of acme.", False),
    ("carol", "Carol Danvers", "carol@example.com", "carol-outside", "In no organization.", False),
    ("root", "Site Admin", "root@example.com", "root-sees-all", "Site administrator.", True),
)
UNUSABLE_PASSWORD = "!"


@dataclass
class DataSet:
    users: list[tuple[Any, ...]] = field(default_factory=list)
    organizations: list[tuple[Any, ...]] = field(default_factory=list)
    memberships: list[tuple[Any, ...]] = field(default_factory=list)
    projects: list[tuple[Any, ...]] = field(default_factory=list)
    issues: list[tuple[Any, ...]] = field(default_factory=list)
    labels: list[tuple[Any, ...]] = field(default_factory=list)
    issue_labels: list[tuple[Any, ...]] = field(default_factory=list)
    comments: list[tuple[Any, ...]] = field(default_factory=list)


COLUMNS = {
    "users": (
        "id",
        "login",
        "name",
        "email",
        "password_hash",
        "bio",
        "is_site_admin",
        "created_at",
    ),
    "organizations": ("id", "slug", "name", "description", "created_at"),
    "memberships": ("organization_id", "user_id", "role", "created_at"),
    "projects": (
        "id",
        "organization_id",
        "key",
        "name",
        "description",
        "visibility",
        "archived_at",
        "created_at",
    ),
    "issues": (
        "id",
        "project_id",
        "number",
        "title",
        "body",
        "state",
        "priority",
        "author_id",
        "assignee_id",
        "created_at",
        "updated_at",
        "closed_at",
    ),
    "labels": ("id", "project_id", "name", "color", "created_at"),
    "issue_labels": ("issue_id", "label_id"),
    "comments": ("id", "issue_id", "author_id", "body", "created_at", "updated_at"),
}


def _at(minutes: int) -> datetime:
    return EPOCH + timedelta(minutes=minutes)


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def generate(scale: float, password_hashes: dict[str, str]) -> DataSet:
    """Build every row of a data set of the given scale, in memory."""
    rng = random.Random(20260105)
    data = DataSet()
    n_users = max(len(DEMO_USERS) + 20, round(2000 * scale))
    n_orgs = max(2, round(20 * scale))
    per_org = 10
    issues_per_project = 100
    for uid, (login, name, email, _pw, bio, admin) in enumerate(DEMO_USERS, start=1):
        data.users.append(
            (
                uid,
                login,
                name,
                email,
                password_hashes.get(login, UNUSABLE_PASSWORD),
                bio,
                admin,
                _at(uid),
            )
        )
    for uid in range(len(DEMO_USERS) + 1, n_users + 1):
        data.users.append(
            (
                uid,
                f"user{uid}",
                f"User {uid}",
                f"user{uid}@example.com",
                UNUSABLE_PASSWORD,
                "",
                False,
                _at(uid),
            )
        )
    org_names = ["acme", "globex"] + [f"org{i}" for i in range(3, n_orgs + 1)]
    for oid, slug in enumerate(org_names, start=1):
        data.organizations.append(
            (oid, slug, slug.capitalize() + " Inc.", f"The {slug} team.", _at(oid))
        )
    members = _memberships(rng, data, n_orgs, n_users)
    pid = 0
    for oid in range(1, n_orgs + 1):
        for k in range(per_org):
            pid += 1
            key, visibility = _project_key(oid, k)
            data.projects.append(
                (
                    pid,
                    oid,
                    key,
                    f"Project {key}",
                    f"Work on {key}.",
                    visibility,
                    None,
                    _at(10_000 + pid),
                )
            )
            _project_contents(rng, data, pid, members[oid], issues_per_project, n_users)
    return data


def _project_key(oid: int, k: int) -> tuple[str, str]:
    if oid == 1 and k == 0:
        return "WEB", "PUBLIC"
    if oid == 1 and k == 1:
        return "OPS", "PRIVATE"
    return f"P{k:02d}", "PRIVATE" if k % 4 == 3 else "PUBLIC"


def _memberships(
    rng: random.Random, data: DataSet, n_orgs: int, n_users: int
) -> dict[int, list[int]]:
    members: dict[int, list[int]] = {oid: [] for oid in range(1, n_orgs + 1)}

    def add(oid: int, uid: int, role: str) -> None:
        members[oid].append(uid)
        data.memberships.append((oid, uid, role, _at(20_000 + len(data.memberships))))

    add(1, 1, "OWNER")  # alice owns acme
    add(1, 2, "MEMBER")  # bob is a member of acme
    for oid in range(2, n_orgs + 1):
        add(oid, len(DEMO_USERS) + oid, "OWNER")
    for uid in range(len(DEMO_USERS) + 1, n_users + 1):
        for oid in rng.sample(range(1, n_orgs + 1), k=min(2, n_orgs)):
            if uid not in members[oid]:
                add(oid, uid, rng.choice(("ADMIN", "MEMBER", "MEMBER", "MEMBER")))
    return members


def _project_contents(
    rng: random.Random, data: DataSet, pid: int, members: list[int], n_issues: int, n_users: int
) -> None:
    label_ids = []
    for name, color in LABELS:
        lid = len(data.labels) + 1
        label_ids.append(lid)
        data.labels.append((lid, pid, name, color, _at(30_000 + pid)))
    for number in range(1, n_issues + 1):
        iid = len(data.issues) + 1
        created = 40_000 + iid * 7
        closed = rng.random() < 0.3
        author = rng.choice(members)
        assignee = rng.choice(members) if rng.random() < 0.7 else None
        data.issues.append(
            (
                iid,
                pid,
                number,
                f"{_sentence(rng, 3).capitalize()} #{number}",
                _sentence(rng, 12),
                "CLOSED" if closed else "OPEN",
                rng.randint(0, 4),
                author,
                assignee,
                _at(created),
                _at(created + rng.randint(0, 5000)),
                _at(created + 6000) if closed else None,
            )
        )
        for lid in rng.sample(label_ids, k=rng.randint(0, 3)):
            data.issue_labels.append((iid, lid))
        for c in range(rng.randint(0, 10)):
            cid = len(data.comments) + 1
            at = _at(created + 10 * (c + 1))
            data.comments.append(
                (
                    cid,
                    iid,
                    rng.choice(members) if rng.random() < 0.8 else rng.randint(1, n_users),
                    _sentence(rng, 8),
                    at,
                    at,
                )
            )


async def load(connection: asyncpg.Connection, data: DataSet) -> None:
    """Copy a data set into empty tables and move the id sequences past it."""
    for table, columns in COLUMNS.items():
        records: list[tuple[Any, ...]] = getattr(data, table)
        await connection.copy_records_to_table(table, records=records, columns=columns)
        if "id" in columns:
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
    # each comment in its issue's timeline, as addComment records it
    await connection.execute(
        "INSERT INTO events (kind, project_id, issue_id, actor_id, comment_id, created_at)"
        " SELECT 'COMMENTED', i.project_id, c.issue_id, c.author_id, c.id, c.created_at"
        " FROM comments c JOIN issues i ON i.id = c.issue_id ORDER BY c.created_at, c.id"
    )
    await connection.execute(
        "UPDATE projects p SET issue_count = coalesce("
        "(SELECT max(number) FROM issues i WHERE i.project_id = p.id), 0)"
    )
    await connection.execute("ANALYZE")


async def is_empty(connection: asyncpg.Connection) -> bool:
    return not await connection.fetchval("SELECT EXISTS (SELECT 1 FROM users)")


# The scale the demo data was loaded at is kept as the comment of the schema that holds it
# (a reset drops both together); a database whose data came from elsewhere has none.
_SCALE_COMMENT = "issuegraph demo data, SEED_SCALE="
RECORD_SCALE = "COMMENT ON SCHEMA public IS '" + _SCALE_COMMENT + "{scale}'"
LOADED_SCALE = "SELECT obj_description('public'::regnamespace, 'pg_namespace')"
DEMO_LOGINS = "SELECT count(*) FROM users WHERE login = ANY($1::text[])"


async def record_scale(connection: asyncpg.Connection, scale: float) -> None:
    await connection.execute(RECORD_SCALE.format(scale=float(scale)))


async def loaded_scale(connection: asyncpg.Connection) -> float | None:
    """The SEED_SCALE the data was loaded at; None if it was not loaded by `load`."""
    comment = await connection.fetchval(LOADED_SCALE)
    if not isinstance(comment, str) or not comment.startswith(_SCALE_COMMENT):
        return None
    try:
        return float(comment.removeprefix(_SCALE_COMMENT))
    except ValueError:
        return None


async def has_demo_users(connection: asyncpg.Connection) -> bool:
    """Whether the demo users are there to sign in with."""
    logins = [user[0] for user in DEMO_USERS]
    return bool(await connection.fetchval(DEMO_LOGINS, logins) == len(logins))
