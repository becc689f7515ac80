"""Passwords and access tokens.

Passwords are hashed with bcrypt in a worker thread (a hash at cost 12 takes ~250 ms, far
too long to block the event loop). bcrypt reads at most 72 bytes, and bcrypt 5 refuses
longer input, so longer passwords are refused up front rather than truncated.

Access tokens are JWTs signed with HS256 (the algorithm is pinned: a token naming any
other, "none" included, is refused), and must carry exp, iat, sub, aud and iss.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import bcrypt
import jwt

from core.errors import Unauthenticated

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss"]
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


class Tokens:
    """Issues and verifies access tokens."""

    def __init__(self, secret: str, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._ttl = timedelta(seconds=ttl_seconds)

    def issue(self, user_id: int, now: datetime | None = None) -> AccessToken:
        now = now or datetime.now(UTC)
        expires = now + self._ttl
        claims = {
            "sub": str(user_id),
            "iat": now,
            "exp": expires,
            "aud": self._audience,
            "iss": self._issuer,
        }
        return AccessToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires)

    def verify(self, token: str) -> int:
        """The user id a valid token names; anything else is UNAUTHENTICATED."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The access token has expired.") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"The access token is invalid: {exc}.") from None
        subject = claims["sub"]
        if (
            not isinstance(subject, str)
            or not (subject.isascii() and subject.isdigit())
            or not 0 < int(subject) < 2**63
        ):
            raise Unauthenticated("The access token is invalid: bad subject.")
        return int(subject)
