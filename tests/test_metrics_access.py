"""/metrics is not the public's: without METRICS_TOKEN only a client on this machine,
talking to the server directly, reads it; with it, a scrape must bring the token. Both with
one process and with several workers in Prometheus' multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db import Database
from tests.conftest import TEST_SETTINGS, running_app
from tests.servers import _wait_healthy, free_port

TOKEN = "metrics-token-for-tests"


@asynccontextmanager
async def scraper(
    database: Database, address: str, **settings: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(database, **settings) as app:
        transport = httpx.ASGITransport(app=app.asgi, client=(address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.mark.parametrize(
    ("address", "headers", "status"),
    [
        ("127.0.0.1", {}, 200),
        ("::1", {}, 200),
        ("203.0.113.5", {}, 403),
        ("10.0.0.8", {}, 403),
        # a reverse proxy on this machine forwarding someone else's request
        ("127.0.0.1", {"x-forwarded-for": "203.0.113.5"}, 403),
        ("127.0.0.1", {"forwarded": "for=203.0.113.5"}, 403),
    ],
)
async def test_without_a_token_only_this_machine_reads_the_metrics(
    database: Database, address: str, headers: dict[str, str], status: int
) -> None:
    async with scraper(database, address) as http:
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 200:
        assert "issuegraph_requests_total" in response.text
    else:
        assert "issuegraph" not in response.text


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer not-the-token", 401),
        (f"Basic {TOKEN}", 401),
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),
    ],
)
async def test_with_a_token_every_scrape_brings_it(
    database: Database, authorization: str | None, status: int
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    for address in ("203.0.113.5", "127.0.0.1"):
        async with scraper(database, address, metrics_token=TOKEN) as http:
            response = await http.get("/metrics", headers=headers)
        assert response.status_code == status, address
        if status == 401:
            assert response.headers["www-authenticate"] == 'Bearer realm="metrics"'
            assert "issuegraph" not in response.text


def test_workers_in_multiprocess_mode_serve_the_merged_metrics_to_the_token(
    database_url: str, tmp_path: Path
) -> None:
    """WORKERS=2 with PROMETHEUS_MULTIPROC_DIR: any worker answers a scrape with the sum of
    both workers' counts, and only to the token."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_SETTINGS.jwt_secret or "",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "uvicorn", "server.main:create_app", "--factory"]
    options = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen([*command, *options], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, server, "/readyz", seconds=60)
        with httpx.Client(base_url=base, timeout=20) as http:
            for _ in range(40):  # new connections: the workers share them out
                with httpx.Client(base_url=base, timeout=20) as one:
                    one.post("/graphql", json={"query": "query MetricsProbe { viewer { id } }"})
            refused = http.get("/metrics")
            scraped = http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert refused.status_code == 401
    assert scraped.status_code == 200
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "issuegraph_requests_total"
        and sample.labels.get("operation") == "MetricsProbe"
    )
    assert counted == 40
    assert len({p.name.rsplit("_", 1)[-1] for p in tmp_path.glob("counter_*.db")}) >= 2
