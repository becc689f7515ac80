"""Webhook receivers for tests: real HTTP servers on this machine, each in a thread of its
own, that check every request's signature and answer as told (fail the first N, hold the
first one until released)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WAIT = 30  # seconds: a bound against hanging, not a measurement


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    signed: bool  # the signature header is the HMAC-SHA256 of the body with the secret
    status: int  # what the receiver answered

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def delivery(self) -> str:
        return self.headers["x-issuegraph-delivery"]


class Receiver:
    def __init__(
        self,
        secret: str,
        fail_first: int = 0,
        hold_first: bool = False,
        answer_held: bool = False,  # a held request is answered once released, not dropped
        redirect_to: str | None = None,
        tls: tuple[str, str] | None = None,  # certificate and key files: https on localhost
    ) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.hold_first = hold_first
        self.answer_held = answer_held
        self.redirect_to = redirect_to
        self.release = threading.Event()  # lets a held request answer
        self.held = threading.Event()  # set once a request is being held
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.server_names: list[str | None] = []  # the names TLS clients asked for (SNI)
        self._scheme = "https" if tls else "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            context.sni_callback = lambda _s, name, _c: self.server_names.append(name)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host = "localhost" if self._scheme == "https" else "127.0.0.1"
        return f"{self._scheme}://{host}:{self._server.server_address[1]}/hook"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.answer(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(headers.get("x-issuegraph-signature-256", ""), expected)
        with self._lock:
            first = not self.received and not self.held.is_set()
            count = len(self.received)
            if first and self.hold_first:
                self.held.set()
        if first and self.hold_first:
            self.release.wait(WAIT)
            if not self.answer_held:
                return  # no answer: the connection is dropped
        status = 500 if count < self.fail_first or not signed else 200
        if self.redirect_to is not None:
            status = 302
        with self._lock:
            self.received.append(Received(headers, body, signed, status))
        handler.send_response(status)
        if self.redirect_to is not None:
            handler.send_header("location", self.redirect_to)
        handler.send_header("content-length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def delivered(self) -> list[Received]:
        """The requests answered with 2xx."""
        with self._lock:
            return [r for r in self.received if r.status < 300]

    async def until(self, condition: Callable[[], bool], seconds: float = WAIT) -> None:
        """Wait until `condition()` holds; an AssertionError after `seconds`."""
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"not within {seconds} s: {self.received}"
            await asyncio.sleep(0.02)


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = WAIT) -> None:
    """Wait until `await condition()` holds; an AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        await asyncio.sleep(0.05)


@contextmanager
def receiver(secret: str, **options: Any) -> Iterator[Receiver]:
    running = Receiver(secret, **options).start()
    try:
        yield running
    finally:
        running.stop()
