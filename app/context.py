"""The per-request context: built once per request, by `build_context`, and frozen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.auth import Tokens
from app.db import Session
from app.policy import Access, Policy, Viewer
from app.settings import Settings
from loaders import Loaders


@dataclass(frozen=True, slots=True)
class Services:
    """What the process holds for every request: settings, the enforcer, token signing."""

    settings: Settings
    access: Access
    tokens: Tokens


@dataclass(frozen=True, slots=True)
class Context:
    session: Session
    viewer: Viewer
    policy: Policy
    loaders: Loaders
    services: Services
    request: Any = None

    @property
    def client_address(self) -> str | None:
        client = getattr(self.request, "client", None)
        return client.host if client is not None else None


def build_context(session: Session, viewer: Viewer, services: Services,
                  request: Any = None) -> Context:
    policy = Policy(viewer, services.access)
    return Context(
        session=session,
        viewer=viewer,
        policy=policy,
        loaders=Loaders(session, policy.scope()),
        services=services,
        request=request,
    )
