"""The load generator: `concurrency` workers send one request back-to-back over keep-alive
connections; requests started during the warm-up are discarded, the rest are measured.

Server CPU is read from /proc at the start and the end of the measured window, so it
covers the requests of the window (and the tail of the last warm-up requests in flight).
PostgreSQL's CPU (its main and background processes and the backends of the bench
database) is read the same way when the database server runs on this machine, and so is
the whole machine's: what other processes used in the window tells how far other work
may have skewed the figures.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.graphql import send
from bench.server import cpu_seconds, database_cpu_seconds, machine_busy_seconds

REQUEST_TIMEOUT = 30.0
MAX_FAILURE_MESSAGES = 5


@dataclass(slots=True)
class Measurement:
    latencies: list[float] = field(default_factory=list)  # seconds, measured window only
    statements: Counter[int | None] = field(default_factory=Counter)
    sizes: Counter[int] = field(default_factory=Counter)
    failures: int = 0
    failure_messages: Counter[str] = field(default_factory=Counter)  # a few, by count
    elapsed: float = 0.0
    server_cpu: float = 0.0  # seconds
    database_cpu: float | None = None  # seconds of PostgreSQL, when it can be seen
    client_cpu: float = 0.0  # seconds of this process
    machine_cpu: float = 0.0  # seconds of every process of the machine

    @property
    def other_share(self) -> float:
        """CPU of other processes during the window, in cores."""
        if not self.elapsed:
            return 0.0
        ours = self.server_cpu + (self.database_cpu or 0.0) + self.client_cpu
        return max(0.0, self.machine_cpu - ours) / self.elapsed

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def client_share(self) -> float:
        """CPU this process used during the window, as a share of one core."""
        return self.client_cpu / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in seconds."""
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan

    def fail(self, message: str) -> None:
        self.failures += 1
        if message in self.failure_messages or len(self.failure_messages) < MAX_FAILURE_MESSAGES:
            self.failure_messages[message] += 1


@dataclass(slots=True)
class _Window:
    start: float = math.inf
    server_cpu: float = 0.0
    database_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_cpu: float = 0.0


Check = Callable[[Any], str | None] | None


async def measure(
    client: httpx.AsyncClient,
    body: bytes,
    *,
    server_pid: int,
    concurrency: int,
    warmup: float,
    duration: float,
    headers: Mapping[str, str] | None = None,
    check: Check = None,
    database: tuple[int, str] | None = None,  # (postmaster pid, database name)
) -> Measurement:
    result = Measurement()
    window = _Window()
    deadline = time.perf_counter() + warmup + duration

    async def open_window() -> None:
        await asyncio.sleep(warmup)
        window.server_cpu = cpu_seconds(server_pid)
        if database is not None:
            window.database_cpu = database_cpu_seconds(*database)
        window.machine_cpu = machine_busy_seconds()
        window.client_cpu = time.process_time()
        window.start = time.perf_counter()

    async def worker() -> None:
        while (started := time.perf_counter()) < deadline:
            await _one(client, body, headers, check, started, window, result)

    bound = warmup + duration + REQUEST_TIMEOUT + 5
    try:
        async with asyncio.timeout(bound), asyncio.TaskGroup() as tasks:
            tasks.create_task(open_window())
            for _ in range(concurrency):
                tasks.create_task(worker())
    except TimeoutError:  # requests hung: report what was measured, as a failure
        result.fail(f"the window did not end within {bound:g} s: requests hung")
    if window.start == math.inf:  # not even the warm-up ended
        return result
    result.server_cpu = cpu_seconds(server_pid) - window.server_cpu
    if database is not None:
        result.database_cpu = database_cpu_seconds(*database) - window.database_cpu
    result.machine_cpu = machine_busy_seconds() - window.machine_cpu
    result.client_cpu = time.process_time() - window.client_cpu
    result.elapsed = time.perf_counter() - window.start
    return result


async def _one(
    client: httpx.AsyncClient,
    body: bytes,
    headers: Mapping[str, str] | None,
    check: Check,
    started: float,
    window: _Window,
    result: Measurement,
) -> None:
    try:
        reply = await send(client, body, headers)
    except httpx.HTTPError as exc:
        result.fail(f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(0.01)  # no busy loop on a refused connection
        return
    problem = reply.problem_with(check)
    if problem is not None:
        result.fail(problem)
    elif started >= window.start:
        result.latencies.append(reply.received - started)
        result.statements[reply.statements] += 1
        result.sizes[reply.size] += 1


def client(port: int, concurrency: int) -> httpx.AsyncClient:
    """HTTP/1.1 keep-alive, one connection per worker, loopback only."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        http1=True,
        http2=False,
        limits=limits,
        timeout=REQUEST_TIMEOUT,
    )
