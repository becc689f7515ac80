"""Every error the API answers with: its class, its `extensions.code`, its HTTP status.

    Exception                                                   code                        HTTP
    ├── ClientError             the client caused it; its message is safe to show
    │   ├── BadRequest          not a GraphQL request at all    BAD_REQUEST                 400
    │   │   └── PersistedQueryInvalid  a malformed persistedQuery, a hash that does not match
    │   ├── CsrfRejected        a GET no preflight could guard  CSRF_REJECTED               400
    │   ├── MethodNotAllowed    (`allow` lists the methods)     METHOD_NOT_ALLOWED          405
    │   ├── PayloadTooLarge     the body is over MAX_BODY_BYTES PAYLOAD_TOO_LARGE           413
    │   ├── BodyTimeout         the body took over BODY_TIMEOUT BODY_TIMEOUT                408
    │   ├── UnsupportedMediaType  a POST that is not JSON       UNSUPPORTED_MEDIA_TYPE      415
    │   ├── PersistedQueryNotFound  an unknown hash: send the document with it
    │   │                                                       PERSISTED_QUERY_NOT_FOUND   200
    │   ├── PersistedQueryNotAllowed  not persisted, under PERSISTED_QUERIES_ONLY
    │   │                                                       PERSISTED_QUERY_NOT_ALLOWED 200
    │   ├── DocumentError       a document that cannot run                                  400*
    │   │   ├── ParseFailed                                     GRAPHQL_PARSE_FAILED        400*
    │   │   ├── ValidationFailed                                GRAPHQL_VALIDATION_FAILED   400*
    │   │   └── QueryTooComplex over a limit (tokens, depth, aliases, directives, cost, nodes)
    │   │                                                       QUERY_TOO_COMPLEX           400*
    │   ├── BadUserInput        ids, cursors, page sizes, arguments, the operation's name
    │   │                                                       BAD_USER_INPUT              400
    │   ├── Unauthenticated     a bad, expired or forged token  UNAUTHENTICATED             401
    │   ├── Forbidden                                           FORBIDDEN                   403
    │   ├── NotFound                                            NOT_FOUND                   404
    │   └── RateLimited         over the hourly budget          RATE_LIMITED                429
    └── ServerError             the server failed: the client sees only a fixed message
        │                                                       INTERNAL                    500
        ├── DatabaseError       the database failed; masked     INTERNAL                    500
        │   ├── Unavailable     unreachable, or the breaker is open
        │   │                                                   UNAVAILABLE                 503
        │   ├── QueryTimeout    a statement past STATEMENT_TIMEOUT_MS
        │   │                                                   TIMEOUT                     504
        │   └── TransientError  a lost connection, a serialization failure, a deadlock:
        │                       retried when safe, then         UNAVAILABLE                 503
        └── RequestTimeout      the request past REQUEST_TIMEOUT
                                                                TIMEOUT                     504

`status` is the HTTP status of a request the error stops as a whole. 400* is a document
error: 400 with `application/graphql-response+json`, but a 200 carrying the errors with the
legacy `application/json` (`legacy_status`), as the GraphQL-over-HTTP spec asks. An error a
resolver raises is a field error instead: it goes in `errors` next to `data`, status 200.
Anything else reaching a transport is logged in full and answered as INTERNAL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self


class ClientError(Exception):
    code: ClassVar[str] = "BAD_USER_INPUT"
    status: ClassVar[int] = 400
    # The status under the legacy `application/json` media type, when it differs.
    legacy_status: ClassVar[int | None] = None

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class BadRequest(ClientError):
    code = "BAD_REQUEST"


class PersistedQueryInvalid(BadRequest):
    """A malformed persistedQuery extension or a hash that does not match the document."""


class CsrfRejected(ClientError):
    code = "CSRF_REJECTED"


class MethodNotAllowed(ClientError):
    code = "METHOD_NOT_ALLOWED"
    status = 405

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow  # the methods that would do, for the `Allow` header


class PayloadTooLarge(ClientError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class BodyTimeout(ClientError):
    code = "BODY_TIMEOUT"
    status = 408


class UnsupportedMediaType(ClientError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class PersistedQueryNotFound(ClientError):
    # A 200, as Apollo answers it: the client retries with the document, and nothing on
    # the way may cache or mask the answer.
    code = "PERSISTED_QUERY_NOT_FOUND"
    status = 200


class PersistedQueryNotAllowed(ClientError):
    code = "PERSISTED_QUERY_NOT_ALLOWED"
    status = 200


class DocumentError(ClientError):
    """A document that cannot run; see the module docstring for its two statuses."""

    legacy_status = 200
    # graphql-core's errors as the response lists them (messages, locations), when they are
    # what it lists: kept formatted, so that a refusal holds neither the document nor its text
    errors: tuple[dict[str, Any], ...] = ()

    @classmethod
    def listing(cls, errors: Sequence[dict[str, Any]]) -> Self:
        error = cls("The document has errors.")
        error.errors = tuple(errors)
        return error


class ParseFailed(DocumentError):
    code = "GRAPHQL_PARSE_FAILED"


class ValidationFailed(DocumentError):
    code = "GRAPHQL_VALIDATION_FAILED"


class QueryTooComplex(DocumentError):
    code = "QUERY_TOO_COMPLEX"


class BadUserInput(ClientError):
    code = "BAD_USER_INPUT"


class Unauthenticated(ClientError):
    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(ClientError):
    code = "FORBIDDEN"
    status = 403


class NotFound(ClientError):
    code = "NOT_FOUND"
    status = 404


class RateLimited(ClientError):
    code = "RATE_LIMITED"
    status = 429


TIMEOUT_MESSAGE = "The request took too long and was stopped."


class ServerError(Exception):
    """The server failed; the client sees `code` and `public_message`, the log the rest."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    public_message: ClassVar[str] = "Internal server error."


class DatabaseError(ServerError):
    """The database failed in a way the client cannot fix."""


class Unavailable(DatabaseError):
    """The database cannot be reached (or the circuit breaker is open)."""

    code = "UNAVAILABLE"
    status = 503
    public_message = "The database is unavailable; retry in a few seconds."


class QueryTimeout(DatabaseError):
    """A statement ran past its timeout."""

    code = "TIMEOUT"
    status = 504
    public_message = TIMEOUT_MESSAGE


class TransientError(DatabaseError):
    """Worth retrying: a lost connection (`ambiguous`: a write may have committed), a
    serialization failure or a deadlock (the transaction was rolled back: safe to retry)."""

    code = "UNAVAILABLE"
    status = 503
    public_message = "The database connection failed; retry."

    def __init__(self, message: str, *, ambiguous: bool) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


class ShuttingDown(ServerError):
    """The server stopped the request because it is shutting down (SHUTDOWN_TIMEOUT)."""

    code = "UNAVAILABLE"
    status = 503
    public_message = (
        "The server is shutting down and stopped this request; retry (a write retried with "
        "the same clientMutationId is applied once)."
    )


class RequestTimeout(ServerError):
    """The request ran past its deadline (REQUEST_TIMEOUT)."""

    code = "TIMEOUT"
    status = 504
    public_message = TIMEOUT_MESSAGE
