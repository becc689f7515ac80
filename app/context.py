"""The per-request context: built once per request, by `build_context`, and frozen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.db import Session
from app.policy import Policy, Viewer
from loaders import Loaders


@dataclass(frozen=True, slots=True)
class Context:
    session: Session
    viewer: Viewer
    policy: Policy
    loaders: Loaders
    request: Any = None


def build_context(session: Session, viewer: Viewer, request: Any = None) -> Context:
    policy = Policy(viewer)
    return Context(
        session=session,
        viewer=viewer,
        policy=policy,
        loaders=Loaders(session, policy.scope()),
        request=request,
    )
