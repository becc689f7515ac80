"""Migrations apply once and in order; the demo data is deterministic and as documented."""

from __future__ import annotations

import asyncpg

from core import seed
from core.migrate import migrate, migration_files


async def test_migrations_are_recorded_and_safe_to_run_twice(conn: asyncpg.Connection) -> None:
    versions = [v for v, _ in migration_files()]
    assert versions == sorted(versions)
    assert await migrate(conn) == []
    recorded = [
        r["version"]
        for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    ]
    assert recorded == versions


def test_generator_is_deterministic_and_scales() -> None:
    one = seed.generate(0.1, {})
    again = seed.generate(0.1, {})
    bigger = seed.generate(0.2, {})
    assert one == again
    assert len(bigger.issues) == 2 * len(one.issues)
    assert len(bigger.projects) == 2 * len(one.projects)


def test_scale_one_is_the_documented_size() -> None:
    data = seed.generate(1, {})
    assert len(data.users) == 2000
    assert len(data.projects) == 200
    assert len(data.issues) == 20_000
    assert 90_000 <= len(data.comments) <= 110_000


async def test_demo_accounts_and_organizations(conn: asyncpg.Connection) -> None:
    roles = await conn.fetch(
        "SELECT u.login, o.slug, m.role FROM memberships m JOIN users u ON u.id = m.user_id"
        " JOIN organizations o ON o.id = m.organization_id"
        " WHERE u.login IN ('alice', 'bob', 'carol') ORDER BY u.login"
    )
    assert [tuple(r) for r in roles] == [("alice", "acme", "OWNER"), ("bob", "acme", "MEMBER")]
    projects = await conn.fetch(
        "SELECT key, visibility FROM projects p JOIN organizations o"
        " ON o.id = p.organization_id WHERE o.slug = 'acme'"
        " AND key IN ('WEB', 'OPS') ORDER BY key"
    )
    assert [tuple(r) for r in projects] == [("OPS", "PRIVATE"), ("WEB", "PUBLIC")]
    assert await conn.fetchval("SELECT count(*) FROM organizations WHERE slug = 'globex'") == 1
    assert await conn.fetchval("SELECT is_site_admin FROM users WHERE login = 'root'")
