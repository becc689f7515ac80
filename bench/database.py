"""The bench databases: one per scale, loaded once and reused while the data is current.

The server is DATABASE_URL's when set, else the embedded PostgreSQL. A database counts as
loaded when its `bench_meta` row names the scale and the fingerprint of the generator and
migrations it was loaded with; otherwise it is reset and loaded again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app import seed
from app.__main__ import prepare_database
from app.embedded import start_embedded
from app.migrate import migration_files
from app.settings import get_settings

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
BCRYPT_ROUNDS = "4"

CREATE_META = """
CREATE TABLE bench_meta (
    scale        double precision NOT NULL,
    fingerprint  text NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT now()
)
"""


def database_name(scale: float) -> str:
    return "issuegraph_bench_s" + f"{scale:g}".replace(".", "_")


def data_fingerprint() -> str:
    digest = hashlib.sha256(Path(seed.__file__).read_bytes())
    for version, sql in migration_files():
        digest.update(version.encode() + b"\0" + sql.encode())
    return digest.hexdigest()[:16]


async def bench_database(scale: float) -> str:
    """Return the URL of the database for `scale`, loading it first if needed."""
    name = database_name(scale)
    url = await _create(name)
    fingerprint = data_fingerprint()
    if await _loaded(url) == (scale, fingerprint):
        log.info("database %s: already loaded at scale %g", name, scale)
        return url
    log.info("database %s: loading scale %g …", name, scale)
    started = time.perf_counter()
    os.environ["BCRYPT_ROUNDS"] = BCRYPT_ROUNDS
    get_settings.cache_clear()
    await prepare_database(url, scale, reset=True)
    await _record(url, scale, fingerprint)
    log.info("database %s: loaded in %.1f s", name, time.perf_counter() - started)
    return url


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


async def _loaded(url: str) -> tuple[float, str] | None:
    connection = await asyncpg.connect(url)
    try:
        if await connection.fetchval("SELECT to_regclass('bench_meta')") is None:
            return None
        row = await connection.fetchrow("SELECT scale, fingerprint FROM bench_meta LIMIT 1")
        return (row["scale"], row["fingerprint"]) if row else None
    finally:
        await connection.close()


async def _record(url: str, scale: float, fingerprint: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(CREATE_META)
        await connection.execute(
            "INSERT INTO bench_meta (scale, fingerprint) VALUES ($1, $2)", scale, fingerprint
        )
    finally:
        await connection.close()
