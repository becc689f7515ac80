"""What every mutation does: find its objects, check access, validate, write in one
transaction, and make the request's later reads see the write."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

import orjson
import strawberry
from strawberry.types import Info

from core.errors import Forbidden, NotFound, Unauthenticated
from domain.context import Context
from execution.ids import NAMES, NODES, decode_id
from loaders._base import RowLoader
from loaders.rows import UserRow
from loaders.writes import receipts
from resolvers.payloads import UserError, user_error

T = TypeVar("T")
Ctx = Info[Context, Any]
MAX_BODY = 65_536
MAX_TITLE = 256
MAX_NAME = 100
MAX_DESCRIPTION = 2_000
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38})$")
PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def signed_in(context: Context) -> UserRow:
    user = context.viewer.user
    if user is None:
        raise Unauthenticated("Sign in to do this.")
    return user


async def find(context: Context, global_id: str, row_type: type[T]) -> T:
    """The row of `row_type` a global id names, if the viewer may see it; NOT_FOUND
    otherwise (the same answer for a hidden object as for one that never existed)."""
    type_name = NAMES[row_type]
    _, pk = decode_id(global_id, expected=type_name)
    row: T | None = await NODES[type_name].loader(context.loaders).load(pk)
    if row is None:
        raise NotFound(f"Could not find a {type_name} with the id {global_id!r}.")
    return row


def allow(allowed: bool, message: str) -> None:
    if not allowed:
        raise Forbidden(message)


async def committed(context: Context, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` in one transaction; afterwards the request's loaders forget what they
    had read, so the payload shows the written values."""
    async with context.session.transaction():
        result = await work()
    context.loaders.clear_all(context.policy.scope())
    return result


KEY_REUSED = (
    "This clientMutationId was used with another input within the last 24 hours: send the "
    "same input to get the first result, or a new clientMutationId for a new create."
)


async def create_once(
    context: Context,
    mutation: str,
    input: Any,
    create: Callable[[], Awaitable[Any]],
    by_id: RowLoader[int, Any],
) -> Any:
    """A create that a retry with the same clientMutationId and the same input does not
    repeat: the new row, or the row the first attempt created (read through `by_id`, as the
    viewer sees it). The same key with another input is an IDEMPOTENCY_KEY_REUSED user
    error, returned, and nothing is written."""
    user = signed_in(context)
    key: str | None = input.client_mutation_id

    async def work() -> tuple[Any, int | None]:
        if key is not None:
            earlier = await receipts.claim(
                context.session, user.id, mutation, key, fingerprint(input)
            )
            if earlier is not None:
                if not earlier.same_input:
                    return user_error(
                        "clientMutationId", "IDEMPOTENCY_KEY_REUSED", KEY_REUSED
                    ), None
                return None, earlier.result_id
        row = await create()
        if key is not None:
            await receipts.fill(context.session, user.id, mutation, key, row.id)
        return row, None

    row, earlier = await committed(context, work)
    if row is None and earlier is not None:
        row = await by_id.load(earlier)
    return row


def fingerprint(input: Any) -> bytes:
    """SHA-256 of an input object's values but its clientMutationId, written canonically:
    the same input always gives the same fingerprint."""
    values = _fields(input)
    values.pop("client_mutation_id", None)
    canonical = orjson.dumps(values, default=_plain, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


def _fields(input: Any) -> dict[str, Any]:
    return {field.name: getattr(input, field.name) for field in dataclasses.fields(input)}


def _plain(value: Any) -> Any:
    """What orjson cannot write itself: enums, nested inputs, an unset field."""
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if value is strawberry.UNSET:
        return {"unset": True}
    raise TypeError(f"no canonical form for {type(value).__name__}")


def text(field: str, value: str, *, minimum: int = 0, maximum: int) -> UserError | None:
    length = len(value.strip()) if minimum else len(value)
    if length < minimum:
        return user_error(field, "TOO_SHORT", f"`{field}` must not be empty.")
    if len(value) > maximum:
        return user_error(field, "TOO_LONG", f"`{field}` has at most {maximum:,} characters.")
    return None


def pattern(field: str, value: str, regex: re.Pattern[str], rule: str) -> UserError | None:
    return None if regex.match(value) else user_error(field, "INVALID", f"`{field}` {rule}.")


def problems(*found: UserError | None) -> list[UserError]:
    return [p for p in found if p is not None]
