"""An embedded PostgreSQL (the `pgserver` package) for when DATABASE_URL is unset.

The data lives in a git-ignored folder of the project; the server stops when the process
that started it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE_NAME = "issuegraph"


def start_embedded(pgdata: str | Path, database: str = DATABASE_NAME) -> str:
    """Start (or attach to) the embedded server and return a URL to `database` on it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR as root
        import pgserver

        path = Path(pgdata).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(path, cleanup_mode="stop")  # type: ignore[attr-defined]
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    url = server.get_uri(database)
    log.info("embedded PostgreSQL running", extra={"pgdata": str(path)})
    return url
