"""The report: a markdown table of the measurements, with the conditions they were taken in."""

from __future__ import annotations

import os
import platform
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import Measurement

CLIENT_CPU_WARNING = 0.8  # share of one core above which the load generator may be the limit
COLUMNS = (
    "scale",
    "server",
    "query",
    "req/s",
    "p50 ms",
    "p99 ms",
    "SQL stmts/req",
    "server CPU ms/req",
    "response bytes",
    "requests",
    "failures",
)


@dataclass(slots=True)
class Row:
    scale: float
    server: str
    query: str
    measurement: Measurement
    shape: Counter[str] = field(default_factory=Counter)
    setup_error: str | None = None

    @property
    def failures(self) -> int:
        return self.measurement.failures + (self.setup_error is not None)

    def cells(self) -> list[str]:
        m = self.measurement
        if self.setup_error is not None or not m.requests:
            return [
                f"{self.scale:g}",
                self.server,
                self.query,
                *["—"] * 6,
                str(m.requests),
                str(self.failures),
            ]
        per_request = m.server_cpu * 1000 / m.requests
        return [
            f"{self.scale:g}",
            self.server,
            self.query,
            f"{m.throughput:,.0f}",
            f"{m.percentile(0.50) * 1000:.1f}",
            f"{m.percentile(0.99) * 1000:.1f}",
            _spread(m.statements),
            f"{per_request:.2f}",
            _spread(m.sizes),
            f"{m.requests:,}",
            str(self.failures),
        ]


@dataclass(slots=True)
class Run:
    """Everything one invocation measured, and what went wrong outside the rows."""

    rows: list[Row] = field(default_factory=list)
    server_logs: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(row.failures for row in self.rows) + len(self.problems)


def shape(data: Any) -> Counter[str]:
    """Count the objects of a response by field name (list items and connection nodes under
    the name of their field) and its scalar values."""
    counts: Counter[str] = Counter()

    def walk(value: Any, name: str) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, name)
        elif isinstance(value, dict):
            if isinstance(value.get("nodes"), list):
                walk(value["nodes"], name)
                rest = {k: v for k, v in value.items() if k != "nodes"}
            else:
                counts[name] += 1
                rest = value
            for key, item in rest.items():
                walk(item, key)
        else:
            counts["scalar values"] += 1

    for key, value in (data or {}).items():
        walk(value, key)
    return counts


def table(rows: Iterable[Row]) -> str:
    lines = [_line(COLUMNS), _line(["---"] * 3 + ["---:"] * (len(COLUMNS) - 3))]
    lines += [_line(row.cells()) for row in rows]
    return "\n".join(lines)


def notes(run: Run) -> list[str]:
    found = list(run.problems)
    for row in run.rows:
        m, label = row.measurement, f"{row.query} (scale {row.scale:g}, {row.server})"
        if row.setup_error:
            found.append(f"{label}: set-up failed: {row.setup_error}")
        if m.failures:
            found.append(
                f"{label}: {m.failures} failed requests: "
                + " | ".join(f"{n}x {msg}" for msg, n in m.failure_messages.most_common())
            )
        if 0 < m.requests < 100:
            found.append(f"{label}: only {m.requests} requests measured; p99 is their maximum")
        if len(m.statements) > 1:
            found.append(f"{label}: SQL statements per request vary: {_histogram(m.statements)}")
        if None in m.statements:
            found.append(f"{label}: some responses had no Server-Timing statement count")
        if len(m.sizes) > 1:
            found.append(f"{label}: response sizes vary: {_histogram(m.sizes)}")
        if m.client_share > CLIENT_CPU_WARNING:
            found.append(
                f"{label}: the load generator used {m.client_share:.0%} "
                "of a core; it may limit the figures"
            )
    for server, lines in run.server_logs.items():
        if lines:
            found.append(
                f"server {server} logged {len(lines)} lines, the last: `{lines[-1][:200]}`"
            )
    return found


def document(run: Run, conditions: dict[str, str]) -> str:
    parts = ["# issuegraph benchmark", ""]
    parts += [f"- {key}: {value}" for key, value in conditions.items()]
    rows = run.rows
    parts += ["", table(rows), "", "## What the responses held", ""]
    parts += [
        f"- {row.query} (scale {row.scale:g}): {shape_text(row.shape)}" for row in rows if row.shape
    ]
    found = notes(run) or ["no failures; statement counts and sizes constant"]
    parts += ["", "## Notes", "", f"- load generator CPU (share of one core): {_client_cpu(rows)}"]
    parts += [f"- {note}" for note in found]
    return "\n".join(parts) + "\n"


def conditions(
    *,
    scales: list[float],
    duration: float,
    warmup: float,
    concurrency: int,
    database: str,
    command: str,
    load_before: float,
) -> dict[str, str]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"`{command}`",
        "commit": _commit(),
        "machine": f"{_nproc()} CPUs (nproc), {_cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        "machine load": f"1-minute load average {load_before:.2f} when the run started "
        "(other work on the machine skews the figures)",
        "python": platform.python_version(),
        "scale": ", ".join(f"{s:g}" for s in scales),
        "load": f"{duration:g} s measured after {warmup:g} s warm-up per query, "
        f"{concurrency} concurrent keep-alive HTTP/1.1 clients (httpx) in one process",
        "server": "one uvicorn process (`--workers 1`) over loopback, anonymous viewer; "
        "server CPU counts that process only, not PostgreSQL",
        "database": database,
    }


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _client_cpu(rows: list[Row]) -> str:
    shares = [
        f"{row.query} (scale {row.scale:g}) {row.measurement.client_share:.0%}"
        for row in rows
        if row.measurement.elapsed
    ]
    return ", ".join(shares) or "n/a"


def _line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _spread(values: Counter[Any]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    low, high = min(known), max(known)
    return f"{low:,}" if low == high else f"{low:,} to {high:,} (varies)"


def _histogram(values: Counter[Any]) -> str:
    return ", ".join(
        f"{value}: {count}x"
        for value, count in sorted(values.items(), key=lambda item: (item[0] is None, item[0] or 0))
    )


def shape_text(counts: Counter[str]) -> str:
    scalars = counts.get("scalar values", 0)
    objects = ", ".join(f"{name} {n:,}" for name, n in counts.items() if name != "scalar values")
    return f"{objects}; {scalars:,} scalar values"


def _nproc() -> int:
    return len(os.sched_getaffinity(0))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
