"""The load generator: wrk (a C program, Debian's package `wrk`), `concurrency` keep-alive
connections sending one request back-to-back, first for the warm-up (discarded), then for
the measured window.

The load generator must not take its CPU from what it measures: in Python, it took a third
to a half of a core on a 2-core machine, which came off PostgreSQL's share and made the
API look closer to the json_agg floor than it is. wrk takes a few percent of a core; with
two CPUs or more it runs pinned to the first (`Pinning`) and the server to the last, so
the server has a core of its own (PostgreSQL may run on either, as it would beside an
API server on one machine).

Server CPU is read from /proc at the start and the end of the measured window, so it
covers the requests of the window (the warm-up's last requests end in a pause before it).
PostgreSQL's CPU (its main and background processes and the backends of the bench
database) is read the same way when the database server runs on this machine, and so is
the whole machine's and wrk's own: what other processes used in the window tells how far
other work may have skewed the figures.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from bench.graphql import HEADERS
from bench.server import cpu_seconds, database_cpu_seconds, machine_busy_seconds

REQUEST_TIMEOUT = 30.0
SETTLE = 0.3  # seconds between the warm-up and the window: the warm-up's last requests end
SCRIPT = Path(__file__).with_name("wrk.lua")
RESULT = re.compile(r"^BENCH-RESULT (.*)$", re.MULTILINE)
INSTALL_WRK = (
    "wrk is not installed; it generates the load. Install it: `apt-get install wrk` "
    "(Debian, Ubuntu), `dnf install wrk` (Fedora), `brew install wrk` (macOS); "
    "`make bench` installs it itself with apt-get where it runs as root"
)


@dataclass(slots=True)
class Measurement:
    requests: int = 0  # answered without failure in the measured window
    latencies: dict[int, float] = field(default_factory=dict)  # percentile: seconds
    statements: Counter[int | None] = field(default_factory=Counter)
    sizes: Counter[int] = field(default_factory=Counter)
    failures: int = 0
    failure_messages: Counter[str] = field(default_factory=Counter)  # a few, by count
    elapsed: float = 0.0
    server_cpu: float = 0.0  # seconds
    database_cpu: float | None = None  # seconds of PostgreSQL, when it can be seen
    client_cpu: float = 0.0  # seconds of the load generator
    machine_cpu: float = 0.0  # seconds of every process of the machine

    @property
    def other_share(self) -> float:
        """CPU of other processes during the window, in cores."""
        if not self.elapsed:
            return 0.0
        ours = self.server_cpu + (self.database_cpu or 0.0) + self.client_cpu
        return max(0.0, self.machine_cpu - ours) / self.elapsed

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def client_share(self) -> float:
        """CPU the load generator used during the window, as a share of one core."""
        return self.client_cpu / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        """A latency percentile (0.5, 0.9 or 0.99), in seconds, as wrk measured it."""
        return self.latencies.get(round(q * 100), float("nan"))

    def fail(self, message: str, count: int = 1) -> None:
        self.failures += count
        self.failure_messages[message] += count


@dataclass(frozen=True, slots=True)
class Pinning:
    """The CPUs the server and the load generator run on (None: wherever they like)."""

    server: frozenset[int] | None = None
    client: frozenset[int] | None = None

    @classmethod
    def split(cls) -> Pinning:
        """The server on the last CPU, the load generator on the first; no pinning on a
        machine (or a CPU set) of one CPU."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls()
        return cls(frozenset({cpus[-1]}), frozenset({cpus[0]}))

    def text(self) -> str:
        if self.server is None and self.client is not None:
            return f"server on every CPU, wrk on CPU {_cpus(self.client)}"
        if self.server is None or self.client is None:
            return "not pinned"
        return f"server on CPU {_cpus(self.server)}, wrk on CPU {_cpus(self.client)}"


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError(INSTALL_WRK)
    return found


async def measure(
    port: int,
    body: bytes,
    *,
    server_pid: int,
    concurrency: int,
    warmup: float,
    duration: float,
    headers: Mapping[str, str] | None = None,
    database: tuple[int, str] | None = None,  # (postmaster pid, database name)
    cpus: frozenset[int] | None = None,
) -> Measurement:
    result = Measurement()
    with tempfile.NamedTemporaryFile(suffix=".json") as file:
        file.write(body)
        file.flush()
        arguments = [file.name, *(f"{k}: {v}" for k, v in (headers or HEADERS).items())]
        if warmup > 0:
            await _wrk(port, concurrency, warmup, arguments, cpus)
            await asyncio.sleep(SETTLE)
        server_cpu = cpu_seconds(server_pid)
        database_cpu = database_cpu_seconds(*database) if database is not None else 0.0
        machine_cpu = machine_busy_seconds()
        client_cpu = _children_cpu()
        started = time.perf_counter()
        figures = await _wrk(port, concurrency, duration, arguments, cpus)
        result.elapsed = time.perf_counter() - started
        result.server_cpu = cpu_seconds(server_pid) - server_cpu
        if database is not None:
            result.database_cpu = database_cpu_seconds(*database) - database_cpu
        result.machine_cpu = machine_busy_seconds() - machine_cpu
        result.client_cpu = _children_cpu() - client_cpu
    _read(figures, result)
    return result


def _read(figures: dict[str, object], result: Measurement) -> None:
    failures: dict[str, int] = figures["failures"]  # type: ignore[assignment]
    result.failures += sum(failures.values())
    samples: list[str] = figures["samples"]  # type: ignore[assignment]
    for sample in samples:  # the first few kinds of failure, with their counts
        result.failure_messages[sample] = failures.get(sample, 1)
    errors: dict[str, int] = figures["socket_errors"]  # type: ignore[assignment]
    for kind in ("connect", "read", "write", "timeout"):
        if errors[kind]:
            result.fail(f"socket {kind} errors", errors[kind])
    statements: dict[str, int] = figures["statements"]  # type: ignore[assignment]
    result.statements.update({None if k == "none" else int(k): n for k, n in statements.items()})
    sizes: dict[str, int] = figures["sizes"]  # type: ignore[assignment]
    result.sizes.update({int(k): n for k, n in sizes.items()})
    result.requests = sum(result.sizes.values())
    latencies: dict[str, int] = figures["latency_us"]  # type: ignore[assignment]
    result.latencies = {int(p): us / 1e6 for p, us in latencies.items()}
    duration = int(figures["duration_us"]) / 1e6  # type: ignore[call-overload]
    result.elapsed = duration or result.elapsed  # wrk's own window, without its start-up


async def _wrk(
    port: int,
    concurrency: int,
    seconds: float,
    arguments: list[str],
    cpus: frozenset[int] | None,
) -> dict[str, object]:
    command = [
        require_wrk(),
        "--threads",
        "1",
        "--connections",
        str(concurrency),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--timeout",
        f"{REQUEST_TIMEOUT:g}s",
        "--script",
        str(SCRIPT),
        f"http://127.0.0.1:{port}",
        "--",
        *arguments,
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )
    out, err = await process.communicate()
    found = RESULT.search(out.decode(errors="replace"))
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()[-500:]}")
    figures: dict[str, object] = orjson.loads(found.group(1))
    return figures


def _children_cpu() -> float:
    """CPU seconds of this process's ended children (wrk, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def client(port: int, concurrency: int) -> httpx.AsyncClient:
    """HTTP/1.1 keep-alive, loopback only: for set-up and the checked first requests."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        http1=True,
        http2=False,
        limits=limits,
        timeout=REQUEST_TIMEOUT,
    )
