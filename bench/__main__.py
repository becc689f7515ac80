"""Command line: `python -m bench [--scale N ...] [--duration S] [--concurrency C] …`.

Prints the markdown table to stdout (progress goes to stderr), writes the full report to
`--out`, and exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import asyncpg
import httpx

from bench import report
from bench.database import bench_database, server_description
from bench.graphql import Workload, send
from bench.load import Measurement, client, measure
from bench.queries import WORKLOADS
from bench.report import Row, Run
from bench.server import SERVERS, Server, running_server

log = logging.getLogger("bench")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
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
        "--out",
        type=Path,
        default=Path("bench/results/latest.md"),
        help="where to write the report (default bench/results/latest.md)",
    )
    args = parser.parse_args(argv)
    args.scale = args.scale or [1.0]
    if args.duration <= 0 or args.warmup < 0 or args.concurrency < 1:
        parser.error("--duration must be > 0, --warmup >= 0 and --concurrency >= 1")
    return args


async def run(args: argparse.Namespace) -> Run:
    result = Run()
    for scale in args.scale:
        url = await bench_database(scale)
        for spec in SERVERS:
            log.info("scale %g: starting server %s on port %d", scale, spec.name, args.port)
            with running_server(spec, url, args.port) as server:
                await run_workloads(server, scale, args, result)
                result.server_logs[f"{spec.name} (scale {scale:g})"] = server.log_lines()
    return result


async def run_workloads(
    server: Server, scale: float, args: argparse.Namespace, result: Run
) -> None:
    async with client(args.port, args.concurrency) as http:
        for workload in WORKLOADS:
            result.rows.append(await run_workload(http, server, workload, scale, args))
            if (code := server.process.poll()) is not None:
                result.problems.append(
                    f"server {server.spec.name} (scale {scale:g}) exited with code {code} "
                    f"during {workload.name}; later queries were not run"
                )
                return


async def run_workload(
    http: httpx.AsyncClient,
    server: Server,
    workload: Workload,
    scale: float,
    args: argparse.Namespace,
) -> Row:
    row = Row(scale, server.spec.name, workload.name, Measurement())
    try:
        body = await workload.body(http)
        probe = await send(http, body)
    except (RuntimeError, httpx.HTTPError) as exc:
        row.setup_error = str(exc)
        return row
    if probe.problem is not None:
        row.setup_error = f"first request: {probe.problem}"
        return row
    row.shape = report.shape(probe.payload["data"])
    log.info(
        "%s: %s; measuring %g s after %g s warm-up",
        workload.name,
        report.shape_text(row.shape),
        args.duration,
        args.warmup,
    )
    row.measurement = await measure(
        http,
        body,
        server_pid=server.pid,
        concurrency=args.concurrency,
        warmup=args.warmup,
        duration=args.duration,
    )
    return row


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, _interrupt)
    args = parse_args(argv)
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
    )
    print(report.table(result.rows))
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
