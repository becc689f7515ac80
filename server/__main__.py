"""Command line: `python -m server run | migrate | seed | schema`.

`run` is what `make run` calls: it finds the database (DATABASE_URL, or an embedded
PostgreSQL it starts and stops), applies migrations, loads the demo data into an empty
database and serves the API with uvicorn (WORKERS processes).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import asyncpg
import bcrypt

from core import seed
from core.embedded import start_embedded
from core.migrate import migrate
from core.settings import get_settings
from loaders.events import purge_events

log = logging.getLogger("issuegraph")


def database_url() -> str:
    settings = get_settings()
    return settings.database_url or start_embedded(settings.embedded_pgdata)


async def prepare_database(url: str, scale: float, *, reset: bool = False) -> None:
    connection = await asyncpg.connect(url)
    try:
        if reset:
            await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        applied = await migrate(connection)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        if await seed.is_empty(connection):
            hashes = demo_password_hashes(get_settings().bcrypt_rounds)
            await seed.load(connection, seed.generate(scale, hashes))
            log.info("loaded demo data at scale %s", scale)
        purged = await purge_events(connection, get_settings().event_retention)
        if purged:
            log.info("purged %d events older than EVENT_RETENTION", purged)
    finally:
        await connection.close()


def demo_password_hashes(rounds: int) -> dict[str, str]:
    salt = bcrypt.gensalt(rounds)
    return {
        login: bcrypt.hashpw(password.encode(), salt).decode()
        for login, _name, _email, password, _bio, _admin in seed.DEMO_USERS
    }


def run(workers: int) -> None:
    import uvicorn

    settings = get_settings()
    url = database_url()
    asyncio.run(prepare_database(url, settings.seed_scale))
    os.environ["DATABASE_URL"] = url  # worker processes share the database just prepared
    get_settings.cache_clear()
    log.info("serving on http://%s:%s/graphql", settings.host, settings.port)
    uvicorn.run(
        "server.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        timeout_keep_alive=settings.keepalive_timeout,
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


def write_schema(path: Path) -> None:
    from resolvers.schema import schema

    path.write_text(schema.as_str() + "\n")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m server")
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="prepare the database and serve the API")
    run_cmd.add_argument("--workers", type=int, default=get_settings().workers)
    commands.add_parser("migrate", help="apply migrations")
    seed_cmd = commands.add_parser("seed", help="recreate the database with generated data")
    seed_cmd.add_argument("--scale", type=float, default=1.0)
    schema_cmd = commands.add_parser("schema", help="write the SDL")
    schema_cmd.add_argument("path", nargs="?", default="schema.graphql")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.workers)
    elif args.command == "migrate":
        asyncio.run(_migrate_only(database_url()))
    elif args.command == "seed":
        asyncio.run(prepare_database(database_url(), args.scale, reset=True))
    elif args.command == "schema":
        write_schema(Path(args.path))


async def _migrate_only(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await migrate(connection)
    finally:
        await connection.close()


if __name__ == "__main__":
    main(sys.argv[1:])
