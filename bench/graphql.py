"""One GraphQL request over HTTP, checked: what a workload sends and what came back."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

HEADERS = {"content-type": "application/json", "accept": "application/json"}
STATEMENTS = re.compile(r'sql;desc="(\d+) statements"')

Setup = Callable[[httpx.AsyncClient], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Workload:
    """A named request; `setup` computes its variables against the running server.

    `signed_in`: sent with alice's access token (else anonymous). `check`: a further test
    of each response's `data` (None: fine, else what is wrong), for what an HTTP 200
    without `errors` does not say (a mutation's userErrors). `deterministic`: every server
    must answer the same `data`, which the bench compares. `writes`: it creates issues in
    BENCH, which the bench deletes once it is measured, so that the workloads after it read
    the data as loaded (fresh issues head the `updated_at` order that searches walk).
    """

    name: str
    document: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    setup: Setup | None = None
    signed_in: bool = False
    check: Callable[[Any], str | None] | None = None
    deterministic: bool = True
    writes: bool = False

    async def body(self, client: httpx.AsyncClient) -> bytes:
        variables = dict(self.variables)
        if self.setup is not None:
            variables.update(await self.setup(client))
        return encode(self.document, variables)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    received: float  # time.perf_counter() when the body had arrived
    size: int
    statements: int | None
    payload: Any

    @property
    def problem(self) -> str | None:
        """Why this reply is a failure, or None for a 200 with data and no `errors`."""
        if self.status != 200:
            return f"HTTP {self.status}: {_excerpt(self.payload)}"
        if not isinstance(self.payload, dict) or "data" not in self.payload:
            return f"no data: {_excerpt(self.payload)}"
        if "errors" in self.payload:
            return f"errors: {_excerpt(self.payload['errors'])}"
        return None

    def problem_with(self, check: Callable[[Any], str | None] | None) -> str | None:
        problem = self.problem
        if problem is None and check is not None:
            problem = check(self.payload["data"])
        return problem


def encode(document: str, variables: Mapping[str, Any] | None = None) -> bytes:
    return orjson.dumps({"query": document, "variables": dict(variables or {})})


async def send(
    client: httpx.AsyncClient, body: bytes, headers: Mapping[str, str] | None = None
) -> Reply:
    response = await client.post("/graphql", content=body, headers=headers or HEADERS)
    content = response.content
    received = time.perf_counter()
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = content[:200].decode(errors="replace")
    return Reply(
        response.status_code, received, len(content), statements(response.headers), payload
    )


async def fetch(
    client: httpx.AsyncClient, document: str, variables: Mapping[str, Any] | None = None
) -> Any:
    """Run a query for set-up and return its `data`; any failure is an error."""
    reply = await send(client, encode(document, variables))
    if reply.problem is not None:
        raise RuntimeError(f"set-up query failed: {reply.problem}")
    return reply.payload["data"]


def signed_in_headers(token: str) -> dict[str, str]:
    return {**HEADERS, "authorization": f"Bearer {token}"}


def first_difference(expected: Any, got: Any, path: str = "data") -> str | None:
    """Where two JSON values first differ, key order included; None when they are equal."""
    if isinstance(expected, dict) and isinstance(got, dict):
        if list(expected) != list(got):
            return f"{path}: keys {list(expected)} != {list(got)}"
        for key in expected:
            found = first_difference(expected[key], got[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(got, list):
        for n, (a, b) in enumerate(zip(expected, got, strict=False)):
            found = first_difference(a, b, f"{path}[{n}]")
            if found:
                return found
        if len(expected) != len(got):
            return f"{path}: {len(expected)} items != {len(got)} items"
        return None
    if type(expected) is not type(got) or expected != got:
        return f"{path}: {_excerpt(expected)[:150]} != {_excerpt(got)[:150]}"
    return None


def statements(headers: httpx.Headers) -> int | None:
    match = STATEMENTS.search(headers.get("server-timing", ""))
    return int(match.group(1)) if match else None


def _excerpt(value: Any) -> str:
    return orjson.dumps(value).decode()[:300]
