"""The delivery task: every server process runs one, and together they deliver each
delivery row at least once.

Deliveries are rows, made from matching events in the transaction that records the event
(migration 0007), so an event is never missed: it and its deliveries commit together. The
task LISTENs on the event channel, where a transaction that made deliveries says so on
commit, so it wakes at once; it claims due deliveries (loaders/writes/deliveries.py: FOR
UPDATE SKIP LOCKED, a lease, an attempt counter that fences a late outcome). Polling every
WEBHOOK_POLL_INTERVAL seconds is only the fallback (a lost listener, a lease that ended in
another process). Each attempt POSTs the body with its signature to an address the SSRF
guard checked, within WEBHOOK_TIMEOUT, follows no redirect, reads at most a few KiB of the
answer, and is logged with its status, duration and error. A failure is retried after an
exponential backoff with jitter, until it is WEBHOOK_FAILURE_WINDOW (a day) old; a hook
that has delivered nothing for that long is then turned off, with the reason.

A process that stops lets the attempts under way finish within its shutdown bound; one
that dies (or runs out of that bound) mid-attempt leaves the delivery leased: it is claimed
again when the lease ends (twice WEBHOOK_TIMEOUT, plus a second), by whichever process is
running then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import httpx

from core import observability
from core.db import Database, Listener, Session
from core.errors import DatabaseError
from core.settings import Settings
from domain.webhooks import guard
from domain.webhooks.payload import NodeId, render, signature
from loaders.writes import deliveries
from loaders.writes.deliveries import Claim
from loaders.writes.issues import EVENTS_CHANNEL

log = logging.getLogger(__name__)

USER_AGENT = "issuegraph-webhooks/1"
READ_LIMIT = 4_096  # bytes of an answer read before the connection is closed
MIN_WAIT = 0.02
PRUNE_EVERY = 3_600.0  # seconds between deletions of old deliveries
PRUNE_BATCH = 1_000
HEALTH_CHECK_SECONDS = 5.0
GONE = "The event no longer exists."
_OUTCOMES = {"DELIVERED": "delivered", "PENDING": "retrying", "FAILED": "failed"}


class Deliverer:
    """This process's delivery task; `node_id` writes the global ids of a body."""

    def __init__(self, database: Database, settings: Settings, node_id: NodeId) -> None:
        self._database = database
        self._settings = settings
        self._node_id = node_id
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._pruned_at: float | None = None

    @property
    def lease(self) -> float:
        """Seconds a claim holds a delivery: more than an attempt may take."""
        return 2 * self._settings.webhook_timeout + 1

    async def start(self) -> None:
        """Listen, deliver what is due, then go on in the background: once started, the
        task touches the database only when woken, when a retry is due, or to poll."""
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the guard checks the peer
            timeout=httpx.Timeout(self._settings.webhook_timeout),
            # no connection reuse: each request goes to the address just checked, with its
            # own TLS name
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT},
        )
        listener = await self._listen()
        wait = await self._round()  # what was committed before this process listened
        self._tasks = [
            asyncio.create_task(self._listen_forever(listener)),
            asyncio.create_task(self._deliver_forever(wait)),
        ]

    async def stop(self, grace: float = 0.0) -> None:
        """Claim nothing more; let the attempts under way finish (and record their
        outcome) for up to `grace` seconds, then cancel the rest, which are left to their
        lease. (An attempt cancelled in its TLS handshake also leaves its socket to the
        garbage collector: httpcore closes it on errors, not on cancellation.)"""
        loops = self._tasks
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._running and grace > 0:
            await asyncio.wait(set(self._running), timeout=grace)
        running = list(self._running)
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    def _on_notify(self, payload: str) -> None:
        if payload.startswith('{"webhooks"'):  # new deliveries, a hook turned on again
            self._wake.set()

    async def _listen(self) -> Listener | None:
        try:
            listener = await self._database.listen(EVENTS_CHANNEL, self._on_notify)
        except Exception as exc:  # any failure to connect: the task tries again
            log.warning("webhook listener cannot connect (%s)", exc)
            return None
        return listener

    async def _listen_forever(self, listener: Listener | None) -> None:
        delay = 0.1
        while True:
            if listener is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                listener = await self._listen()
                if listener is None:
                    continue
                delay = 0.1
                self._wake.set()  # what was committed while no one listened
            try:
                await _watch(listener)
            finally:
                await listener.close()
            listener = None

    async def _deliver_forever(self, wait: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            wait = await self._round()

    async def _round(self) -> float:
        """Claim and start what is due (and now and then delete deliveries past
        WEBHOOK_RETENTION); the seconds until the next look."""
        wait = self._settings.webhook_poll_interval
        now = time.monotonic()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            await self._prune()
        free = self._settings.webhook_concurrency - len(self._running)
        if free > 0:
            try:
                next_due = await self._claim(free)
            except DatabaseError as exc:
                log.warning("webhook deliveries cannot be claimed: %s", exc)
            except Exception:  # the task must outlive any one failure: what it claimed
                log.exception("webhook deliveries could not be started")  # leases end
            else:
                if next_due is not None:
                    wait = min(wait, max(next_due, MIN_WAIT))
        return wait

    async def _prune(self) -> None:
        session = self._database.session()
        try:
            await deliveries.prune(session, self._settings.webhook_retention, PRUNE_BATCH)
        except DatabaseError as exc:
            log.warning("old webhook deliveries cannot be deleted: %s", exc)
        finally:
            await session.close()

    async def _claim(self, free: int) -> float | None:
        """Claim up to `free` due deliveries and start them; when the next one is due."""
        session = self._database.session()
        try:
            claimed = await deliveries.claim(session, free, self.lease)
            bodies = await self._bodies(session, claimed)
            next_due = (
                0.0 if len(claimed) == free else await deliveries.seconds_to_next_due(session)
            )
        finally:
            await session.close()
        for claim in claimed:
            task = asyncio.create_task(self._attempt(claim, bodies.get(claim.id)))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return next_due

    async def _bodies(self, session: Session, claimed: list[Claim]) -> dict[int, str]:
        """Each claimed delivery's body: made, and stored, before its first attempt."""
        bodies = {c.id: c.body for c in claimed if c.body is not None}
        new = [c for c in claimed if c.body is None and c.event_id is not None]
        if new:
            found = await deliveries.events(session, [c.event_id for c in new if c.event_id])
            made = {
                c.id: render(found[c.event_id], self._node_id) for c in new if c.event_id in found
            }
            if made:
                bodies.update(await deliveries.store_bodies(session, made))
        return bodies

    async def _attempt(self, claim: Claim, body: str | None) -> None:
        started = time.monotonic()
        status: int | None = None
        timeout = self._settings.webhook_timeout
        try:
            if body is None:
                error: str | None = GONE
            else:
                async with asyncio.timeout(timeout):
                    status, error = await self._send(claim, body.encode())
        except TimeoutError:
            error = f"No answer within {timeout:g} s."
        except guard.Refused as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = _describe(exc)
        except Exception:  # one broken attempt must not stop the task
            log.exception("webhook delivery %s failed unexpectedly", claim.guid)
            error = "The server failed to send it."
        duration = time.monotonic() - started
        state, retry_in = self._outcome(claim, error, duration, gone=body is None)
        observability.record_webhook_attempt(_OUTCOMES[state], duration)
        reason = None
        if error is not None:
            window = _span(self._settings.webhook_failure_window)
            reason = f"Every delivery failed for {window}; the last: {error}"
        try:
            session = self._database.session()
            try:
                turned_off = await deliveries.finish(
                    session,
                    claim,
                    duration_ms=round(duration * 1000),
                    status_code=status,
                    error=error,
                    state=state,
                    retry_in=retry_in,
                    turn_off=reason,
                )
            finally:
                await session.close()
        except DatabaseError as exc:  # the lease ends, and the delivery is tried again
            log.warning("webhook delivery %s: outcome not recorded: %s", claim.guid, exc)
        else:
            if turned_off:
                log.warning("webhook %s turned off: %s", claim.webhook_id, reason)
        self._wake.set()  # a free slot, and perhaps a retry due soon

    async def _send(self, claim: Claim, body: bytes) -> tuple[int, str | None]:
        target = guard.parse(claim.url)
        addresses = await guard.resolve(target, allow_private=self._settings.webhook_allow_private)
        headers = {
            "Host": target.netloc,
            "Content-Type": "application/json",
            "X-Issuegraph-Event": claim.kind,
            "X-Issuegraph-Delivery": claim.guid,
            "X-Issuegraph-Signature-256": signature(claim.secret, body),
        }
        # TLS checks the certificate against the hook's host name, sent as SNI
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        assert self._client is not None
        for n, address in enumerate(addresses):  # the next address when one refuses
            request = self._client.build_request(
                "POST", target.url_to(address), content=body, headers=headers, extensions=extensions
            )
            try:
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError:
                if n == len(addresses) - 1:
                    raise
                continue
            break
        try:
            await _read_some(response)
        finally:
            await response.aclose()
        status = response.status_code
        if 200 <= status < 300:
            return status, None
        if response.is_redirect:
            where = response.headers.get("location", "")[:200]
            return status, f"The receiver answered {status} to {where}: redirects are not followed."
        return status, f"The receiver answered {status}."

    def _outcome(
        self, claim: Claim, error: str | None, duration: float, gone: bool
    ) -> tuple[str, float]:
        """The delivery's next state and the wait before its next attempt: retried until
        it is WEBHOOK_FAILURE_WINDOW old (the last retry falls at the window's end), then
        given up as FAILED."""
        if error is None:
            return "DELIVERED", 0.0
        settings = self._settings
        left = settings.webhook_failure_window - (claim.age + duration)
        if gone or left <= 0:
            return "FAILED", 0.0
        wait = backoff(claim.attempt, settings.webhook_retry_base, settings.webhook_retry_max)
        return "PENDING", min(wait, left)


def backoff(attempt: int, base: float, longest: float) -> float:
    """Seconds before the attempt after `attempt`: doubling from `base` up to `longest`,
    each a random time in the upper half of that (jitter: retries of many deliveries that
    failed together spread out)."""
    ceiling = min(longest, base * 2 ** min(attempt - 1, 60))
    return float(ceiling * random.uniform(0.5, 1.0))


async def _watch(listener: Listener) -> None:
    while not listener.lost.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener.lost.wait(), HEALTH_CHECK_SECONDS)
        if not listener.lost.is_set():
            await listener.check()


async def _read_some(response: httpx.Response) -> None:
    """Read at most READ_LIMIT bytes of the answer: a receiver cannot make us read more."""
    seen = 0
    async for chunk in response.aiter_raw():
        seen += len(chunk)
        if seen >= READ_LIMIT:
            break


def _describe(exc: httpx.HTTPError) -> str:
    kinds: dict[type[httpx.HTTPError], str] = {
        httpx.ConnectTimeout: "Connecting timed out",
        httpx.ReadTimeout: "No answer in time",
        httpx.WriteTimeout: "Sending timed out",
        httpx.ConnectError: "Could not connect",
        httpx.RemoteProtocolError: "The receiver broke the protocol",
    }
    kind = kinds.get(type(exc), "The request failed")
    detail = str(exc)[:300]
    return f"{kind}: {detail}" if detail else f"{kind}."


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"
