"""Observability: Prometheus metrics, JSON logs, request ids and OpenTelemetry spans.

Metrics
    live in `registry`, a `CollectorRegistry` of our own instead of prometheus_client's global
    `REGISTRY`: the global one refuses a second metric of the same name (a second import path,
    a test building several apps) and exports whatever any library registers on it. Record
    with the `record_*` helpers and `observe_pool`; serve with `metrics_endpoint`.

    Each uvicorn worker process has its own registry, so a scrape sees one worker only. To
    aggregate, point PROMETHEUS_MULTIPROC_DIR at an empty directory before the workers start:
    prometheus_client (deciding when it is first imported) then keeps every value in files
    there, and `metrics_endpoint` merges them with `MultiProcessCollector`. In that mode the
    pool gauges are summed over live workers and refreshed at each request, and the process
    and GC collectors, which describe one process, are left out.
Logs
    are configured in core/logs.py; the request id bound here appears in each line.
Request ids
    `RequestIdMiddleware` keeps a sane incoming X-Request-ID or makes one, binds it into the
    log context, puts it in `request.state.request_id` and echoes it in the response.
Traces
    `configure_tracing` installs an SDK `TracerProvider` only when OTEL_TRACES_EXPORTER asks
    for an exporter. Until then `tracer` is the API's proxy to its no-op tracer, so
    `operation_span` and `sql_span` record nothing, and skip the API's machinery (its
    context managers and context variables cost ~6 µs a span, measured).
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from importlib.metadata import entry_points
from typing import Any, Final

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.util.types import AttributeValue
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# --- metrics -------------------------------------------------------------------------------

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client picks file-backed values when it is first imported; follow the same switch.
_MULTIPROCESS = MULTIPROC_ENV in os.environ

OPERATION_LABELS_MAX = 200
ANONYMOUS = "anonymous"
OTHER = "other"
_LABEL_LENGTH_MAX = 100

registry = CollectorRegistry()
ProcessCollector(registry=registry)
GCCollector(registry=registry)
PlatformCollector(registry=registry)

_requests = Counter(
    "issuegraph_requests",
    "GraphQL requests by operation name and HTTP status.",
    ("operation", "status"),
    registry=registry,
)
_latency = Histogram(
    "issuegraph_request_duration_seconds",
    "GraphQL request latency by operation and status.",
    ("operation", "status"),
    registry=registry,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_errors = Counter(
    "issuegraph_graphql_errors",
    "GraphQL errors by extensions.code.",
    ("code",),
    registry=registry,
)
_sql = Histogram(
    "issuegraph_sql_statements_per_request",
    "SQL statements one request ran.",
    registry=registry,
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100, 250),
)
_batches = Histogram(
    "issuegraph_dataloader_batch_size",
    "Keys per DataLoader batch, by loader.",
    ("loader",),
    registry=registry,
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
_cost = Histogram(
    "issuegraph_query_cost",
    "Computed cost of executed GraphQL documents.",
    registry=registry,
    buckets=(1, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
_rate_limited = Counter(
    "issuegraph_rate_limited",
    "Requests rejected by a rate limit.",
    registry=registry,
)
_sign_ins = Counter(
    "issuegraph_sign_ins",
    "Sign-in attempts by outcome: success, failure (wrong credentials) or throttled.",
    ("outcome",),
    registry=registry,
)
_executions = Counter(
    "issuegraph_executions",
    "GraphQL operations executed, by the executor that ran them (compiled or standard: "
    "graphql-core) and operation type.",
    ("executor", "operation_type"),
    registry=registry,
)
_webhook_attempts = Counter(
    "issuegraph_webhook_attempts",
    "Webhook delivery attempts by outcome: delivered, retrying (failed, tried again later) "
    "or failed (given up).",
    ("outcome",),
    registry=registry,
)
_webhook_latency = Histogram(
    "issuegraph_webhook_attempt_seconds",
    "How long webhook delivery attempts took, answer or not.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=registry,
)


class BoundedLabels:
    """Passes label values through until `limit` distinct ones were seen, then says "other".

    Prometheus keeps one time series per label value, so a label taken from client input
    (operation names) must be capped, or a client could grow the series without bound.
    The check-then-add is not atomic across threads; at worst a few extra values get in.
    """

    def __init__(self, limit: int, empty: str = ANONYMOUS) -> None:
        self.limit = limit
        self.empty = empty
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if not value:
            return self.empty
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit or len(value) > _LABEL_LENGTH_MAX:
            return OTHER
        self._seen.add(value)
        return value


operation_label = BoundedLabels(OPERATION_LABELS_MAX)
_error_code_label = BoundedLabels(50, empty="UNKNOWN")
_loader_label = BoundedLabels(100, empty="unnamed")


class _Children:
    """A labelled metric's children, each looked up in prometheus_client once (its `labels`
    checks and locks on every call). Label values are bounded (`BoundedLabels`, fixed
    sets), and so is this."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


_request_counts = _Children(_requests)
_request_latencies = _Children(_latency)
_error_counts = _Children(_errors)
_batch_sizes = _Children(_batches)
_execution_counts = _Children(_executions)


def record_request(operation: str | None, status: int | str, seconds: float) -> None:
    """Count one GraphQL request; `operation` is its operation name, None if anonymous."""
    labels = (operation_label(operation), str(status))
    _request_counts(*labels).inc()
    _request_latencies(*labels).observe(seconds)
    if _MULTIPROCESS:
        _pool.publish()  # no callbacks at scrape time across processes: refresh as we go


def record_errors(codes: Iterable[str | None]) -> None:
    """Count the errors of one response by their `extensions.code`."""
    for code in codes:
        _error_counts(_error_code_label(code)).inc()


def record_sql(count: int) -> None:
    """Observe how many SQL statements one request ran."""
    _sql.observe(count)


def record_batch(loader: str, size: int) -> None:
    """Observe the number of keys in one DataLoader batch."""
    _batch_sizes(_loader_label(loader)).observe(size)


def record_cost(cost: float) -> None:
    """Observe the computed cost of one executed document."""
    _cost.observe(cost)


def record_rate_limited() -> None:
    """Count one request rejected by a rate limit."""
    _rate_limited.inc()


def record_sign_in(outcome: str) -> None:
    """Count one sign-in attempt: "success", "failure" or "throttled"."""
    _sign_ins.labels(outcome).inc()


def record_execution(executor: str, operation_type: str) -> None:
    """Count one operation run by `executor` ("compiled" or "standard"); `operation_type` is
    "query", "mutation" or "subscription"."""
    _execution_counts(executor, operation_type).inc()


def record_webhook_attempt(outcome: str, seconds: float) -> None:
    """Count one webhook delivery attempt: "delivered", "retrying" or "failed"."""
    _webhook_attempts.labels(outcome).inc()
    _webhook_latency.observe(seconds)


_POOL_SIZE = ("issuegraph_db_pool_size", "Open database connections.")
_POOL_IN_USE = ("issuegraph_db_pool_in_use", "Database connections checked out of the pool.")


class _PoolCollector:
    """Reads the connection pool at scrape time, so the gauges are never stale."""

    def __init__(self) -> None:
        self.readers: tuple[Callable[[], int], Callable[[], int]] | None = None
        # Only used in multiprocess mode, where a scrape reads the files the workers wrote.
        self._size = Gauge(*_POOL_SIZE, registry=None, multiprocess_mode="livesum")
        self._in_use = Gauge(*_POOL_IN_USE, registry=None, multiprocess_mode="livesum")

    def read(self) -> tuple[int, int] | None:
        if self.readers is None:
            return None
        get_size, get_idle = self.readers
        size = get_size()
        return size, size - get_idle()

    def publish(self) -> None:
        reading = self.read()
        if reading is not None:
            self._size.set(reading[0])
            self._in_use.set(reading[1])

    def describe(self) -> Iterable[Metric]:
        return self._families(0, 0)

    def collect(self) -> Iterable[Metric]:
        reading = self.read()
        return [] if reading is None else self._families(*reading)

    @staticmethod
    def _families(size: int, in_use: int) -> list[Metric]:
        return [GaugeMetricFamily(*_POOL_SIZE, size), GaugeMetricFamily(*_POOL_IN_USE, in_use)]


_pool = _PoolCollector()
registry.register(_pool)


def observe_pool(get_size: Callable[[], int], get_idle: Callable[[], int]) -> Callable[[], None]:
    """Report a pool's size and in-use count (size - idle); returns a function that stops it.

    For asyncpg: `observe_pool(pool.get_size, pool.get_idle_size)`. Observing another pool
    replaces the first; the returned function then does nothing.
    """
    readers = (get_size, get_idle)
    _pool.readers = readers
    if _MULTIPROCESS:
        _pool.publish()

    def stop() -> None:
        if _pool.readers is readers:
            _pool.readers = None

    return stop


async def metrics_endpoint(request: Request) -> Response:
    """The Prometheus text exposition of this process, or of all workers in multiprocess mode."""
    # In a thread: with 200 operations the exposition is ~300 kB and ~30 ms of CPU, too long
    # to hold the event loop.
    body = await run_in_threadpool(generate_latest, _scraped_registry())
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _scraped_registry() -> CollectorRegistry:
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return registry
    merged = CollectorRegistry()
    # The multiprocess module of prometheus_client has no annotations.
    multiprocess.MultiProcessCollector(merged, path=path)  # type: ignore[no-untyped-call]
    return merged


# --- request ids ---------------------------------------------------------------------------

_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_ID_MESSAGES = frozenset(
    {"http.response.start", "websocket.accept", "websocket.http.response.start"}
)


class RequestIdMiddleware:
    """Gives each HTTP request and WebSocket a request id, in logs, state and the response.

    Pure ASGI rather than `BaseHTTPMiddleware`, which would run the app in another task and
    buffer streaming responses. The incoming X-Request-ID is kept only if it is 1-128 of
    `[A-Za-z0-9._-]`, so a client cannot inject log lines or header fragments.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope["headers"]) or _new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (_HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] in _ID_MESSAGES:
                kept = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER]
                message["headers"] = [*kept, header]
            await send(message)

        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**bound)


def _new_id() -> str:
    """A random version 4 UUID as 32 hex digits, as `uuid.uuid4().hex` writes it, drawn
    from `random` rather than the system: a request id must be unique, not secret, and
    `uuid4` costs a system call per request."""
    return f"{_getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version and variant bits
_UUID4_SET = (4 << 76) | (0x8000 << 48)  # version 4, RFC 4122 variant
_getrandbits = random.getrandbits


def _incoming_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == _HEADER:  # ASGI servers lower-case header names
            return value.decode("ascii") if _SANE_ID.fullmatch(value) else None
    return None


# --- traces --------------------------------------------------------------------------------

tracer = trace.get_tracer("issuegraph")

ROWS_ATTRIBUTE = "db.response.returned_rows"

_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


def configure_tracing(
    service_name: str,
    set_provider: Callable[[TracerProvider], None] = trace.set_tracer_provider,
) -> bool:
    """Install a TracerProvider if OTEL_TRACES_EXPORTER names exporters; True if tracing is on.

    Unlike the SDK's auto-configuration, an unset variable means no tracing rather than
    OTLP. Exporters are found the way the SDK finds them (the `opentelemetry_traces_exporter`
    entry points: `console` comes with the SDK, `otlp` with opentelemetry-exporter-otlp), and
    read their own OTEL_EXPORTER_* settings; OTEL_TRACES_SAMPLER is honoured too. Any exporter
    that is missing leaves tracing off, with a warning. The API allows one global provider per
    process; `set_provider` lets a test receive the provider instead.
    """
    exporters = [_exporter(name) for name in _exporter_names()]
    if not exporters or None in exporters:
        return False
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name  # the variable wins, per spec
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    for exporter in exporters:
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    set_provider(provider)
    return True


def _exporter_names() -> list[str]:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = (n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(","))
    return [n for n in names if n and n != "none"]


def _exporter(name: str) -> SpanExporter | None:
    if name == "console":  # the entry point's default binds sys.stdout at import time
        return ConsoleSpanExporter(out=sys.stdout)
    if name == "otlp":
        protocol = (
            os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "grpc"
        )
        name = _OTLP_BY_PROTOCOL.get(protocol.strip(), name)
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        log.warning("trace exporter %r is not installed; tracing is off", name)
        return None
    exporter = next(iter(found)).load()()
    if not isinstance(exporter, SpanExporter):
        log.warning("trace exporter %r is not a SpanExporter; tracing is off", name)
        return None
    return exporter


def _recording() -> bool:
    """Whether spans go anywhere: until a provider is set, the API's proxy drops them.
    (Types compared, not `isinstance`: both are ABCs, whose checks cost more, per statement.)"""
    return not (
        type(tracer) is trace.ProxyTracer
        and type(trace.get_tracer_provider()) is trace.ProxyTracerProvider
    )


# What a span is while nothing records: one shared context manager, no generator a call.
_NO_SPAN: Final = nullcontext(trace.INVALID_SPAN)


def operation_span(name: str, **attributes: AttributeValue) -> AbstractContextManager[trace.Span]:
    """A span around one GraphQL operation; exceptions are recorded on it and re-raised."""
    if not _recording():
        return _NO_SPAN
    return tracer.start_as_current_span(name, attributes=attributes)


def sql_span(statement_name: str, rows: int | None = None) -> AbstractContextManager[trace.Span]:
    """A client span around one SQL statement, named by its constant (SELECT_ISSUES_BY_ID).

    Set the row count afterwards with `span.set_attribute(ROWS_ATTRIBUTE, n)` if it is not
    known up front.
    """
    if not _recording():
        return _NO_SPAN
    attributes: dict[str, AttributeValue] = {
        "db.system.name": "postgresql",
        "db.query.summary": statement_name,
    }
    if rows is not None:
        attributes[ROWS_ATTRIBUTE] = rows
    return tracer.start_as_current_span(
        statement_name, kind=trace.SpanKind.CLIENT, attributes=attributes
    )
