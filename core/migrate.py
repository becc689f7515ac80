"""Versioned migrations: numbered SQL files in core/migrations, applied in order.

Each file runs in its own transaction and is recorded in `schema_migrations`; an advisory
lock makes concurrent runs (several instances starting at once) safe, and a second run
applies nothing.
"""

from __future__ import annotations

from importlib import resources

import asyncpg

MIGRATIONS_LOCK = 7_241_001  # advisory lock key, any constant unique to this purpose

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version) VALUES ($1)"


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("core") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


async def migrate(connection: asyncpg.Connection) -> list[str]:
    """Apply every migration not yet applied; return the versions applied now."""
    applied_now: list[str] = []
    await connection.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
    try:
        await connection.execute(CREATE_LEDGER)
        done = {r["version"] for r in await connection.fetch(SELECT_APPLIED)}
        for version, sql in migration_files():
            if version in done:
                continue
            async with connection.transaction():
                await connection.execute(sql)
                await connection.execute(INSERT_APPLIED, version)
            applied_now.append(version)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK)
    return applied_now
