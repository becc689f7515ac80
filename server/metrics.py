"""Who may read /metrics: the metrics describe the traffic (operation names, error codes,
pool usage), which is nobody else's business.

With METRICS_TOKEN set, a scrape must send `Authorization: Bearer <METRICS_TOKEN>` (401
otherwise, compared in constant time). Without it, /metrics answers only a client on this
machine talking to the server directly: a loopback peer address and no forwarding header
(`Forwarded`, `X-Forwarded-For`), so that a reverse proxy on the same machine, which
forwards the public's requests, does not pass them through (403). The endpoint itself, and
Prometheus' multiprocess mode with WORKERS > 1, are core/observability.py's.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from core import observability

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def metrics_endpoint(token: str | None) -> Callable[[Request], Awaitable[Response]]:
    """The /metrics route's handler, guarded as the module docstring says."""

    async def metrics(request: Request) -> Response:
        if token is not None:
            if not _bearer_matches(request.headers.get("authorization"), token):
                return PlainTextResponse(
                    "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.",
                    401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        elif not _direct_loopback(request):
            return PlainTextResponse(
                "Metrics are served to this machine only; set METRICS_TOKEN to scrape "
                "them from elsewhere.",
                403,
            )
        return await observability.metrics_endpoint(request)

    return metrics


def _bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _direct_loopback(request: Request) -> bool:
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
