"""What `make run` says on standard output once the server answers: where the API is, how
to sign in, how to stop; and anything about the data a newcomer would otherwise miss in the
log (a SEED_SCALE that did not apply)."""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass

from core import seed
from core.settings import Settings

READY_WITHIN = 120.0  # seconds to wait for the first answer before giving up quietly
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}


@dataclass(frozen=True, slots=True)
class Data:
    """What the database holds, as `prepare_database` found or made it."""

    demo_users: bool
    loaded_scale: float | None  # the SEED_SCALE the demo data was loaded at, if it was


def base_url(settings: Settings) -> str:
    host = _WILDCARDS.get(settings.host, settings.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def text(settings: Settings, data: Data) -> str:
    url = f"{base_url(settings)}/graphql"
    lines = [
        f"issuegraph is serving ({settings.app_env} profile)",
        f"  GraphQL   {url}  (POST, GET, and WebSocket: graphql-transport-ws)",
    ]
    if settings.graphiql:
        lines.append(f"  GraphiQL  open {url} in a browser; its SignIn tab signs you in")
    if data.demo_users:
        users = [f"{login} / {password}" for login, _n, _e, password, _b, _a in seed.DEMO_USERS]
        lines.append(f"  Sign in   {', '.join(users)}")
        lines.append('            (README.md, "Try it": the same with curl)')
    if data.loaded_scale is not None and data.loaded_scale != settings.seed_scale:
        lines.append(
            f"  Note      SEED_SCALE is {settings.seed_scale:g}, but the database holds demo "
            f"data of scale {data.loaded_scale:g}: `make reset` loads {settings.seed_scale:g}"
        )
    lines.append("  Stop      Ctrl-C")
    return "\n".join(lines)


def announce_when_ready(settings: Settings, data: Data) -> threading.Thread:
    """Print `text` once /healthz answers (from a thread: the server runs in this one)."""
    thread = threading.Thread(target=_announce, args=(settings, data), daemon=True)
    thread.start()
    return thread


def _announce(settings: Settings, data: Data) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        try:  # urllib rather than httpx, which would log every probe
            with urllib.request.urlopen(f"{base_url(settings)}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    print(text(settings, data), flush=True)
                    return
        except OSError:  # refused until the server listens; URLError is an OSError
            pass
        time.sleep(0.1)
