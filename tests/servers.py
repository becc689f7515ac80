"""Servers for tests: real server processes on the test database, for tests that cross
processes (`server_processes`), and a WebSocket client to an app in this process
(`AppSocket`), which httpx does not have."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.types import ASGIApp


class PostgresProxy:
    """A TCP proxy to the PostgreSQL of `database_url` (over TCP, or over the embedded one's
    Unix socket), for tests that watch or break what crosses the wire: a subclass says in
    `relay` what happens to the bytes of each connection. `url()` reaches the database
    through it while it runs (`async with`)."""

    def __init__(self, database_url: str) -> None:
        self.target = urlsplit(database_url)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()

    def url(self) -> str:
        """The database's URL through this proxy."""
        user = self.target.username or "postgres"
        return f"postgresql://{user}@127.0.0.1:{self.port}{self.target.path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target, port = self.target, self.target.port or 5432
        if target.hostname:
            up_reader, up_writer = await asyncio.open_connection(target.hostname, port)
        else:  # the embedded PostgreSQL's Unix socket (`?host=/dir`)
            folder = parse_qs(target.query)["host"][0]
            up_reader, up_writer = await asyncio.open_unix_connection(f"{folder}/.s.PGSQL.{port}")
        self._writers += [writer, up_writer]
        await self.relay(reader, writer, up_reader, up_writer)

    async def relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        raise NotImplementedError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_processes(count: int, database_url: str, **env: str) -> Iterator[list[str]]:
    """Start `count` uvicorn processes of the app; yield their base URLs; stop them."""
    environment = os.environ | {"DATABASE_URL": database_url, "LOG_LEVEL": "warning"} | env
    ports = [free_port() for _ in range(count)]
    processes = [_start(port, environment) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes, strict=True):
            _wait_healthy(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start(port: int, environment: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "server.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=environment,
    )


def spawn_server(database_url: str, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
    """One server process, started and answering: its base URL and the process, which
    the caller stops (or kills)."""
    environment = os.environ | {"DATABASE_URL": database_url, "LOG_LEVEL": "warning"} | env
    port = free_port()
    process = _start(port, environment)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return url, process


def _wait_healthy(
    url: str, process: subprocess.Popen[bytes], check: str = "/healthz", seconds: float = 30
) -> None:
    """Until the server answers `check` with 200; an error if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server at {url} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}{check}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not answer {check}")


class SocketClosed(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class AppSocket:
    """A WebSocket client to an ASGI app running in this event loop: the app's side runs
    as a task, messages pass through two queues. So a test reaches the app (and its
    database pool) as its HTTP client does, with no server process in between."""

    def __init__(
        self,
        app: ASGIApp,
        path: str = "/graphql",
        *,
        client: tuple[str, int],
        headers: Sequence[tuple[str, str]] = (),
        subprotocols: Sequence[str] = ("graphql-transport-ws",),
    ) -> None:
        self._app = app
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("test", 80),
            "client": client,
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            "subprotocols": list(subprotocols),
        }
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AppSocket:
        self._task = asyncio.create_task(
            self._app(self._scope, self._to_app.get, self._from_app.put)  # type: ignore[arg-type]
        )
        await self._to_app.put({"type": "websocket.connect"})
        accepted = await self._next()
        if accepted["type"] != "websocket.accept":
            raise SocketClosed(accepted.get("code", 1000))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        if not self._task.done():
            await self._to_app.put({"type": "websocket.disconnect", "code": 1000})
            await asyncio.wait_for(self._task, 10)

    async def send_json(self, message: Any) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": json.dumps(message)})

    async def receive_json(self, timeout: float = 10) -> Any:
        """The next message the app sent; SocketClosed when it closed the socket."""
        message = await self._next(timeout)
        if message["type"] == "websocket.close":
            raise SocketClosed(message.get("code", 1000))
        return json.loads(message.get("text") or message["bytes"])

    async def _next(self, timeout: float = 10) -> dict[str, Any]:
        """What the app sends next; its exception if it fails first."""
        assert self._task is not None
        sent = asyncio.ensure_future(self._from_app.get())
        done, _ = await asyncio.wait(
            {sent, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if sent in done:
            return sent.result()
        sent.cancel()
        if self._task in done:
            self._task.result()  # raises what the app raised
            raise SocketClosed(1006)  # the app returned without closing
        raise TimeoutError(f"the app sent nothing within {timeout} s")


class Socket(Protocol):
    """What tests do with a WebSocket, in-process (AppSocket) or served (ServedSocket)."""

    async def send_json(self, message: Any) -> None: ...

    async def receive_json(self, timeout: float = 10) -> Any: ...


class ServedSocket:
    """A WebSocket client to an app served by uvicorn in this process (`served_app`), with
    AppSocket's methods: what crosses a real socket, uvicorn's own protocol included."""

    def __init__(self, url: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        self._url = url
        self._headers = list(headers)
        self._connection: Any = None

    async def __aenter__(self) -> ServedSocket:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        self._connection = await connect(
            self._url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            additional_headers=self._headers,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connection.close()

    async def send_json(self, message: Any) -> None:
        await self._connection.send(json.dumps(message))

    async def receive_json(self, timeout: float = 10) -> Any:
        """The next message the server sent; SocketClosed when it closed the socket."""
        from websockets.exceptions import ConnectionClosed

        try:
            text = await asyncio.wait_for(self._connection.recv(), timeout)
        except ConnectionClosed as closed:
            raise SocketClosed(closed.rcvd.code if closed.rcvd else 1006) from None
        except TimeoutError:
            raise TimeoutError(f"the server sent nothing within {timeout} s") from None
        return json.loads(text)


@asynccontextmanager
async def served_app(app: ASGIApp) -> AsyncIterator[str]:
    """`app` (its lifespan already started) served by uvicorn in this event loop, with the
    WebSocket protocol the server runs with; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        ws="websockets-sansio",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    # pytest keeps its own signal handlers
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign, assignment]
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextmanager
def command_line_server(
    database_url: str, log: Path, *, stderr: int | None = None, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m server run` (what `make run` starts) on the test database and a free port,
    its standard error written to `log` (or to the file descriptor `stderr`) and its standard
    output to `log` with the suffix `.stdout`; yields its base URL and the process, and stops
    it with SIGTERM as an operator would."""
    port = free_port()
    environment = os.environ | {"DATABASE_URL": database_url, "PORT": str(port)} | env
    with open(log, "wb") as written, open(log.with_suffix(".stdout"), "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "run"],
            env=environment,
            stdout=out,
            stderr=written if stderr is None else stderr,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process)
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
