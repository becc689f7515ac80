"""The server under test: a uvicorn process on loopback, started, watched and stopped.

`SERVERS` lists the variants to measure (an app factory, extra environment, and the
queries it answers when not all); add an entry to compare another executor. Each is run
one after the other on the same database with the same load. The process is always
stopped: terminate, wait, kill.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    factory: str = "server.main:create_app"
    env: Mapping[str, str] = field(default_factory=dict)
    queries: tuple[str, ...] | None = None  # the workloads it answers; None: all of them
    description: str = ""

    def answers(self, query: str) -> bool:
        return self.queries is None or query in self.queries


# The API's rate budgets, set so high that the bench never spends them (each response's
# cost is still computed and spent, as in production).
UNLIMITED = str(10**12)
API_ENV = {"RATE_LIMIT_ANONYMOUS": UNLIMITED, "RATE_LIMIT_SIGNED_IN": UNLIMITED}

SERVERS: list[ServerSpec] = [
    ServerSpec(
        "standard",
        env={**API_ENV, "EXECUTOR": "standard"},
        description="the API, graphql-core executing Strawberry resolvers (EXECUTOR=standard)",
    ),
    ServerSpec(
        "compiled",
        env={**API_ENV, "EXECUTOR": "compiled"},
        description="the API, compiled executor (EXECUTOR=compiled, the default); "
        "mutations still run on the standard one",
    ),
    ServerSpec(
        "floor",
        factory="bench.floor:create_app",
        queries=("dashboard", "edges"),
        description="bench/floor.py: no GraphQL, one hand-written json_agg statement "
        "answering the dashboard (and one its edges form, cursors and pageInfo made by "
        "PostgreSQL), PostgreSQL's JSON text passed through (its blanks, "
        '`{"key" : value}`, make it ~10% more bytes than the API\'s compact JSON)',
    ),
]


@dataclass(slots=True)
class Server:
    spec: ServerSpec
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_lines(self) -> list[str]:
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace").splitlines()


def command(spec: ServerSpec, port: int, workers: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        spec.factory,
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--ws-per-message-deflate",  # as `python -m server run` serves (server/__main__.py)
        "false",
    ]


@contextmanager
def running_server(
    spec: ServerSpec,
    database_url: str,
    port: int,
    extra_env: Mapping[str, str] | None = None,
    cpus: frozenset[int] | None = None,
    workers: int = 1,
) -> Iterator[Server]:
    """Start the server on `database_url` (on the CPUs `cpus` only, when given) with
    `workers` processes, wait until it answers /healthz, stop it after."""
    _check_port_free(port)
    metrics = tempfile.TemporaryDirectory() if workers > 1 else None
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "SERVER_TIMING": "true",
        "LOG_LEVEL": "warning",
        **(extra_env or {}),
        **spec.env,
    }
    if metrics is not None:  # several workers count their metrics in files there
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics.name
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(
            command(spec, port, workers),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
        server = Server(spec, process, log_file)
        try:
            _wait_healthy(server, port)
            yield server
        finally:
            _stop(process)
            if metrics is not None:
                metrics.cleanup()


def _family(parent: int) -> Iterator[tuple[Path, list[str]]]:
    """The /proc entry and stat fields (those after the name) of `parent` and of each of its
    living children."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
        if int(entry.name) == parent or int(fields[1]) == parent:
            yield entry, fields


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: 14, 15 of proc(5)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of a process and of its living children (a server
    of several workers: the supervisor and each worker), from /proc/<pid>/stat."""
    return sum(_cpu(fields) for _, fields in _family(pid))


# Process titles of PostgreSQL's shared machinery (not a client backend): counted for any
# database. A client backend's title is "postgres: <user> <database> <host> <activity>".
_AUXILIARY = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum",
    "logical",
    "parallel worker",
    "archiver",
    "walsender",
    "walreceiver",
    "startup",
    "io worker",
    "stats",
    "slotsync",
    "walsummarizer",
)


def database_cpu_seconds(postmaster: int, database: str) -> float:
    """CPU of a PostgreSQL server's main process, its background processes and the
    backends connected to `database`; the backends of other databases (tests sharing the
    embedded server) are left out, as are backends that have exited."""
    total = 0.0
    for entry, fields in _family(postmaster):
        if int(entry.name) != postmaster:
            try:
                title = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:  # exited meanwhile
                continue
            title = title.replace("\0", " ").removeprefix("postgres:").strip()
            cluster, _, rest = title.partition(": ")  # "15/main: checkpointer"
            if rest and " " not in cluster:
                title = rest
            if not title.startswith(_AUXILIARY) and title.split()[1:2] != [database]:
                continue
        total += _cpu(fields)
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all processors of the machine have spent busy (not idle) so far."""
    line = Path("/proc/stat").read_text().splitlines()[0]  # "cpu  user nice system idle …"
    values = [int(v) for v in line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    guest = sum(values[8:10])  # already counted in user and nice
    return (sum(values) - idle - guest) / CLOCK_TICKS


def _check_port_free(port: int) -> None:
    with socket.socket() as probe:
        if probe.connect_ex((HOST, port)) == 0:
            raise RuntimeError(f"{HOST}:{port} is already in use; pass another --port")


def _wait_healthy(server: Server, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError("the server exited at start:\n" + _tail(server))
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"the server did not answer /healthz in {START_TIMEOUT:g} s:\n" + _tail(server)
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log.warning("the server did not stop in %g s; killing it", STOP_TIMEOUT)
        process.kill()
        process.wait(STOP_TIMEOUT)


def _tail(server: Server, lines: int = 30) -> str:
    return "\n".join(server.log_lines()[-lines:])
