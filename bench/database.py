"""The bench databases: one per scale, loaded once and reused while the data is current.

The server is DATABASE_URL's when set, else the embedded PostgreSQL. A database counts as
loaded when its `bench_meta` row names the scale and the fingerprint of the generator, the
migrations and the bench's own additions (`EXTRAS`) it was loaded with; otherwise it is
reset and loaded again. Loading is all or nothing: `bench_meta` is written last, so a load
that failed or was killed half-way is simply redone by the next run. An advisory lock
serialises loaders, so two bench runs (or the subscription bench) never load one database
at the same time.

On top of the generated data (core/seed.py) every bench database holds, in acme:
- 60 more comments on WEB #1 (the `issue_page` query reads 50 of them), and the same 3
  labels at every scale (the generator draws 0 to 3 at random),
- DEEP, a public project of 12,000 issues (the `deep_page` query reads issues 10,001-10,020),
- BENCH, a public project without issues, where the `mutation` query creates issues; they
  are deleted at the start of each run and after the `mutation` query (`reset_writes`), so
  that every run and every query after it reads the data as loaded.
The same rows at every scale: per-request work must not depend on the scale.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from core import seed
from core.embedded import start_embedded
from core.migrate import migrate, migration_files
from core.settings import get_settings
from server.__main__ import demo_password_hashes

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
BCRYPT_ROUNDS = "4"
LOAD_LOCK = 7_241_777  # advisory lock key: one loader per database at a time

ORGANIZATION = "acme"
ISSUE_PAGE_PROJECT, ISSUE_PAGE_NUMBER, EXTRA_COMMENTS = "WEB", 1, 60
DEEP_PROJECT, DEEP_ISSUES = "DEEP", 12_000
WRITE_PROJECT = "BENCH"

CREATE_META = """
CREATE TABLE bench_meta (
    scale        double precision NOT NULL,
    fingerprint  text NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT now()
)
"""

# Deterministic additions, in SQL; authors cycle through the first 1,000 users (or all of
# them at scales below 0.5), which exist at every scale.
EXTRAS = f"""
WITH target AS (
    SELECT i.id, i.created_at FROM issues i
    JOIN projects p ON p.id = i.project_id
    JOIN organizations o ON o.id = p.organization_id
    WHERE o.slug = '{ORGANIZATION}' AND p.key = '{ISSUE_PAGE_PROJECT}'
      AND i.number = {ISSUE_PAGE_NUMBER}
), people AS (SELECT least(1000, max(id)) AS n FROM users)
INSERT INTO comments (issue_id, author_id, body, created_at, updated_at)
SELECT target.id, 1 + (g * 37) % people.n,
       'Bench comment ' || g || ': cache layout timeout migration search export billing',
       target.created_at + interval '1 day' + g * interval '1 minute',
       target.created_at + interval '1 day' + g * interval '1 minute'
FROM target, people, generate_series(1, {EXTRA_COMMENTS}) AS g;

CREATE TEMPORARY TABLE issue_page_target ON COMMIT DROP AS
SELECT i.id, i.project_id FROM issues i
JOIN projects p ON p.id = i.project_id
JOIN organizations o ON o.id = p.organization_id
WHERE o.slug = '{ORGANIZATION}' AND p.key = '{ISSUE_PAGE_PROJECT}'
  AND i.number = {ISSUE_PAGE_NUMBER};
DELETE FROM issue_labels il USING issue_page_target t WHERE il.issue_id = t.id;
INSERT INTO issue_labels (issue_id, label_id)
SELECT t.id, l.id FROM issue_page_target t
CROSS JOIN LATERAL (
    SELECT l.id FROM labels l WHERE l.project_id = t.project_id ORDER BY l.name LIMIT 3
) AS l;

INSERT INTO projects (organization_id, key, name, description, visibility, created_at)
SELECT o.id, k.key, 'Project ' || k.key, k.description, 'PUBLIC',
       timestamptz '2026-01-04 09:00+00'
FROM organizations o,
     (VALUES ('{DEEP_PROJECT}', 'A project with {DEEP_ISSUES} issues (bench).'),
             ('{WRITE_PROJECT}', 'Where the bench creates issues.')) AS k(key, description)
WHERE o.slug = '{ORGANIZATION}';

WITH deep AS (
    SELECT p.id FROM projects p JOIN organizations o ON o.id = p.organization_id
    WHERE o.slug = '{ORGANIZATION}' AND p.key = '{DEEP_PROJECT}'
), people AS (SELECT least(1000, max(id)) AS n FROM users)
INSERT INTO issues (project_id, number, title, body, state, priority, author_id,
                    assignee_id, created_at, updated_at, closed_at)
SELECT deep.id, g, 'Deep issue #' || g, 'Issue ' || g || ' of the deep project: sync retry.',
       CASE WHEN g % 3 = 0 THEN 'CLOSED' ELSE 'OPEN' END, g % 5, 1 + (g * 7) % people.n,
       CASE WHEN g % 2 = 0 THEN 1 + (g * 11) % people.n END,
       timestamptz '2026-01-05 09:00+00' + g * interval '1 minute',
       timestamptz '2026-01-05 09:00+00' + g * interval '1 minute' + interval '1 hour',
       CASE WHEN g % 3 = 0
            THEN timestamptz '2026-01-05 09:00+00' + g * interval '1 minute' + interval '1 day'
       END
FROM deep, people, generate_series(1, {DEEP_ISSUES}) AS g;

UPDATE projects p SET issue_count = coalesce(
    (SELECT max(number) FROM issues i WHERE i.project_id = p.id), 0)
WHERE p.key IN ('{DEEP_PROJECT}', '{WRITE_PROJECT}');
"""


@dataclass(frozen=True, slots=True)
class Sizes:
    """Row counts of the big tables, for the report."""

    users: int
    projects: int
    issues: int
    comments: int

    def text(self) -> str:
        return (
            f"{self.users:,} users, {self.projects:,} projects, {self.issues:,} issues, "
            f"{self.comments:,} comments"
        )


def database_name(scale: float) -> str:
    return "issuegraph_bench_s" + f"{scale:g}".replace(".", "_")


def data_fingerprint() -> str:
    digest = hashlib.sha256(Path(seed.__file__).read_bytes())
    for version, sql in migration_files():
        digest.update(version.encode() + b"\0" + sql.encode())
    digest.update(b"\0extras\0" + EXTRAS.encode())
    return digest.hexdigest()[:16]


async def bench_database(scale: float) -> str:
    """Return the URL of the database for `scale`, loading it first if needed."""
    name = database_name(scale)
    url = await _create(name)
    fingerprint = data_fingerprint()
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", LOAD_LOCK)
        try:
            if await _loaded(connection) == (scale, fingerprint):
                log.info("database %s: already loaded at scale %g", name, scale)
                return url
            await _load(connection, name, scale, fingerprint)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", LOAD_LOCK)
    finally:
        await connection.close()
    return url


async def _load(connection: asyncpg.Connection, name: str, scale: float, fingerprint: str) -> None:
    log.info("database %s: loading scale %g …", name, scale)
    started = time.perf_counter()
    # A server left running by a killed run would hold locks: fail rather than wait forever.
    await connection.execute("SET lock_timeout = '30s'")
    await connection.execute("SET synchronous_commit = off")
    await connection.execute("SET maintenance_work_mem = '256MB'")
    await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    await migrate(connection)
    os.environ["BCRYPT_ROUNDS"] = BCRYPT_ROUNDS
    get_settings.cache_clear()
    data = seed.generate(scale, demo_password_hashes(get_settings().bcrypt_rounds))
    log.info(
        "database %s: generated in %.1f s (%s issues, %s comments); copying …",
        name,
        time.perf_counter() - started,
        f"{len(data.issues):,}",
        f"{len(data.comments):,}",
    )
    await seed.load(connection, data)
    del data
    await connection.execute(EXTRAS)
    await connection.execute("VACUUM (ANALYZE)")  # visibility map for index-only scans
    await connection.execute(CREATE_META)
    await connection.execute(
        "INSERT INTO bench_meta (scale, fingerprint) VALUES ($1, $2)", scale, fingerprint
    )
    log.info("database %s: loaded in %.1f s", name, time.perf_counter() - started)


async def reset_writes(url: str) -> int:
    """Delete the issues earlier runs created in BENCH (their events go by cascade)."""
    connection = await asyncpg.connect(url)
    try:
        status = await connection.execute(
            "DELETE FROM issues i USING projects p, organizations o"
            " WHERE p.id = i.project_id AND o.id = p.organization_id"
            " AND o.slug = $1 AND p.key = $2",
            ORGANIZATION,
            WRITE_PROJECT,
        )
        deleted = int(status.split()[-1])
        if deleted:
            await connection.execute("VACUUM (ANALYZE) issues")
            await connection.execute("VACUUM (ANALYZE) events")
        return deleted
    finally:
        await connection.close()


async def start_session(connection: asyncpg.Connection, user_id: int) -> int:
    """A live session of the user for the run's access tokens (which must name one)."""
    return int(
        await connection.fetchval(
            "INSERT INTO sessions (user_id, expires_at, client) VALUES"
            " ($1, now() + interval '1 day', 'bench') RETURNING id",
            user_id,
        )
    )


async def table_sizes(url: str) -> Sizes:
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM projects),"
            " (SELECT count(*) FROM issues), (SELECT count(*) FROM comments)"
        )
        assert row is not None
        return Sizes(*row)
    finally:
        await connection.close()


async def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine (its CPU, and its
    children's, is then measured); None when it cannot be seen from here."""
    connection = await asyncpg.connect(url)
    try:  # read while the backend lives: it exits with the connection
        return _parent_if_postgres(await connection.fetchval("SELECT pg_backend_pid()"))
    finally:
        await connection.close()


def _parent_if_postgres(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not cmdline.startswith(b"postgres"):  # a pid of another machine's server
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def server_description() -> str:
    url = get_settings().database_url
    if not url:
        return f"embedded PostgreSQL ({get_settings().embedded_pgdata})"
    parts = urlsplit(url)
    return f"PostgreSQL at {parts.hostname or 'local socket'}:{parts.port or 5432} (DATABASE_URL)"


async def _create(name: str) -> str:
    server_url = get_settings().database_url
    if not server_url:
        return start_embedded(_pgdata(), name)
    connection = await asyncpg.connect(server_url)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def _pgdata() -> Path:
    path = Path(get_settings().embedded_pgdata)
    return path if path.is_absolute() else ROOT / path


async def _loaded(connection: asyncpg.Connection) -> tuple[float, str] | None:
    if await connection.fetchval("SELECT to_regclass('bench_meta')") is None:
        return None
    row = await connection.fetchrow("SELECT scale, fingerprint FROM bench_meta LIMIT 1")
    return (row["scale"], row["fingerprint"]) if row else None
