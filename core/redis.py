"""Redis as an optional accelerator: whether it answered lately.

Redis shares persisted queries and rate budgets between instances; nothing needs it to
serve. When a call to it fails or times out, its users fall back to this process's own
memory and skip Redis for `RETRY_AFTER` seconds, so a Redis that is down or frozen costs
one short timeout now and then, not one per request; the next call after that tries it
again. Each change of state is logged once, not once per request.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

RETRY_AFTER = 5.0  # seconds Redis is skipped after a failure
TIMEOUT = 0.25  # seconds a Redis call may take before it counts as failed


class RedisHealth:
    def __init__(self, retry_after: float = RETRY_AFTER) -> None:
        self._retry_after = retry_after
        self._failed_at: float | None = None

    @property
    def usable(self) -> bool:
        """Whether to try Redis now: it has not failed, or long enough ago to try again."""
        failed_at = self._failed_at
        return failed_at is None or time.monotonic() - failed_at >= self._retry_after

    @property
    def degraded(self) -> bool:
        return self._failed_at is not None

    def failed(self, error: Exception) -> None:
        if self._failed_at is None:
            log.warning("redis unavailable, serving from this process's memory: %s", error)
        self._failed_at = time.monotonic()

    def succeeded(self) -> None:
        if self._failed_at is not None:
            log.info("redis available again")
        self._failed_at = None
