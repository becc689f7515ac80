"""The per-request context, built once per request by `build_context`.

A query or mutation uses one context from start to end. A subscription lives longer: its
context is renewed for every event (`renew_for_event`), so that each event is resolved
with fresh loaders on a fresh database session, released again while it waits; an event
made without the subscriber's task (execution/fanout.py, Live) is resolved in a context
of its own (`for_event`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.db import Database, Session
from core.settings import Settings
from domain.auth import Tokens
from domain.policy import Access, Policy, Viewer
from loaders import Loaders

if TYPE_CHECKING:
    from domain.events import Delivery, EventHub


@dataclass(frozen=True, slots=True)
class Services:
    """What the process holds for every request: settings, the enforcer, token signing,
    the database (for subscriptions' per-event sessions) and the event hub."""

    settings: Settings
    access: Access
    tokens: Tokens
    database: Database | None = None
    hub: EventHub | None = None


@dataclass(slots=True)
class Context:
    session: Session
    viewer: Viewer
    policy: Policy
    loaders: Loaders
    services: Services
    request: Any = None
    rate_limit: Any = None  # the request's BudgetState, for Query.rateLimit
    cost: int = 0  # the request's computed cost
    live: Any = None  # a subscription's delivery without its task (execution/fanout.Live)

    @property
    def client_address(self) -> str | None:
        client = getattr(self.request, "client", None)
        return client.host if client is not None else None

    @property
    def user_agent(self) -> str:
        """The client's User-Agent (cut to 200 characters), or "" when it sent none."""
        headers = getattr(self.request, "headers", None)
        return (headers.get("user-agent") or "")[:200] if headers is not None else ""

    async def renew_for_event(self, delivery: Delivery) -> None:
        """Start resolving a subscription event: release the last event's connection, take
        the subscriber's current role, and read through the event's shared loaders (one
        statement per loader for every subscriber with the same scope)."""
        await self.session.close()
        fresh = self.for_event(delivery)
        self.session, self.policy, self.loaders = fresh.session, fresh.policy, fresh.loaders

    def for_event(self, delivery: Delivery) -> Context:
        """A context of the subscriber's own for resolving one event, as `renew_for_event`
        makes it, on a database session of its own (idle until a read needs it)."""
        viewer = self.viewer
        if delivery.organization_id is not None:
            viewer.set_role(delivery.organization_id, delivery.role)
        services = self.services
        assert services.database is not None
        session = services.database.session()
        shared = delivery.shared
        policy = Policy(viewer, services.access)
        loaders = (
            Loaders(session, policy.scope())
            if shared is None
            else shared.loaders(shared.scope_of(viewer, services.access))
        )
        return Context(session, viewer, policy, loaders, services, self.request, live=self.live)


def build_context(
    session: Session, viewer: Viewer, services: Services, request: Any = None
) -> Context:
    policy = Policy(viewer, services.access)
    return Context(
        session=session,
        viewer=viewer,
        policy=policy,
        loaders=Loaders(session, policy.scope()),
        services=services,
        request=request,
    )
