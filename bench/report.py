"""The report: a markdown table of the measurements, with the conditions they were taken in."""

from __future__ import annotations

import math
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

CLIENT_CPU_WARNING = 0.25  # share of a core over which wrk takes enough to skew the figures
OTHER_CPU_WARNING = 0.25  # cores other processes may use in a window without a note
COLUMNS = (
    "scale",
    "query",
    "server",
    "req/s",
    "p50 ms",
    "p99 ms",
    "SQL stmts/req",
    "server CPU ms/req",
    "PG CPU ms/req",
    "response bytes",
    "requests",
    "failures",
    "other CPU",
    "wrk CPU",
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

    @property
    def measured(self) -> bool:
        return self.setup_error is None and self.measurement.requests > 0

    def cpu_per_request(self) -> float:
        m = self.measurement
        return m.server_cpu * 1000 / m.requests if m.requests else math.nan

    def database_cpu_per_request(self) -> float:
        m = self.measurement
        if m.database_cpu is None or not m.requests:
            return math.nan
        return m.database_cpu * 1000 / m.requests

    def cells(self) -> list[str]:
        m = self.measurement
        if not self.measured:
            return [
                f"{self.scale:g}",
                self.query,
                self.server,
                *["—"] * 7,
                str(m.requests),
                str(self.failures),
                "—",
                "—",
            ]
        return [
            f"{self.scale:g}",
            self.query,
            self.server,
            f"{m.throughput:,.0f}",
            f"{m.percentile(0.50) * 1000:.1f}",
            f"{m.percentile(0.99) * 1000:.1f}",
            _spread(m.statements),
            f"{self.cpu_per_request():.2f}",
            _number(self.database_cpu_per_request()),
            _spread(m.sizes),
            f"{m.requests:,}",
            str(self.failures),
            f"{m.other_share:.2f}",
            f"{m.client_share:.0%}",
        ]


@dataclass(slots=True)
class Run:
    """Everything one invocation measured, and what went wrong outside the rows."""

    rows: list[Row] = field(default_factory=list)
    server_logs: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # findings that are not failures
    sizes: dict[float, str] = field(default_factory=dict)  # scale: its tables' sizes
    servers: dict[str, str] = field(default_factory=dict)  # name: what it is
    queries: list[str] = field(default_factory=list)  # in the order of WORKLOADS

    @property
    def failures(self) -> int:
        return sum(row.failures for row in self.rows) + len(self.problems)

    def ordered(self) -> list[Row]:
        """By scale, then query, then server, in the order they were configured."""
        scales = list(dict.fromkeys(row.scale for row in self.rows))
        servers = list(self.servers) or list(dict.fromkeys(row.server for row in self.rows))
        queries = self.queries or list(dict.fromkeys(row.query for row in self.rows))
        return sorted(
            self.rows,
            key=lambda r: (
                scales.index(r.scale),
                _index(queries, r.query),
                _index(servers, r.server),
            ),
        )

    def find(self, scale: float, query: str, server: str) -> Row | None:
        return next(
            (r for r in self.rows if (r.scale, r.query, r.server) == (scale, query, server)), None
        )


def shape(data: Any) -> Counter[str]:
    """Count the objects of a response by field name (list items and connection nodes, or
    edges' nodes, under the name of their field) and its scalar values."""
    counts: Counter[str] = Counter()

    def walk(value: Any, name: str) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, name)
        elif isinstance(value, dict):
            if isinstance(value.get("nodes"), list):
                walk(value["nodes"], name)
                rest = {k: v for k, v in value.items() if k != "nodes"}
            elif isinstance(value.get("edges"), list):
                for edge in value["edges"]:
                    walk(edge.get("node"), name)
                    walk({k: v for k, v in edge.items() if k != "node"}, "edge")
                rest = {k: v for k, v in value.items() if k != "edges"}
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


FLOOR, COMPILED, STANDARD = "floor", "compiled", "standard"


def floor_ratios(run: Run) -> list[str]:
    """Per scale and query the floor answers: each API server's req/s as a share of the
    floor's."""
    lines = []
    for scale in dict.fromkeys(row.scale for row in run.rows):
        for query in dict.fromkeys(row.query for row in run.ordered() if row.server == FLOOR):
            floor = run.find(scale, query, FLOOR)
            if floor is None or not floor.measured:
                continue
            f = floor.measurement
            parts = []
            for name in (COMPILED, STANDARD):
                row = run.find(scale, query, name)
                if row is None or not row.measured:
                    continue
                m = row.measurement
                parts.append(
                    f"{name}/floor req/s = **{m.throughput / f.throughput:.2f}** "
                    f"({m.throughput:,.0f} / {f.throughput:,.0f}); CPU ms/req server+PG "
                    f"{_sum_cpu(row)} vs {_sum_cpu(floor)}"
                )
            if parts:
                lines.append(f"- scale {scale:g}, {query}: " + "; ".join(parts))
    return lines


def scale_table(run: Run) -> str | None:
    """Each query and server's figures at the first scale against each other scale."""
    scales = list(dict.fromkeys(row.scale for row in run.rows))
    if len(scales) < 2:
        return None
    base, others = scales[0], scales[1:]
    header = ["query", "server", "figure", f"scale {base:g}"]
    header += [h for s in others for h in (f"scale {s:g}", f"× (scale {s:g} / {base:g})")]
    lines = [_line(header), _line(["---"] * 3 + ["---:"] * (len(header) - 3))]
    figures: list[tuple[str, Any]] = [
        ("req/s", lambda r: r.measurement.throughput),
        ("p50 ms", lambda r: r.measurement.percentile(0.5) * 1000),
        ("server CPU ms/req", Row.cpu_per_request),
        ("PG CPU ms/req", Row.database_cpu_per_request),
        ("SQL stmts/req", lambda r: _mode(r.measurement.statements)),  # the usual count
    ]
    for row in run.ordered():
        if row.scale != base or not row.measured:
            continue
        matches = [run.find(s, row.query, row.server) for s in others]
        if not any(m is not None and m.measured for m in matches):
            continue
        for name, get in figures:
            first = get(row)
            cells = [row.query, row.server, name, _number(first)]
            first = math.nan if first is None else first
            for match in matches:
                if match is None or not match.measured:
                    cells += ["—", "—"]
                    continue
                value = get(match)
                value = math.nan if value is None else value
                ratio = value / first if first and not math.isnan(value) else math.nan
                cells += [_number(value), "—" if math.isnan(ratio) else f"{ratio:.2f}"]
            lines.append(_line(cells))
    return "\n".join(lines)


def summary(run: Run) -> str:
    """What the command prints: the table, the floor ratios, the scale comparison."""
    parts = [table(run.ordered())]
    ratios = floor_ratios(run)
    if ratios:
        parts += [
            "",
            "Against the json_agg floor (req/s ratio; higher is better):",
            *ratios,
        ]
    scaled = scale_table(run)
    if scaled:
        parts += ["", "Per-request cost against table size:", "", scaled]
    return "\n".join(parts)


def notes(run: Run) -> list[str]:
    found = list(run.problems) + list(run.notes)
    for row in run.ordered():
        m, label = row.measurement, f"{row.query} (scale {row.scale:g}, {row.server})"
        if row.setup_error:
            found.append(f"{label}: NOT MEASURED: {row.setup_error}")
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
            found.append(f"{label}: response sizes vary: {_range(m.sizes)}")
        if m.elapsed and m.other_share > OTHER_CPU_WARNING:
            found.append(
                f"{label}: other processes used {m.other_share:.2f} cores of {_nproc()} "
                "during the window; the figures are skewed"
            )
        if m.client_share > CLIENT_CPU_WARNING:
            found.append(
                f"{label}: wrk used {m.client_share:.0%} of a core, CPU that PostgreSQL "
                "may have lacked"
            )
    found += _statement_growth(run)
    for server, lines in run.server_logs.items():
        if lines:
            found.append(
                f"server {server} logged {len(lines)} lines, the last: `{lines[-1][:200]}`"
            )
    return found


def _statement_growth(run: Run) -> list[str]:
    """Statement counts of one query and server that differ between scales."""
    found = []
    by_pair: dict[tuple[str, str], dict[float, Counter[int | None]]] = {}
    for row in run.ordered():
        if row.measured:
            by_pair.setdefault((row.query, row.server), {})[row.scale] = row.measurement.statements
    for (query, server), per_scale in by_pair.items():
        modes = {scale: _mode(counts) for scale, counts in per_scale.items()}
        if len(set(modes.values())) > 1:
            found.append(
                f"{query} ({server}): SQL statements per request differ between "
                "scales: " + ", ".join(f"scale {s:g}: {n}" for s, n in modes.items())
            )
    return found


def document(run: Run, conditions: dict[str, str]) -> str:
    parts = ["# issuegraph benchmark", ""]
    parts += [f"- {key}: {value}" for key, value in conditions.items()]
    parts += [f"- data at scale {scale:g}: {sizes}" for scale, sizes in run.sizes.items()]
    parts += [f"- server `{name}`: {text}" for name, text in run.servers.items()]
    parts += ["", summary(run), "", "## What the responses held", ""]
    seen: dict[tuple[float, str], Counter[str]] = {}
    for row in run.ordered():
        if not row.shape:
            continue
        key = (row.scale, row.query)
        if key not in seen:
            seen[key] = row.shape
            parts.append(f"- {row.query} (scale {row.scale:g}): {shape_text(row.shape)}")
        elif row.shape != seen[key]:
            parts.append(
                f"- {row.query} (scale {row.scale:g}, {row.server}), DIFFERENT: "
                f"{shape_text(row.shape)}"
            )
    found = notes(run) or ["no failures; statement counts and sizes constant"]
    client_cpu = _client_cpu(run.ordered())
    parts += ["", "## Notes", "", f"- wrk's CPU (share of one core): {client_cpu}"]
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
    quiet_wait: float = 0.0,
    pinning: str = "not pinned",
    workers: int = 1,
) -> dict[str, str]:
    processes = (
        "one uvicorn process (`--workers 1`)"
        if workers == 1
        else f"one uvicorn server of {workers} worker processes (`--workers {workers}`)"
    )
    counted = "that process only" if workers == 1 else "its supervisor and workers together"
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
        f"{concurrency} keep-alive HTTP/1.1 connections from wrk (one thread); {pinning}; "
        "every response's status and `errors` checked by wrk, the first one's data "
        "compared between servers",
        "other CPU": "the CPU the rest of the machine (other processes, and kernel work "
        "charged to none, such as some loopback networking) used during each measured "
        f"window, in cores of {_nproc()}; before each window the bench waits up to "
        f"{quiet_wait:g} s for it to drop under 0.25 core (not after two such waits in a row "
        "ran out). Other work skews the figures, "
        "the more the larger it is",
        "server": f"{processes} at a time over loopback, each server "
        "started in turn on the same database; anonymous viewer except `mutation` (alice, "
        f"Bearer token); server CPU counts {counted}; PG CPU counts PostgreSQL's "
        "main and background processes and the bench database's backends (n/a when the "
        "server is not on this machine)",
        "database": database,
    }


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _client_cpu(rows: list[Row]) -> str:
    shares = [
        f"{row.query} (scale {row.scale:g}, {row.server}) {row.measurement.client_share:.0%}"
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


def _range(values: Counter[int]) -> str:
    return f"{min(values):,} to {max(values):,} bytes over {len(values)} distinct sizes"


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def _mode(values: Counter[Any]) -> Any:
    return values.most_common(1)[0][0] if values else None


def _sum_cpu(row: Row) -> str:
    server, database = row.cpu_per_request(), row.database_cpu_per_request()
    if math.isnan(database):
        return f"{server:.2f}+n/a"
    return f"{server:.2f}+{database:.2f}"


def _index(items: list[str], item: str) -> int:
    return items.index(item) if item in items else len(items)


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
