"""Automatic persisted queries (the `extensions.persistedQuery.sha256Hash` protocol).

A client first sends only the hash; an unknown hash is answered PERSISTED_QUERY_NOT_FOUND,
and the client retries with the document and the hash, which the server checks and keeps.
Documents live in Redis when REDIS_URL is set (shared by every instance) and in a bounded
in-process LRU, which serves alone while Redis is down or slow (core/redis.py). With
PERSISTED_QUERIES_ONLY the server executes only documents it already knows (loaded at
start from PERSISTED_QUERIES_FILE, a JSON object of hash -> document, the format Relay's
compiler writes) and refuses to learn new ones: a production lockdown.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import PersistedQueryInvalid, PersistedQueryNotAllowed, PersistedQueryNotFound
from core.redis import RedisHealth

REDIS_PREFIX = "issuegraph:apq:"
REDIS_TTL = 7 * 24 * 3600


class Store(Protocol):
    async def get(self, digest: str) -> str | None: ...
    async def put(self, digest: str, query: str) -> None: ...


class MemoryStore:
    """The most recently used documents, at most `size` of them and `max_bytes` of text."""

    def __init__(self, size: int, max_bytes: int = 32_000_000) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._documents: OrderedDict[str, str] = OrderedDict()

    async def get(self, digest: str) -> str | None:
        query = self._documents.get(digest)
        if query is not None:
            self._documents.move_to_end(digest)
        return query

    async def put(self, digest: str, query: str) -> None:
        if len(query) > self._max_bytes:  # would evict everything, and not fit
            return
        old = self._documents.pop(digest, None)
        self._bytes += len(query) - (len(old) if old is not None else 0)
        self._documents[digest] = query
        while len(self._documents) > self._size or self._bytes > self._max_bytes:
            _, evicted = self._documents.popitem(last=False)
            self._bytes -= len(evicted)


class RedisStore:
    """Documents in Redis, shared by every instance, and in this process's memory too: while
    Redis is down or slow (`health`), the memory serves alone."""

    def __init__(self, redis: Redis, fallback: MemoryStore, health: RedisHealth) -> None:
        self._redis = redis
        self._memory = fallback
        self._health = health

    async def get(self, digest: str) -> str | None:
        found = await self._memory.get(digest)
        if found is not None or not self._health.usable:
            return found
        try:
            value = await self._redis.get(REDIS_PREFIX + digest)
        except (RedisError, OSError) as error:
            self._health.failed(error)
            return None
        self._health.succeeded()
        query = value.decode() if isinstance(value, bytes) else value
        if query is not None:
            await self._memory.put(digest, query)
        return query

    async def put(self, digest: str, query: str) -> None:
        await self._memory.put(digest, query)
        if not self._health.usable:
            return
        try:
            await self._redis.set(REDIS_PREFIX + digest, query, ex=REDIS_TTL)
        except (RedisError, OSError) as error:
            self._health.failed(error)
        else:
            self._health.succeeded()


def digest_of(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class PersistedQueries:
    def __init__(
        self, store: Store, *, only: bool = False, pinned: dict[str, str] | None = None
    ) -> None:
        self._store = store
        self._only = only
        self._pinned = pinned or {}

    @classmethod
    def from_file(cls, store: Store, only: bool, path: str | None) -> PersistedQueries:
        pinned: dict[str, str] = {}
        if path:
            loaded = json.loads(Path(path).read_text())
            pinned = {digest_of(q): q for q in loaded.values() if isinstance(q, str)}
        return cls(store, only=only, pinned=pinned)

    async def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str:
        """The document to run, from the query text and/or its persisted hash."""
        digest = _requested_digest(extensions)
        if digest is None:
            if query is None:
                raise PersistedQueryInvalid("The request has no `query`.")
            if self._only and digest_of(query) not in self._pinned:
                raise PersistedQueryNotAllowed("Only persisted queries are allowed here.")
            return query
        if query is None:
            known = self._pinned.get(digest) or (
                None if self._only else await self._store.get(digest)
            )
            if known is None:
                raise PersistedQueryNotFound("PersistedQueryNotFound")
            return known
        if digest_of(query) != digest:
            raise PersistedQueryInvalid("The sha256Hash does not match the query.")
        if self._only:
            if digest not in self._pinned:
                raise PersistedQueryNotAllowed("Only persisted queries are allowed here.")
        else:
            await self._store.put(digest, query)
        return query


def _requested_digest(extensions: dict[str, Any] | None) -> str | None:
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict):
        raise PersistedQueryInvalid("`extensions.persistedQuery` must be an object.")
    if persisted.get("version") != 1:
        raise PersistedQueryInvalid("Unsupported persistedQuery version: use version 1.")
    digest = persisted.get("sha256Hash")
    if (
        not isinstance(digest, str)
        or len(digest) != 64
        or not all(c in "0123456789abcdef" for c in digest)
    ):
        raise PersistedQueryInvalid("`persistedQuery.sha256Hash` must be 64 lowercase hex digits.")
    return digest
