"""Settings, read once from the environment (and an optional `.env` file).

Every knob an operator may turn lives here, with its default; README.md lists them.

`APP_ENV` picks a profile. `development` (the default, what `make run` serves) turns on
what helps a person explore: GraphiQL, introspection and field suggestions.
`production` turns them off unless each is switched on by its own variable, and refuses
to start without `DATABASE_URL` (no embedded PostgreSQL) and without a `JWT_SECRET` of at
least 32 characters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PRODUCTION = "production"
MIN_SECRET_LENGTH = 32  # characters: HS256 wants a key of 256 bits at least (RFC 7518, 3.2)
# A switch left unset: None, not validated as a boolean; `Settings._profile` decides it.
_BY_PROFILE: bool = Field(default=None, validate_default=False)  # type: ignore[assignment]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: Literal["development", "production"] = Field(
        default="development",
        description="The profile: production turns off GraphiQL, introspection, suggestions.",
    )

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset starts an embedded PostgreSQL in .pgdata/.",
    )
    embedded_pgdata: str = ".pgdata"
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_connect_timeout: float = 5.0
    db_acquire_timeout: float = 5.0
    db_command_timeout: float = 10.0

    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where people open issues: Issue.url and bodyHTML's links start with it.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1

    # Unset (None): on in development, off in production. `_profile` resolves them as the
    # settings are read, so that they are booleans wherever they are used.
    graphiql: bool = _BY_PROFILE
    introspection: bool = _BY_PROFILE
    field_suggestions: bool | None = None  # unset: as introspection, wherever that is set
    server_timing: bool = Field(
        default=True, description="Send a Server-Timing header with SQL statement counts."
    )
    seed_scale: float = Field(default=0.2, description="Size of the demo data set.")
    bcrypt_rounds: int = Field(default=12, ge=4, le=16, description="bcrypt cost.")
    jwt_secret: str | None = Field(
        default=None,
        description="HS256 key for access tokens; unset: a random key kept in the database.",
    )
    jwt_issuer: str = "issuegraph"
    jwt_audience: str = "issuegraph-api"
    access_token_ttl: int = Field(default=900, description="Access token lifetime (s).")
    refresh_token_ttl: int = Field(default=30 * 86400, description="Refresh token lifetime.")
    login_max_failures: int = Field(
        default=5, description="Failed sign-ins per (account, address) before each waits."
    )
    login_failure_window: int = Field(
        default=86_400, description="Seconds a pair's failed sign-ins count."
    )
    login_max_delay: int = Field(default=900, description="The longest wait (s) they grow to.")
    login_address_max_failures: int = Field(
        default=100, description="Failed sign-ins per address, whatever the account ..."
    )
    login_address_window: int = Field(default=900, description="... within this many s.")
    executor: str = Field(
        default="compiled",
        pattern="^(compiled|standard)$",
        description="compiled: the planned executor, standard: graphql-core.",
    )
    document_cache_size: int = 1024
    document_cache_bytes: int = 64_000_000  # estimated memory of the cached documents
    refusal_cost: int = 10  # budget points a refused document costs its client address
    max_body_bytes: int = 1_000_000
    body_timeout: float = 10.0  # seconds a request's body may take to arrive
    keepalive_timeout: int = 5  # seconds an idle keep-alive connection stays open
    max_connections: int = 1000  # concurrent connections and requests, then 503
    max_header_bytes: int = 16_384  # a request's start line and headers
    log_level: str = "info"
    log_json: bool = True

    redis_url: str | None = Field(
        default=None, description="Redis for shared rate budgets and persisted queries."
    )
    request_timeout: float = Field(default=8.0, description="Seconds a request may run.")
    statement_timeout_ms: int = Field(default=5_000, description="PostgreSQL statement_timeout.")
    max_depth: int = 15
    max_aliases: int = 30
    max_directives: int = 50
    max_cost: int = 50_000
    max_tokens: int = 10_000
    rate_limit_anonymous: int = Field(default=5_000, description="Cost points per hour.")
    rate_limit_signed_in: int = Field(default=50_000, description="Cost points per hour.")
    persisted_queries_only: bool = False
    persisted_queries_file: str | None = None
    persisted_queries_cache: int = 10_000
    persisted_queries_cache_bytes: int = 32_000_000  # characters of the documents kept
    circuit_failures: int = Field(default=3, description="Failures that open the breaker.")
    circuit_reset: float = Field(default=2.0, description="Seconds before a retry probe.")
    shutdown_timeout: int = Field(default=10, description="Graceful shutdown bound (s).")
    event_retention: int = Field(
        default=7 * 86_400,
        gt=0,
        description="Seconds the event log keeps events for resuming subscriptions (`after:`).",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach private, loopback and link-local addresses.",
    )
    webhook_timeout: float = Field(default=10.0, gt=0, description="Seconds per attempt.")
    webhook_retry_base: float = Field(default=10.0, gt=0, description="First retry after (s).")
    webhook_retry_max: float = Field(default=3600.0, gt=0, description="Longest wait (s).")
    webhook_failure_window: float = Field(
        default=86_400.0, gt=0, description="Seconds of failures before giving up."
    )
    webhook_poll_interval: float = Field(
        default=5.0, gt=0, description="Seconds between looks for due deliveries."
    )
    webhook_concurrency: int = Field(default=8, ge=1, description="Deliveries at once.")
    webhook_retention: float = Field(
        default=30 * 86_400.0, gt=0, description="Seconds finished deliveries are kept."
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token /metrics requires; unset: served to loopback clients only.",
    )

    @model_validator(mode="after")
    def _profile(self) -> Self:
        production = self.app_env == PRODUCTION
        if self.graphiql is None:
            self.graphiql = not production
        if self.introspection is None:
            self.introspection = not production
        if production:
            missing = []
            if not self.database_url:
                missing.append("DATABASE_URL (production runs no embedded PostgreSQL)")
            if len(self.jwt_secret or "") < MIN_SECRET_LENGTH:
                missing.append(f"JWT_SECRET of at least {MIN_SECRET_LENGTH} characters")
            if missing:
                raise ValueError("APP_ENV=production needs " + " and ".join(missing))
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
