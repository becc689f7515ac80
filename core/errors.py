"""The project's error hierarchy.

    ClientError                 an error the client caused; its message is safe to show
    ├── BadUserInput            BAD_USER_INPUT: malformed ids, cursors, page sizes, arguments
    ├── NotFound                NOT_FOUND
    ├── Unauthenticated         UNAUTHENTICATED
    ├── Forbidden               FORBIDDEN
    ├── QueryTooComplex         QUERY_TOO_COMPLEX
    └── RateLimited             RATE_LIMITED
    DatabaseError               the database failed; masked as INTERNAL
    ├── Unavailable             UNAVAILABLE (HTTP 503): unreachable, or the breaker is open
    ├── QueryTimeout            TIMEOUT: past statement_timeout
    └── TransientError          retried: lost connection, serialization failure, deadlock

Anything that is not a ClientError reaching the HTTP layer is masked as INTERNAL and logged
in full on the server.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ClientError(Exception):
    code: ClassVar[str] = "BAD_USER_INPUT"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class BadUserInput(ClientError):
    code = "BAD_USER_INPUT"


class NotFound(ClientError):
    code = "NOT_FOUND"


class Unauthenticated(ClientError):
    code = "UNAUTHENTICATED"


class Forbidden(ClientError):
    code = "FORBIDDEN"


class QueryTooComplex(ClientError):
    code = "QUERY_TOO_COMPLEX"


class RateLimited(ClientError):
    code = "RATE_LIMITED"


class DatabaseError(Exception):
    """The database failed in a way the client cannot fix."""


class Unavailable(DatabaseError):
    """The database cannot be reached (or the circuit breaker is open): UNAVAILABLE, 503."""


class QueryTimeout(DatabaseError):
    """A statement ran past its timeout: TIMEOUT."""


class TransientError(DatabaseError):
    """Worth retrying: a lost connection (`ambiguous`: a write may have committed), a
    serialization failure or a deadlock (the transaction was rolled back: safe to retry)."""

    def __init__(self, message: str, *, ambiguous: bool) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
