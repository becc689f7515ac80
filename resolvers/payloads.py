"""What every mutation payload shares: userErrors for expected failures."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="Why an input was refused.")
class UserErrorCode(Enum):
    INVALID = "INVALID"
    TOO_SHORT = "TOO_SHORT"
    TOO_LONG = "TOO_LONG"
    TAKEN = "TAKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    ARCHIVED = "ARCHIVED"
    LAST_OWNER = "LAST_OWNER"
    ALREADY_MEMBER = "ALREADY_MEMBER"
    NOT_MEMBER = "NOT_MEMBER"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


@strawberry.type(description="An expected failure of a mutation, tied to an input field.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='The path to the input field at fault, e.g. ["input", "login"].'
    )
    message: str = strawberry.field(description="What went wrong, for people.")
    code: UserErrorCode = strawberry.field(description="What went wrong, for programs.")


def user_error(field: str | None, code: str, message: str) -> UserError:
    return UserError(
        field=["input", field] if field else None, message=message, code=UserErrorCode(code)
    )
