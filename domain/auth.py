"""Passwords, access tokens and sign-in throttling.

Passwords are hashed with bcrypt in a worker thread (a hash at cost 12 takes ~250 ms, far
too long to block the event loop). bcrypt reads at most 72 bytes, and bcrypt 5 refuses
longer input, so longer passwords are refused up front rather than truncated.

Access tokens are JWTs signed with HS256 (the algorithm is pinned: a token naming any
other, "none" included, is refused), and must carry exp, iat, sub, sid (the session, which
the viewer's statement checks is live), aud and iss.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import bcrypt
import jwt

from core import observability as metrics
from core.db import Session
from core.errors import RateLimited, Unauthenticated
from core.settings import Settings
from loaders import accounts

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "aud", "iss"]
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72


def password_problem(password: str) -> tuple[str, str] | None:
    """(code, message) when the password cannot be used, else None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return "TOO_SHORT", f"The password must have at least {MIN_PASSWORD_CHARS} characters."
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return "TOO_LONG", f"The password must fit in {MAX_PASSWORD_BYTES} bytes of UTF-8."
    return None


async def hash_password(password: str, rounds: int) -> str:
    salt = bcrypt.gensalt(rounds)
    hashed = await asyncio.to_thread(bcrypt.hashpw, password.encode(), salt)
    return hashed.decode()


async def verify_password(password: str, hashed: str | None, rounds: int) -> bool:
    """Check a password; with no usable hash, spend the same time and say no."""
    candidate = password.encode()[:MAX_PASSWORD_BYTES]
    usable = hashed is not None and hashed.startswith("$2")
    target = hashed.encode() if usable and hashed else _dummy_hash(rounds)
    matched = await asyncio.to_thread(bcrypt.checkpw, candidate, target)
    return matched and usable


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds))


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Claims:
    """What a valid access token says: whose it is, of which session, until when."""

    user_id: int
    session_id: int
    expires_at: datetime


# Why a token is refused, for people (the message) and for programs (`extensions.reason`);
# never the JWT library's own words, which speak of its internals.
MALFORMED = (
    "MALFORMED",
    "The access token is malformed: send the accessToken that logIn or refreshToken returned.",
)
BAD_SIGNATURE = (
    "BAD_SIGNATURE",
    "The access token's signature does not match: it was not issued by this server "
    "(or the server's key has changed). Sign in again.",
)
EXPIRED = (
    "EXPIRED",
    "The access token has expired: trade the refresh token for new tokens with "
    "refreshToken, or sign in again.",
)
NOT_FOR_US = ("WRONG_AUDIENCE", "The access token was issued for another service.")
NOT_YET = ("NOT_YET_VALID", "The access token is not valid yet: its issue time is ahead of ours.")
_REFUSALS: list[tuple[type[Exception], tuple[str, str]]] = [
    (jwt.ExpiredSignatureError, EXPIRED),
    (jwt.InvalidSignatureError, BAD_SIGNATURE),
    (jwt.InvalidAlgorithmError, BAD_SIGNATURE),
    (jwt.InvalidAudienceError, NOT_FOR_US),
    (jwt.InvalidIssuerError, NOT_FOR_US),
    (jwt.ImmatureSignatureError, NOT_YET),
]


def refused(reason: tuple[str, str]) -> Unauthenticated:
    code, message = reason
    return Unauthenticated(message, reason=code)


class Tokens:
    """Issues and verifies access tokens."""

    def __init__(self, secret: str, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._ttl = timedelta(seconds=ttl_seconds)

    def issue(self, user_id: int, session_id: int, now: datetime | None = None) -> AccessToken:
        now = now or datetime.now(UTC)
        expires = now + self._ttl
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": now,
            "exp": expires,
            "aud": self._audience,
            "iss": self._issuer,
        }
        return AccessToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires)

    def verify(self, token: str) -> Claims:
        """What a valid token says; anything else is UNAUTHENTICATED, with a reason."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as exc:
            reason = next((r for kind, r in _REFUSALS if isinstance(exc, kind)), MALFORMED)
            raise refused(reason) from None
        user_id, session_id = _id(claims["sub"]), _id(claims["sid"])
        if user_id is None or session_id is None:
            raise refused(MALFORMED)
        return Claims(user_id, session_id, datetime.fromtimestamp(claims["exp"], UTC))


def _id(value: object) -> int | None:
    """A positive bigint written in decimal digits, else None."""
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20):
        return None
    number = int(value)
    return number if 0 < number < 2**63 else None


# -- sign-in throttling ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThrottleKeys:
    pair: str  # this account (as typed) from this client address
    address: str  # this client address, whatever the account


@dataclass(frozen=True, slots=True)
class SignInThrottle:
    """Failed sign-ins slow down the (account, client address) pair that failed, and an
    address that fails very often is stopped altogether for a while:

    - a pair may fail `free_failures` times; each further failure doubles the wait before
      it may try again (1 s, 2 s, 4 s … up to `max_delay`). Its failures count for
      `window` seconds, or until it signs in.
    - an address may fail `address_limit` times within `address_window` seconds, whatever
      the accounts (high enough for an office behind one NAT); then it waits.

    The account is the login or email as typed (lower-cased), known or not: failures
    against an unknown account slow down that name from that address only, and throttling
    looks the same whether an account exists or not. No count is kept per account alone,
    so nobody can lock a user out from another address. An IPv6 address.faileds by its /64
    network (what one client usually holds).
    """

    free_failures: int
    window: int
    max_delay: int
    address_limit: int
    address_window: int

    @classmethod
    def of(cls, settings: Settings) -> SignInThrottle:
        return cls(
            settings.login_max_failures,
            settings.login_failure_window,
            settings.login_max_delay,
            settings.login_address_max_failures,
            settings.login_address_window,
        )

    def keys(self, login: str, address: str | None) -> ThrottleKeys:
        """The keys of a sign-in attempt: hashed, so that any input (20,000 characters, a
        NUL byte) makes a short key the index takes."""
        where = client_network(address)
        account = login.strip().lower().encode("utf-8", "replace")
        pair = hashlib.sha256(account + b"\n" + where.encode()).hexdigest()
        return ThrottleKeys(f"pair:{pair}", f"address:{where}")

    async def check(self, session: Session, keys: ThrottleKeys) -> None:
        """RATE_LIMITED (with `retryAfter`) while the pair or the address must wait."""
        found = await accounts.failures(
            session, keys.pair, self.window, keys.address, self.address_window
        )
        wait = self.wait(found.get(keys.pair), found.get(keys.address), datetime.now(UTC))
        if wait > 0:
            metrics.record_sign_in("throttled")
            log.warning("sign-in throttled", extra={"retry_after": wait})
            raise RateLimited(
                f"Too many failed sign-ins; try again in {wait} seconds.", retryAfter=wait
            )

    def wait(
        self,
        pair: accounts.Failures | None,
        address: accounts.Failures | None,
        now: datetime,
    ) -> int:
        """Whole seconds to wait before the next attempt; 0: go ahead."""
        waits = [0.0]
        if pair is not None and pair.failed >= self.free_failures:
            delay = min(2.0 ** (pair.failed - self.free_failures), self.max_delay)
            waits.append(delay - (now - pair.last).total_seconds())
        if address is not None and address.failed >= self.address_limit:
            waits.append(self.address_window - (now - address.first).total_seconds())
        return math.ceil(max(waits))

    async def failed(self, session: Session, keys: ThrottleKeys) -> None:
        longest = max(self.window, self.address_window)
        await accounts.record_failure(session, keys.pair, keys.address, longest)

    async def succeeded(self, session: Session, keys: ThrottleKeys) -> None:
        await accounts.clear_failures(session, keys.pair)


def client_network(address: str | None) -> str:
    """The client address as throttling counts it: an IPv4 address, an IPv6 /64 network."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
