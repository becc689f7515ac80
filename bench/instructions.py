"""CPU instructions per request, counted by valgrind (callgrind): a figure that does not move.

    python -m bench.instructions [--scale 1] [--query dashboard ...] [--server compiled ...]
                                 [--http]
    python -m bench --instructions …            (the same)

Requests per second and CPU milliseconds swing by a fifth from run to run on a shared
machine; the number of instructions a request executes does not (callgrind counts them,
whatever else the machine does). For each anonymous read of the query set and each
executor, a child process runs the request in-process (its document and variables as a
real server computed them, through the executor, the loaders, a pooled connection with
the server's settings, and the response's JSON encoding), under callgrind, twice: with
LOW and with HIGH requests after the same warm-up. The difference, divided by HIGH - LOW,
is the cost of one request, start-up and imports cancelled out. It leaves out the HTTP
layer and PostgreSQL.

With `--http` the child is the whole server instead: the app `python -m server run` serves,
on uvicorn and its event loop, with the bench's settings (Server-Timing on, budgets too large
to spend), sent the request on one keep-alive connection by a client of raw bytes. Its
figure adds what a request costs outside the executor: the HTTP parsing, the middleware,
the pipeline's steps (limits, budget, deadline, error shaping), metrics and the writes.
The server's work by the clock (uvicorn's tick, the app's background tasks) comes with it,
and under callgrind a request takes a few tens of milliseconds: a small query's figure
moves by up to ~0.3 M from run to run (less with more requests).

The table goes to stdout and to `--out` (default bench/results/instructions.md, with
`--http` bench/results/instructions-http.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench import report
from bench.database import bench_database, server_description
from bench.load import client
from bench.queries import WORKLOADS
from bench.server import API_ENV, HOST, SERVERS, running_server

log = logging.getLogger("bench")

EXECUTORS = ("standard", "compiled")
# 20 requests between the two runs: the cyclic garbage collector runs every so many
# allocations, and over 5 requests one collection more or less moved a small read's count
# by a tenth.
WARMUP, LOW, HIGH = 3, 3, 23
WHOLE_SERVER = (
    "(the whole server: uvicorn, middleware, pipeline, executor, loaders, pooled connection, "
    "JSON encoding, socket writes; no PostgreSQL)"
)
HTTP_NOISE = (
    ", but for the server's work by the clock (uvicorn's tick every 0.1 s, the app's "
    "background tasks), which moves a small query's figure by up to ~0.3 M from run to run"
)
EXECUTOR_ONLY = "(executor, loaders, pooled connection, JSON encoding; no HTTP, no PostgreSQL)"
READS = [w for w in WORKLOADS if not w.signed_in and w.deterministic]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", type=float, default=1.0, help="data set scale (default 1)")
    names = [w.name for w in READS]
    parser.add_argument(
        "--query",
        action="append",
        choices=names,
        help=f"count only this query; repeat for several (default: {', '.join(names)})",
    )
    parser.add_argument(
        "--server",
        action="append",
        choices=EXECUTORS,
        help="count only this executor; repeat for several (default both)",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="through the whole server: uvicorn, the middleware, the pipeline (its limits, "
        "budget and deadline), the response written to a socket",
    )
    parser.add_argument("--port", type=int, default=8100, help="set-up server port (8100)")
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the table (default bench/results/instructions.md, with --http "
        "bench/results/instructions-http.md)",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path(
            "bench/results/instructions-http.md" if args.http else "bench/results/instructions.md"
        )
    return args


async def bodies(url: str, port: int, names: list[str]) -> dict[str, bytes]:
    """Each query's request body, with the variables its set-up computes on a server."""
    spec = next(s for s in SERVERS if s.name == "compiled")
    chosen = [w for w in READS if w.name in names]
    with running_server(spec, url, port, {"JWT_SECRET": secrets.token_urlsafe(32)}):
        async with client(port, 1) as http:
            return {w.name: await w.body(http) for w in chosen}


def count(url: str, executor: str, body: Path, requests: int, http: bool = False) -> int:
    """Instructions of a whole child process that runs `requests` requests."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.instructions",
            "--child-http" if http else "--child",
            url,
            executor,
            str(body),
            str(requests),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{executor} under callgrind failed: {done.stderr[-2000:]}")
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError("callgrind wrote no totals")
    return int(found.group(1))


def per_request(url: str, executor: str, body: Path, http: bool = False) -> float:
    high, low = count(url, executor, body, HIGH, http), count(url, executor, body, LOW, http)
    return (high - low) / (HIGH - LOW)


async def child(url: str, executor_name: str, payload: dict[str, Any], requests: int) -> None:
    """Run one request `WARMUP + requests` times, as a server process would."""
    from core.db import Database
    from core.settings import Settings
    from domain.auth import Tokens
    from domain.context import Services, build_context
    from domain.policy import ANONYMOUS, Access
    from execution.compiled import CompiledExecutor
    from execution.documents import Executor
    from resolvers.schema import schema
    from server.main import GC_THRESHOLDS

    compiled = CompiledExecutor(schema) if executor_name == "compiled" else None
    executor = Executor(schema, compiled=compiled)
    prepared = executor.prepare(payload["query"])
    settings = Settings()
    tokens = Tokens(secrets.token_urlsafe(32), "issuegraph", "issuegraph-api", 60)
    services = Services(settings=settings, access=Access(), tokens=tokens)
    database = await Database.connect(url, min_size=1, max_size=1)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        for _ in range(WARMUP + requests):
            session = database.session()
            context = build_context(session, ANONYMOUS, services)
            result = await executor.execute(prepared, context, payload.get("variables"))
            await session.close()
            if result.errors:
                raise RuntimeError(f"the request failed: {result.errors[0]}")
            orjson.dumps({"data": result.data})
    finally:
        await database.close()


async def http_child(url: str, executor: str, body: bytes, requests: int) -> None:
    """Serve the app with uvicorn in this process, as `python -m server run` does, and send
    it one request `WARMUP + requests` times on one keep-alive connection (a client of raw
    bytes: the same few instructions whatever the server does)."""
    import uvicorn

    os.environ.update(
        {**API_ENV, "DATABASE_URL": url, "EXECUTOR": executor, "SERVER_TIMING": "true"}
    )
    os.environ.update({"LOG_LEVEL": "warning", "JWT_SECRET": secrets.token_urlsafe(32)})
    from core.settings import get_settings
    from server.main import create_app

    get_settings.cache_clear()
    config = uvicorn.Config(
        create_app(),
        host=HOST,
        port=0,  # any free port: several counts may run at once
        log_level="warning",
        log_config=None,
        access_log=False,
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn's Server has a flag, no event
        if serving.done():
            serving.result()  # it could not start: say why
            raise RuntimeError("the server stopped before it started")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection(HOST, port)
    request = (
        b"POST /graphql HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Accept: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (HOST.encode(), port, len(body), body)
    )
    try:
        for _ in range(WARMUP + requests):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: (\d+)", head)
            assert length is not None, head
            answer = await reader.readexactly(int(length.group(1)))
            if not head.startswith(b"HTTP/1.1 200") or answer.startswith(b'{"errors"'):
                raise RuntimeError(f"the request failed: {head!r} {answer[:300]!r}")
    finally:
        writer.close()
        server.should_exit = True
        await serving


def table(scale: float, figures: dict[tuple[str, str], float]) -> str:
    lines = [
        "| scale | query | executor | instructions/request | standard/compiled |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for (query, executor), value in figures.items():
        standard = figures.get((query, "standard"))
        ratio = f"{standard / value:.1f}" if standard and executor == "compiled" else ""
        lines.append(f"| {scale:g} | {query} | {executor} | {value / 1e6:,.2f} M | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child-http"]:
        url, executor, body, requests = argv[1:5]
        import uvloop  # as uvicorn picks it

        uvloop.run(http_child(url, executor, Path(body).read_bytes(), int(requests)))
        return 0
    if argv[:1] == ["--child"]:
        url, executor, body, requests = argv[1:5]
        payload = orjson.loads(Path(body).read_bytes())
        asyncio.run(child(url, executor, payload, int(requests)))
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    args = parse_args(argv)
    if shutil.which("valgrind") is None:
        log.error("valgrind is not installed: it counts the instructions")
        return 1
    names = args.query or [w.name for w in READS]
    executors = args.server or list(EXECUTORS)
    url = asyncio.run(bench_database(args.scale))
    figures: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as directory:
        for name, body in asyncio.run(bodies(url, args.port, names)).items():
            path = Path(directory) / f"{name}.json"
            path.write_bytes(body)
            for executor in executors:
                log.info("counting %s on %s (two runs under callgrind)", name, executor)
                figures[name, executor] = per_request(url, executor, path, args.http)
                log.info("%s on %s: %.2f M", name, executor, figures[name, executor] / 1e6)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    text = "\n".join(
        [
            "# issuegraph: instructions per request",
            "",
            f"- command: `{' '.join(['python -m bench.instructions', *argv])}`",
            f"- commit: {commit or 'unknown'}",
            f"- python: {sys.version.split()[0]}; database: {server_description()}",
            f"- method: callgrind, ({HIGH} - {LOW} requests) after {WARMUP} warm-up, in-process "
            + (WHOLE_SERVER if args.http else EXECUTOR_ONLY),
            f"- machine: {os.cpu_count()} CPUs; the counts do not depend on its load"
            + (HTTP_NOISE if args.http else ""),
            "",
            table(args.scale, figures),
            "",
        ]
    )
    print(text)
    report.write(args.out, text)
    log.info("report written to %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
