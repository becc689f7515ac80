"""Command line: `python -m server run | reset | migrate | seed | schema`.

`run` is what `make run` calls: it finds the database (DATABASE_URL, or an embedded
PostgreSQL it starts and stops), applies migrations, loads the demo data into an empty
database and serves the API with uvicorn (WORKERS processes), saying on standard output
where it is once it answers. `reset` (`make reset`) drops every table and loads the demo
data again at SEED_SCALE (refused under APP_ENV=production).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import bcrypt
from pydantic import ValidationError

from core import logs, seed
from core.embedded import start_embedded
from core.migrate import migrate
from core.settings import PRODUCTION, Settings, get_settings
from loaders.events import purge_events
from server import banner

log = logging.getLogger("issuegraph")


def database_url() -> str:
    settings = get_settings()
    return settings.database_url or start_embedded(settings.embedded_pgdata)


async def prepare_database(url: str, scale: float, *, reset: bool = False) -> banner.Data:
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
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                await seed.record_scale(connection, scale)
            log.info("loaded demo data at scale %s", scale)
        purged = await purge_events(connection, get_settings().event_retention)
        if purged:
            log.info("purged %d events older than EVENT_RETENTION", purged)
        loaded = await seed.loaded_scale(connection)
        if loaded is not None and loaded != scale:
            log.warning(
                "SEED_SCALE is %g, but the database already holds demo data of scale %g, "
                "which is kept: `make reset` (python -m server reset) drops it and loads "
                "scale %g",
                scale,
                loaded,
                scale,
            )
        return banner.Data(await seed.has_demo_users(connection), loaded)
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
    data = asyncio.run(prepare_database(url, settings.seed_scale))
    os.environ["DATABASE_URL"] = url  # worker processes share the database just prepared
    get_settings.cache_clear()
    log.info("serving on %s/graphql", banner.base_url(settings))
    banner.announce_when_ready(settings, data)
    # uvicorn shuts down gracefully on SIGTERM or SIGINT, then raises the signal again for
    # the handler it found: that one ends the process with status 0, as a requested stop.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _stopped)
    uvicorn.run(
        "server.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        log_config=logs.uvicorn_log_config(settings.log_level, settings.log_json),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        timeout_keep_alive=settings.keepalive_timeout,
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # No permessage-deflate (as Node's `ws` by default): an event's `next` message is a
        # few hundred bytes, encoded once for all its subscribers (execution/fanout.py);
        # compressing it again for each socket cost more CPU than sending it whole.
        ws_per_message_deflate=False,
    )


def _stopped(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def write_schema(path: Path) -> None:
    from resolvers.schema import schema

    path.write_text(schema.as_str() + "\n")


def main(argv: list[str] | None = None) -> None:
    try:
        settings = get_settings()
    except ValidationError as invalid:  # say what is wrong in one line, not a traceback
        logs.configure_logging("info", json=os.environ.get("LOG_JSON", "").lower() != "false")
        log.error("cannot start: %s", _reasons(invalid))
        sys.exit(2)
    logs.configure_logging(settings.log_level, json=settings.log_json)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m server")
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="prepare the database and serve the API")
    run_cmd.add_argument("--workers", type=int, default=settings.workers)
    commands.add_parser("reset", help="drop every table and load the demo data again at SEED_SCALE")
    commands.add_parser("migrate", help="apply migrations")
    seed_cmd = commands.add_parser("seed", help="recreate the database with generated data")
    seed_cmd.add_argument("--scale", type=float, default=1.0)
    schema_cmd = commands.add_parser("schema", help="write the SDL")
    schema_cmd.add_argument("path", nargs="?", default="schema.graphql")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.workers)
    elif args.command == "reset":
        reset(settings)
    elif args.command == "migrate":
        asyncio.run(_migrate_only(database_url()))
    elif args.command == "seed":
        asyncio.run(prepare_database(database_url(), args.scale, reset=True))
    elif args.command == "schema":
        write_schema(Path(args.path))


def reset(settings: Settings) -> None:
    if settings.app_env == PRODUCTION:
        log.error("reset drops every table: refused under APP_ENV=production")
        sys.exit(2)
    url = database_url()
    log.warning("dropping every table of %s", _without_password(url))
    asyncio.run(prepare_database(url, settings.seed_scale, reset=True))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _reasons(invalid: ValidationError) -> str:
    return "; ".join(
        str(error["msg"]).removeprefix("Value error, ")
        + ("" if error["type"] == "value_error" else f" ({'.'.join(map(str, error['loc']))})")
        for error in invalid.errors()
    )


async def _migrate_only(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await migrate(connection)
    finally:
        await connection.close()


if __name__ == "__main__":
    main(sys.argv[1:])
