"""JSON as the API writes it, and its one timestamp format: RFC 3339 in UTC with `Z`.

Every response body and WebSocket message goes through `dumps`; the `DateTime` scalar
(resolvers/scalars.py) and every timestamp the API writes as text (`extensions.cost.resetAt`)
through `rfc3339`, so that a moment reads the same wherever it appears:
`2026-01-31T09:30:00Z`, with fractions of a second when it has them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

_OPTIONS = orjson.OPT_UTC_Z  # a UTC datetime as ...Z, not ...+00:00


def dumps(value: Any) -> bytes:
    """`value` as JSON bytes; datetimes (the compiled executor leaves them) in RFC 3339."""
    return orjson.dumps(value, option=_OPTIONS)


def rfc3339(moment: datetime) -> str:
    """`moment` in UTC as `orjson` writes it: `2026-01-31T09:30:00Z` (or `...00.123456Z`)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
