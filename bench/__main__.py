"""Command line: `python -m bench [--scale N ...] [--duration S] [--concurrency C] …`.

    python -m bench                                 scale 1, every query, every server
    python -m bench --scale 1 --scale 10            and scale 10 (loaded once, ~1M comments)
    python -m bench --server compiled --query dashboard --duration 5

The load comes from wrk (bench/load.py; the server pinned to the last CPU and wrk to the
first, unless --no-pin). Prints the table, the ratios to the json_agg floor of the
queries it answers (dashboard, edges) and (with several scales)
the per-request figures of each scale side by side to stdout (progress goes to stderr),
writes the full report to `--out`, and exits 1 if any request or set-up failed or two
servers answered a query differently. `python -m bench --subscriptions [...]` runs the
subscription benchmark (bench/subscriptions.py) instead, `python -m bench --instructions
[...]` counts instructions per request under valgrind (bench/instructions.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
import httpx

from bench import report
from bench.database import (
    bench_database,
    database_name,
    postmaster_pid,
    reset_writes,
    server_description,
    start_session,
    table_sizes,
)
from bench.graphql import Workload, first_difference, send, signed_in_headers
from bench.load import Measurement, Pinning, client, measure, require_wrk
from bench.queries import WORKLOADS
from bench.report import Row, Run
from bench.server import SERVERS, Server, ServerSpec, machine_busy_seconds, running_server
from domain.auth import Tokens

log = logging.getLogger("bench")

USER = "alice"  # the signed-in workloads' viewer: OWNER of acme
ISSUER, AUDIENCE, TOKEN_TTL = "issuegraph", "issuegraph-api", 3600
REFERENCE = "compiled"  # the floor's answer must equal this server's


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scale",
        type=float,
        action="append",
        help="data set scale; repeat for several (default 1)",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds measured per query (default 10)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=10, help="concurrent connections (default 10)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of discarded load before each measurement (default 2)",
    )
    parser.add_argument("--port", type=int, default=8100, help="server port (default 8100)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (default 1); with more than one the server is not pinned "
        "(wrk still is) and its CPU is the sum of its processes'",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server to the last CPU and wrk to the first",
    )
    names = [spec.name for spec in SERVERS]
    parser.add_argument(
        "--server",
        action="append",
        choices=names,
        help=f"run only this server; repeat for several (default all: {', '.join(names)})",
    )
    queries = [workload.name for workload in WORKLOADS]
    parser.add_argument(
        "--query",
        action="append",
        choices=queries,
        help=f"run only this query; repeat for several (default all: {', '.join(queries)})",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="seconds to wait, before each measurement, for other processes to leave the "
        "machine idle; no more after two waits in a row ran out (default 10; 0: never)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results/latest.md"),
        help="where to write the report (default bench/results/latest.md)",
    )
    args = parser.parse_args(argv)
    args.scale = args.scale or [1.0]
    args.quiet = Quiet(args.quiet_wait)
    args.pinning = Pinning.split() if args.pin else Pinning()
    if args.workers > 1:  # the workers share every CPU; wrk keeps its own
        args.pinning = Pinning(None, args.pinning.client)
    if args.duration <= 0 or args.warmup < 0 or args.concurrency < 1 or args.workers < 1:
        parser.error("--duration must be > 0, --warmup >= 0, --concurrency >= 1 and --workers >= 1")
    return args


class Scale:
    """One scale's database and what the servers answered on it, to compare them."""

    def __init__(
        self,
        scale: float,
        url: str,
        user: tuple[int, int],
        secret: str,
        database_pid: int | None,
    ) -> None:
        self.scale = scale
        self.url = url
        self.name = database_name(scale)
        self.user_id, self.session_id = user  # the signed-in user and a session of theirs
        self.secret = secret
        self.database_pid = database_pid
        self.answers: dict[tuple[str, str], Any] = {}  # (query, server): the data

    def headers(self, workload: Workload) -> dict[str, str] | None:
        if not workload.signed_in:
            return None
        tokens = Tokens(self.secret, ISSUER, AUDIENCE, TOKEN_TTL)
        token = tokens.issue(self.user_id, self.session_id).token
        return signed_in_headers(token)


async def run(args: argparse.Namespace) -> Run:
    specs = [spec for spec in SERVERS if not args.server or spec.name in args.server]
    workloads = [w for w in WORKLOADS if not args.query or w.name in args.query]
    result = Run(
        servers={spec.name: spec.description for spec in specs}, queries=[w.name for w in workloads]
    )
    secret = secrets.token_urlsafe(32)
    for scale in args.scale:
        url = await bench_database(scale)
        deleted = await reset_writes(url)
        if deleted:
            log.info("scale %g: deleted %d issues earlier runs created", scale, deleted)
        result.sizes[scale] = (await table_sizes(url)).text()
        database_pid = await postmaster_pid(url)
        if database_pid is None:
            result.notes.append(
                f"scale {scale:g}: PostgreSQL is not on this machine (or not "
                "visible): its CPU is not measured"
            )
        here = Scale(scale, url, await _signed_in(url, USER), secret, database_pid)
        for spec in specs:
            chosen = [w for w in workloads if spec.answers(w.name)]
            if not chosen:
                continue
            log.info("scale %g: starting server %s on port %d", scale, spec.name, args.port)
            with running_server(
                spec, url, args.port, {"JWT_SECRET": secret}, args.pinning.server, args.workers
            ) as server:
                await run_workloads(server, chosen, here, args, result)
                result.server_logs[f"{spec.name} (scale {scale:g})"] = server.log_lines()
    return result


async def run_workloads(
    server: Server, workloads: list[Workload], scale: Scale, args: argparse.Namespace, result: Run
) -> None:
    async with client(args.port, args.concurrency) as http:
        for workload in workloads:
            result.rows.append(await run_workload(http, server, workload, scale, args, result))
            if workload.writes:
                await reset_writes(scale.url)
            if (code := server.process.poll()) is not None:
                result.problems.append(
                    f"server {server.spec.name} (scale {scale.scale:g}) exited with code "
                    f"{code} during {workload.name}; later queries were not run"
                )
                return


async def run_workload(
    http: httpx.AsyncClient,
    server: Server,
    workload: Workload,
    scale: Scale,
    args: argparse.Namespace,
    result: Run,
) -> Row:
    name = server.spec.name
    row = Row(scale.scale, name, workload.name, Measurement())
    headers = scale.headers(workload)
    try:
        body = await workload.body(http)
        probe = await send(http, body, headers)
    except (RuntimeError, httpx.HTTPError) as exc:
        row.setup_error = str(exc)
        log.error("%s on %s: set-up failed: %s", workload.name, name, exc)
        return row
    problem = probe.problem_with(workload.check)
    if problem is not None:
        row.setup_error = f"first request: {problem}"
        log.error("%s on %s: %s", workload.name, name, row.setup_error)
        return row
    data = probe.payload["data"]
    row.shape = report.shape(data)
    if workload.deterministic:
        difference = await compare(workload, name, data, scale, args, result)
        if difference is not None and server.spec.queries is not None:
            # A stand-in that answers differently from the API measures nothing worth having.
            row.setup_error = f"DIFFERENT DATA: {difference}"
            return row
    await args.quiet.wait()
    log.info(
        "scale %g, %s, %s: %s; measuring %g s after %g s warm-up",
        scale.scale,
        name,
        workload.name,
        report.shape_text(row.shape),
        args.duration,
        args.warmup,
    )
    row.measurement = await measure(
        args.port,
        body,
        server_pid=server.pid,
        concurrency=args.concurrency,
        warmup=args.warmup,
        duration=args.duration,
        headers=headers,
        database=None if scale.database_pid is None else (scale.database_pid, scale.name),
        cpus=args.pinning.client,
    )
    # wrk checks each response's status and errors; the workload's own check (a
    # mutation's userErrors) is run again on a request sent after the window.
    last = await send(http, body, headers)
    problem = last.problem_with(workload.check)
    if problem is not None:
        row.measurement.fail(f"after the window: {problem}")
    return row


QUIET_CORES = 0.25  # other processes' CPU under which the machine counts as quiet
QUIET_SAMPLE = 0.5  # seconds


class Quiet:
    """Before each measurement, wait (at most `limit` seconds) until other processes leave
    the machine nearly idle: nothing of the bench runs then, so whatever is busy is other
    work, which would skew the measurement. Once two waits in a row ran out, the machine
    is taken as busy for good and the bench no longer waits (until it finds it quiet
    again). The report's "other CPU" says what remained during each window."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.timeouts = 0

    async def wait(self) -> None:
        limit = self.limit if self.timeouts < 2 else 0.0
        deadline = time.monotonic() + limit
        waited = False
        while True:
            before = machine_busy_seconds()
            await asyncio.sleep(QUIET_SAMPLE)
            busy = (machine_busy_seconds() - before) / QUIET_SAMPLE
            if busy < QUIET_CORES:
                self.timeouts = 0
                break
            if time.monotonic() >= deadline:
                self.timeouts += 1
                break
            if not waited:
                log.info("other processes use %.2f cores; waiting up to %g s", busy, limit)
                waited = True
        if waited or busy >= QUIET_CORES:
            log.info("measuring with other processes using %.2f cores", busy)


async def compare(
    workload: Workload, name: str, data: Any, scale: Scale, args: argparse.Namespace, result: Run
) -> str | None:
    """Check a server's answer against the others': the floor against the compiled
    server's (fetched now if it has not run), every API server against the first that
    answered. Returns the difference, also logged and recorded as a problem."""
    scale.answers[workload.name, name] = data
    spec = next(s for s in SERVERS if s.name == name)
    if spec.queries is not None:  # a stand-in, not the API
        reference = REFERENCE
        if (workload.name, reference) not in scale.answers:
            scale.answers[workload.name, reference] = await fetch_answer(
                reference, workload, scale, args
            )
    else:
        reference = next(server for (query, server) in scale.answers if query == workload.name)
    if reference == name:
        return None
    difference = first_difference(scale.answers[workload.name, reference], data)
    if difference is None:
        log.info("%s on %s: data equal to %s's", workload.name, name, reference)
        return None
    message = (
        f"{workload.name} (scale {scale.scale:g}): {name}'s data differs from "
        f"{reference}'s; the first difference ({reference} != {name}) at {difference}"
    )
    log.error("DIFFERENT DATA: %s", message)
    if spec.queries is None:  # a stand-in's row carries it: it is not measured
        result.problems.append("DIFFERENT DATA: " + message)
    return message


async def fetch_answer(
    name: str, workload: Workload, scale: Scale, args: argparse.Namespace
) -> Any:
    """Start server `name` on the next port just to get its answer to `workload`."""
    spec: ServerSpec = next(s for s in SERVERS if s.name == name)
    log.info("starting %s on port %d for its answer to %s", name, args.port + 1, workload.name)
    with running_server(spec, scale.url, args.port + 1, {"JWT_SECRET": scale.secret}):
        async with client(args.port + 1, 1) as http:
            reply = await send(http, await workload.body(http), scale.headers(workload))
    problem = reply.problem_with(workload.check)
    if problem is not None:
        raise RuntimeError(f"{name} failed {workload.name}: {problem}")
    return reply.payload["data"]


async def _signed_in(url: str, login: str) -> tuple[int, int]:
    """The user's id and a new session of theirs."""
    connection = await asyncpg.connect(url)
    try:
        user_id = await connection.fetchval("SELECT id FROM users WHERE login = $1", login)
        if user_id is None:
            raise RuntimeError(f"the bench database has no user {login}")
        return int(user_id), await start_session(connection, user_id)
    finally:
        await connection.close()


def main(argv: list[str]) -> int:
    if "--subscriptions" in argv:  # the subscription benchmark instead: bench/subscriptions.py
        from bench import subscriptions

        return subscriptions.main([arg for arg in argv if arg != "--subscriptions"])
    if "--instructions" in argv:  # instructions per request instead: bench/instructions.py
        from bench import instructions

        return instructions.main([arg for arg in argv if arg != "--instructions"])
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, _interrupt)
    args = parse_args(argv)
    try:
        require_wrk()
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    load_before = os.getloadavg()[0]
    try:
        result = asyncio.run(run(args))
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except (RuntimeError, OSError, asyncpg.PostgresError) as exc:  # OSError: timeouts too
        log.error("bench failed: %s: %s", type(exc).__name__, exc)
        return 1
    conditions = report.conditions(
        scales=args.scale,
        duration=args.duration,
        warmup=args.warmup,
        concurrency=args.concurrency,
        database=server_description(),
        command=" ".join(["python -m bench", *argv]),
        load_before=load_before,
        quiet_wait=args.quiet_wait,
        pinning=args.pinning.text(),
        workers=args.workers,
    )
    print(report.summary(result))
    report.write(args.out, report.document(result, conditions))
    for note in report.notes(result):
        log.warning("note: %s", note)
    if result.failures:
        log.error("%d failed requests or set-ups; see %s", result.failures, args.out)
    log.info("report written to %s", args.out)
    return 1 if result.failures else 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
