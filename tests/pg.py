"""A throwaway PostgreSQL (the `pgserver` package's binaries) that a test may stop and start.

It lives in a fresh temporary folder of its own and listens only on a Unix socket in that
folder, so it can never clash with the machine's PostgreSQL (127.0.0.1:5432) nor with the
suite's embedded one (.pgdata-test). `pgserver` initialises and first starts it; stopping
and starting again go through its `pg_ctl` (as the `pgserver` system user when running as
root, as pgserver itself does), on the same data folder and socket.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_CTL_TIMEOUT = 60  # seconds: a bound against hanging, not a measurement


class ThrowawayPostgres:
    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR as root
            import pgserver

            # cleanup_mode=None: this class stops the server and deletes the folder itself
            # (pgserver's own clean-up would not know about a restarted postmaster).
            self._server = pgserver.get_server(pgdata, cleanup_mode=None)
        self._pg_ctl = pgserver.pg_ctl
        self.pgdata = pgdata
        info = self._server.get_postmaster_info()
        assert info.socket_dir is not None, "expected a Unix-socket server"
        self.socket_dir: Path = info.socket_dir
        self.user = self._server.system_user  # "pgserver" as root, else None (ourselves)
        self.running = True

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def psql(self, sql: str) -> str:
        return str(self._server.psql(sql))

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast|immediate` (immediate: no checkpoint, like a crash)."""
        self._run(["-w", "-m", mode, "stop"])
        self.running = False

    def start(self) -> None:
        """Start again on the same data folder and socket, as pgserver first started it."""
        self._run(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self.socket_dir}",
                "-l",
                str(self.pgdata / "log"),
                "start",
            ]
        )
        self.running = True

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.pgdata / "log").read_text().splitlines()[-lines:])
        return ""

    def destroy(self) -> None:
        """Stop the server (if it runs) and delete its folder; never raises."""
        with contextlib.suppress(Exception):
            self._run(["-w", "-m", "immediate", "stop"])
        self.running = False
        with contextlib.suppress(Exception):
            from pgserver import PostgresServer

            PostgresServer._instances.pop(self.pgdata, None)
        shutil.rmtree(self.pgdata, ignore_errors=True)

    def _run(self, args: list[str]) -> None:
        self._pg_ctl(args, pgdata=self.pgdata, user=self.user, timeout=PG_CTL_TIMEOUT)


@contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A fresh PostgreSQL in a new temporary folder; stopped and deleted afterwards."""
    # Directly under the system temp dir (sticky, world-traversable), so that the
    # `pgserver` user can reach it without loosening the permissions of pytest's folders;
    # and a short path, so that the Unix socket can live in the data folder itself.
    pgdata = Path(tempfile.mkdtemp(prefix="issuegraph-pg-"))
    server: ThrowawayPostgres | None = None
    try:
        server = ThrowawayPostgres(pgdata)
        yield server
    finally:
        if server is not None:
            server.destroy()
        else:  # failed half-way through initdb or the first start
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                import pgserver

                pgserver.pg_ctl(
                    ["-w", "-m", "immediate", "stop"],
                    pgdata=pgdata,
                    user="pgserver" if _is_root() else None,
                    timeout=PG_CTL_TIMEOUT,
                )
            shutil.rmtree(pgdata, ignore_errors=True)


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
