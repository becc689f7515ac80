"""Opaque global ids: url-safe base64 of 'Type:primary key', padding stripped, and the
registry of node types (`NODES`), which the schema's `node` declarations fill.

Only the canonical spelling of an id is accepted, so that one object has one id.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import BadUserInput
from loaders import Loaders, using

MAX_PK = 2**63 - 1


@dataclass(frozen=True, slots=True)
class NodeKind:
    """A node type: its GraphQL name, its row class and the `Loaders` property reading it
    by id (for `node(id:)`, `nodes(ids:)` and mutations' ids)."""

    name: str
    row: type
    by_id: Callable[[Any], Any]  # a property of `Loaders` (loaders.using)

    def loader(self, loaders: Loaders) -> Any:
        """The request's by-id loader of this type."""
        return using(self.by_id, loaders)


NODES: dict[str, NodeKind] = {}  # by GraphQL name, in declaration order
NAMES: dict[type, str] = {}  # GraphQL names by row class


def register(kind: NodeKind) -> None:
    NODES[kind.name] = kind
    NAMES[kind.row] = kind.name


def register_row(name: str, row: type) -> None:
    """A type that is not a node, known by its row class (in unions)."""
    NAMES[row] = name


def encode_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).rstrip(b"=").decode()


def decode_id(global_id: str, expected: str | None = None) -> tuple[str, int]:
    """Return (type name, primary key); a malformed id or one of another type is an error."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
        type_name, _, pk_text = raw.decode().partition(":")
        pk = int(pk_text) if pk_text.isascii() and pk_text.isdigit() else -1
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadUserInput(f"Malformed id: {global_id[:64]!r}.", argument="id") from None
    # a type that is not a node (a Session) is decoded only where it is the type expected
    known = type_name in NODES or type_name == expected
    if not known or not 0 < pk <= MAX_PK or encode_id(type_name, pk) != global_id:
        raise BadUserInput(f"Malformed id: {global_id[:64]!r}.", argument="id")
    if expected is not None and type_name != expected:
        raise BadUserInput(
            f"Expected the id of a {expected}, got the id of a {type_name}.", argument="id"
        )
    return type_name, pk
