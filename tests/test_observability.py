"""Request ids, metrics, logs and traces, through a small Starlette app served in-process.

The metrics registry is shared by the whole process, so metric tests compare scrapes taken
before and after, or use label values no other test uses.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Scope

from core import observability
from core.db import Database
from core.logs import configure_logging, get_logger
from core.observability import (
    OPERATION_LABELS_MAX,
    RequestIdMiddleware,
    configure_tracing,
    metrics_endpoint,
    observe_pool,
    operation_span,
    record_batch,
    record_cost,
    record_errors,
    record_rate_limited,
    record_request,
    record_sql,
    sql_span,
)
from execution.ids import encode_id
from tests.conftest import app_client

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def echo_id(request: Request) -> Response:
    logging.getLogger("test.stdlib").info("hello %s", "world")
    get_logger("test.structlog").info("structured", answer=42)
    return PlainTextResponse(request.state.request_id)


async def fail(request: Request) -> Response:
    try:
        1 / 0  # noqa: B018  # the point is the exception
    except ZeroDivisionError:
        logging.getLogger("test.stdlib").exception("division failed")
    return PlainTextResponse("handled")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    routes = [Route("/", echo_id), Route("/fail", fail), Route("/metrics", metrics_endpoint)]
    app = Starlette(routes=routes, middleware=[Middleware(RequestIdMiddleware)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Logging configured onto a buffer; the root logger and structlog restored after."""
    root = logging.getLogger()
    level = root.level
    uvicorn = {n: logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    saved = {n: (list(lg.handlers), lg.propagate, lg.level) for n, lg in uvicorn.items()}
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    yield stream
    for handler in [h for h in root.handlers if h.get_name() == "issuegraph"]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, (handlers, propagate, logger_level) in saved.items():
        uvicorn[name].handlers[:] = handlers
        uvicorn[name].propagate = propagate
        uvicorn[name].setLevel(logger_level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The JSON lines logged by this module's loggers and uvicorn's (not httpx's, say)."""
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in parsed if line["logger"].startswith(("test.", "uvicorn"))]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
    return samples(response.text)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


# --- request ids ---------------------------------------------------------------------------


async def test_a_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    assert int(request_id, 16) >= 0
    assert response.text == request_id
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_a_sane_incoming_request_id_is_kept(client: httpx.AsyncClient) -> None:
    sane = "edge-7f3a.B_" + "x" * 116

    response = await client.get("/", headers={"X-Request-ID": sane})

    assert response.headers["x-request-id"] == sane
    assert response.text == sane


@pytest.mark.parametrize(
    "insane",
    [b"x" * 129, b"has space", b"semi;colon", b"line\r\nInjected: yes", "ünïcode".encode(), b""],
)
async def test_an_insane_incoming_request_id_is_replaced(
    client: httpx.AsyncClient, insane: bytes
) -> None:
    response = await client.get("/", headers={b"X-Request-ID": insane})

    request_id = response.headers["x-request-id"]
    assert request_id.encode() != insane
    assert len(request_id) == 32
    assert response.text == request_id


async def test_websockets_get_a_request_id_and_lifespan_passes_through() -> None:
    seen: list[tuple[str, object]] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            seen.append(("lifespan", scope.get("state")))
            return
        await receive()
        context = structlog.contextvars.get_contextvars()
        seen.append((scope["state"]["request_id"], context.get("request_id")))
        await send({"type": "websocket.accept"})

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = RequestIdMiddleware(app)
    headers = [(b"x-request-id", b"ws-1")]
    await middleware({"type": "websocket", "headers": headers}, receive, send)
    await middleware({"type": "lifespan"}, receive, send)

    assert seen == [("ws-1", "ws-1"), ("lifespan", None)]
    assert sent == [{"type": "websocket.accept", "headers": [(b"x-request-id", b"ws-1")]}]


# --- metrics -------------------------------------------------------------------------------


async def test_the_metrics_endpoint_exposes_recorded_values(client: httpx.AsyncClient) -> None:
    before = await scrape(client)

    record_request("MetricsTestIssue", 200, 0.02)
    record_request("MetricsTestIssue", 200, 0.3)
    record_request("MetricsTestIssue", 400, 0.004)
    record_errors(["METRICS_TEST_CODE", "METRICS_TEST_CODE", None])
    record_sql(3)
    record_batch("MetricsTestLoader", 7)
    record_cost(120)
    record_rate_limited()
    after = await scrape(client)

    def d(name: str, **labels: str) -> float:
        return delta(before, after, name, **labels)

    ok = {"operation": "MetricsTestIssue", "status": "200"}
    assert after[("issuegraph_requests_total", frozenset(ok.items()))] == 2.0
    bad = {"operation": "MetricsTestIssue", "status": "400"}
    assert after[("issuegraph_requests_total", frozenset(bad.items()))] == 1.0
    latency = "issuegraph_request_duration_seconds"
    assert d(f"{latency}_bucket", **ok, le="0.01") == 0.0
    assert d(f"{latency}_bucket", **ok, le="0.025") == 1.0
    assert d(f"{latency}_bucket", **ok, le="0.5") == 2.0
    assert d(f"{latency}_count", **ok) == 2.0
    assert d(f"{latency}_sum", **ok) == pytest.approx(0.32)
    assert d("issuegraph_graphql_errors_total", code="METRICS_TEST_CODE") == 2.0
    assert d("issuegraph_graphql_errors_total", code="UNKNOWN") == 1.0
    sql = "issuegraph_sql_statements_per_request"
    assert d(f"{sql}_bucket", le="2.0") == 0.0
    assert d(f"{sql}_bucket", le="3.0") == 1.0
    assert (d(f"{sql}_count"), d(f"{sql}_sum")) == (1.0, 3.0)
    batch = "issuegraph_dataloader_batch_size"
    assert d(f"{batch}_bucket", loader="MetricsTestLoader", le="5.0") == 0.0
    assert d(f"{batch}_bucket", loader="MetricsTestLoader", le="10.0") == 1.0
    assert d(f"{batch}_sum", loader="MetricsTestLoader") == 7.0
    assert d("issuegraph_query_cost_bucket", le="100.0") == 0.0
    assert d("issuegraph_query_cost_bucket", le="250.0") == 1.0
    assert d("issuegraph_rate_limited_total") == 1.0


async def test_the_pool_gauges_are_read_at_scrape_time(client: httpx.AsyncClient) -> None:
    pool = {"size": 5, "idle": 2}
    stop = observe_pool(lambda: pool["size"], lambda: pool["idle"])
    try:
        first = await scrape(client)
        pool["idle"] = 0
        second = await scrape(client)
    finally:
        stop()
    third = await scrape(client)

    assert first[("issuegraph_db_pool_size", frozenset())] == 5.0
    assert first[("issuegraph_db_pool_in_use", frozenset())] == 3.0
    assert second[("issuegraph_db_pool_in_use", frozenset())] == 5.0
    assert ("issuegraph_db_pool_size", frozenset()) not in third


async def test_operation_labels_are_bounded(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh limiter, so this test neither depends on nor uses up the process-wide one.
    limiter = observability.BoundedLabels(OPERATION_LABELS_MAX)
    monkeypatch.setattr(observability, "operation_label", limiter)
    before = await scrape(client)

    for i in range(OPERATION_LABELS_MAX + 50):
        record_request(f"CapTest{i}", 200, 0.01)
    record_request(None, 200, 0.01)
    record_request("x" * 101, 200, 0.01)
    record_request("CapTest0", 200, 0.01)  # already seen: keeps its own label
    after = await scrape(client)

    names = {
        dict(labels)["operation"]
        for (name, labels), _ in after.items()
        if name == "issuegraph_requests_total" and dict(labels)["operation"].startswith("CapTest")
    }
    assert len(names) == OPERATION_LABELS_MAX
    count = "issuegraph_requests_total"
    assert delta(before, after, count, operation="other", status="200") == 51.0
    assert delta(before, after, count, operation="anonymous", status="200") == 1.0
    assert delta(before, after, count, operation="CapTest0", status="200") == 2.0


async def test_multiprocess_mode_merges_the_workers_files(
    client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = textwrap.dedent(
        """
        from core import observability as o
        o.observe_pool(lambda: 4, lambda: 1)
        o.record_request("MultiprocessTest", 200, 0.01)
        o.record_sql(2)
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two worker processes, each with its own pid and files
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", worker, env=env)
        assert await process.wait() == 0
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    merged = await scrape(client)

    ok = frozenset({"operation": "MultiprocessTest", "status": "200"}.items())
    assert merged[("issuegraph_requests_total", ok)] == 2.0
    assert merged[("issuegraph_sql_statements_per_request_count", frozenset())] == 2.0
    assert merged[("issuegraph_db_pool_size", frozenset())] == 8.0
    assert merged[("issuegraph_db_pool_in_use", frozenset())] == 6.0
    assert not any(name.startswith("process_") for name, _ in merged)


# --- executions: which executor ran what ---------------------------------------------------

ISSUE = encode_id("Issue", 1)
# The suite's typical reads: each must run through the compiled executor.
TYPICAL_READS: list[tuple[str, dict[str, Any] | None]] = [
    (
        """query Dashboard($slug: String!) { organization(slug: $slug) { name
        projects(first: 5) { totalCount pageInfo { hasNextPage endCursor } nodes { key name
          issues(first: 3, orderBy: {field: PRIORITY, direction: DESC}) { nodes { number title
            priority state author { login } assignee { login } labels(first: 3) { nodes { name } }
            comments(first: 2) { totalCount nodes { body author { login } } } } } } } } }""",
        {"slug": "acme"},
    ),
    (
        """{ organization(slug: "acme") { project(key: "WEB") { issue(number: 1) { title body
        createdAt updatedAt viewerCanUpdate comments(last: 2) { edges { cursor node { body } } } }
        labels(first: 2) { nodes { name color } } } } }""",
        None,
    ),
    (
        """query($id: ID!) { node(id: $id) { id __typename ... on Issue { number title
        project { key organization { slug } } } } }""",
        {"id": ISSUE},
    ),
    ("query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Issue { title } } }", {"ids": [ISSUE]}),
    (
        """{ user(login: "alice") { login name organizations(first: 5) { nodes { slug } }
        authoredIssues(first: 2) { nodes { number } } } }""",
        None,
    ),
    (
        """{ organization(slug: "acme") { members(first: 3) { edges { role node { login } } } }
        viewer { login } rateLimit { cost remaining } }""",
        None,
    ),
    (
        """query($full: Boolean!) { organizations(first: 2) { nodes { slug
        name @include(if: $full) projects(first: 1) @skip(if: $full) { totalCount } } } }""",
        {"full": True},
    ),
]
INTROSPECTION = [
    "{ __schema { queryType { name } } }",
    '{ __type(name: "Issue") { name fields { name } } }',
]


def executions(scraped: Samples, executor: str, operation_type: str) -> float:
    labels = {"executor": executor, "operation_type": operation_type}
    return scraped.get(("issuegraph_executions_total", frozenset(labels.items())), 0.0)


async def test_reads_run_compiled_and_introspection_on_graphql_core(database: Database) -> None:
    async with app_client(database) as app:
        before = await scrape(app)
        for query, variables in TYPICAL_READS:
            response = await app.post("/graphql", json={"query": query, "variables": variables})
            assert "errors" not in response.json(), response.text[:500]
        reads = await scrape(app)
        for query in INTROSPECTION:
            response = await app.post("/graphql", json={"query": query})
            assert "errors" not in response.json(), response.text[:500]
        introspected = await scrape(app)

    def ran(start: Samples, end: Samples) -> tuple[float, float]:
        return tuple(  # type: ignore[return-value]
            executions(end, executor, "query") - executions(start, executor, "query")
            for executor in ("compiled", "standard")
        )

    assert ran(before, reads) == (len(TYPICAL_READS), 0)
    assert ran(reads, introspected) == (0, len(INTROSPECTION))


async def test_mutations_and_the_standard_executor_count_as_standard(database: Database) -> None:
    log_in = 'mutation { logIn(input: {login: "nobody", password: "x"}) { userErrors { code } } }'
    dashboard, variables = TYPICAL_READS[0]
    async with app_client(database, executor="standard") as app:
        before = await scrape(app)
        await app.post("/graphql", json={"query": log_in})
        await app.post("/graphql", json={"query": dashboard, "variables": variables})
        after = await scrape(app)

    def ran(executor: str, operation_type: str) -> float:
        return executions(after, executor, operation_type) - executions(
            before, executor, operation_type
        )

    assert ran("standard", "mutation") == ran("standard", "query") == 1
    assert ran("compiled", "query") == 0


# --- logs ----------------------------------------------------------------------------------


async def test_logs_are_json_lines_carrying_the_request_id(
    client: httpx.AsyncClient, log_stream: io.StringIO
) -> None:
    response = await client.get("/")

    request_id = response.headers["x-request-id"]
    stdlib, structured = lines(log_stream)
    assert stdlib["event"] == "hello world"
    assert stdlib["logger"] == "test.stdlib"
    assert structured["event"] == "structured"
    assert structured["logger"] == "test.structlog"
    assert structured["answer"] == 42
    for line in (stdlib, structured):
        assert line["request_id"] == request_id
        assert line["level"] == "info"
        assert line["timestamp"].endswith("Z")
        assert "exception" not in line


async def test_a_traceback_is_logged_only_with_exc_info(
    client: httpx.AsyncClient, log_stream: io.StringIO
) -> None:
    await client.get("/fail")
    get_logger("test.structlog").warning("no traceback here")

    failed, plain = lines(log_stream)
    assert failed["event"] == "division failed"
    assert failed["level"] == "error"
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in failed["exception"]
    assert "request_id" in failed
    assert plain["event"] == "no traceback here"
    assert "exception" not in plain
    assert "request_id" not in plain


def test_configure_logging_is_idempotent_and_filters_by_level(log_stream: io.StringIO) -> None:
    configure_logging("warning", stream=log_stream)
    logging.getLogger("uvicorn.error").info("dropped")
    logging.getLogger("uvicorn.error").warning("kept", extra={"color_message": "\x1b[1mkept"})
    get_logger("test.structlog").info("dropped too")

    assert len(logging.getLogger().handlers) == 1
    (kept,) = lines(log_stream)
    assert kept["event"] == "kept"
    assert kept["logger"] == "uvicorn.error"
    assert "color_message" not in kept


# --- traces --------------------------------------------------------------------------------


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tracing_is_off_without_an_exporter(otel_env: pytest.MonkeyPatch) -> None:
    installed: list[TracerProvider] = []

    assert configure_tracing("issuegraph", installed.append) is False
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    assert configure_tracing("issuegraph", installed.append) is False
    otel_env.setenv("OTEL_TRACES_EXPORTER", "console")
    otel_env.setenv("OTEL_SDK_DISABLED", "true")
    assert configure_tracing("issuegraph", installed.append) is False
    assert installed == []


def test_console_tracing_exports_spans(
    otel_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "console")
    installed: list[TracerProvider] = []

    assert configure_tracing("issuegraph-test", installed.append) is True

    (provider,) = installed
    try:
        assert provider.resource.attributes["service.name"] == "issuegraph-test"
        with provider.get_tracer("test").start_as_current_span("console-test-span"):
            pass
        assert provider.force_flush()
    finally:
        provider.shutdown()
    exported = json.loads(capsys.readouterr().out)
    assert exported["name"] == "console-test-span"


def test_a_missing_exporter_leaves_tracing_off(
    otel_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "console,otlp")
    installed: list[TracerProvider] = []

    assert configure_tracing("issuegraph", installed.append) is False

    assert installed == []
    assert caplog.messages == ["trace exporter 'otlp_proto_grpc' is not installed; tracing is off"]


def test_spans_are_no_ops_without_a_provider() -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    with operation_span("query Q") as outer, sql_span("SELECT_Q", rows=1) as inner:
        assert not outer.is_recording()
        assert not inner.is_recording()


def test_spans_nest_and_carry_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(observability, "tracer", provider.get_tracer("issuegraph"))

    with pytest.raises(ValueError), operation_span("query Q", **{"graphql.operation.name": "Q"}):
        with sql_span("SELECT_Q", rows=2):
            pass
        raise ValueError("resolver bug")

    sql, operation = exporter.get_finished_spans()
    assert (sql.name, operation.name) == ("SELECT_Q", "query Q")
    assert sql.kind is trace.SpanKind.CLIENT
    assert dict(sql.attributes or {}) == {
        "db.system.name": "postgresql",
        "db.query.summary": "SELECT_Q",
        "db.response.returned_rows": 2,
    }
    assert _parent_id(sql) == operation.context.span_id
    assert dict(operation.attributes or {}) == {"graphql.operation.name": "Q"}
    assert operation.status.status_code is trace.StatusCode.ERROR
    assert [event.name for event in operation.events] == ["exception"]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None
