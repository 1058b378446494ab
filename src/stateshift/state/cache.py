"""A Redis read-through cache in front of a namespace (extra ``redis``).

The store stays the source of truth: a read that misses goes to the store
and fills the cache; a write commits to the store, then invalidates. Two
races are closed by versions, in Lua scripts that run atomically in Redis:

* a slow reader that read version 3 must not overwrite a cached version 4
  (``fill`` only raises the cached version);
* a reader that read version 3 just before a write of version 4 committed
  must not fill the cache after that write invalidated it: invalidation
  leaves a marker holding version 4 for ``marker_seconds``, and ``fill``
  refuses anything older than the marker.

Flushing Redis, or losing it, loses no data: a cache error is logged and
counted, and the read goes to the store. An invalidation that fails while
Redis is unreachable can leave a stale entry for up to ``ttl`` once Redis
returns; keep ``ttl`` as short as staleness allows.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from stateshift._durations import to_seconds
from stateshift.errors import ConfigError

__all__ = ["CacheStats", "RedisCache"]

logger = logging.getLogger(__name__)

# Hash fields: v = version, m = 1 for an invalidation marker, e = expiry
# (epoch seconds or ""), d = the encoded value.
_FILL = """
local current = redis.call('HMGET', KEYS[1], 'v', 'm')
if current[1] then
    local cached = tonumber(current[1])
    local offered = tonumber(ARGV[1])
    if current[2] == '1' then
        if offered < cached then return 0 end
    elseif offered <= cached then
        return 0
    end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'm', '0', 'e', ARGV[3], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

_INVALIDATE = """
local cached = redis.call('HGET', KEYS[1], 'v')
if cached and tonumber(cached) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'm', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of one cache since it was created."""

    hits: int
    misses: int
    errors: int
    """Redis calls that failed (the store answered instead)."""


class RedisCache:
    """Read-through cache of namespace items in Redis.

    Args:
        url: a Redis URL such as ``redis://127.0.0.1:6379/0``; or pass
            ``client``, an existing ``redis.Redis`` (bytes responses).
        prefix: prefix of every Redis key, so apps can share a server.
        ttl: how long an entry lives in Redis (capped by the item's expiry).
        marker_seconds: how long an invalidation marker lives; longer than
            the slowest read between the store and Redis.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "stateshift:",
        ttl: timedelta | float = 300.0,
        marker_seconds: float = 60.0,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("pass either a Redis url or a client")
        if url is not None:
            try:
                import redis
            except ModuleNotFoundError as exc:
                raise ConfigError(
                    "cache",
                    "a Redis cache needs redis-py: pip install 'stateshift[redis]'",
                ) from exc
            client = redis.Redis.from_url(url, socket_timeout=1.0)
        self.client = client
        self.prefix = prefix
        self.ttl_ms = max(1, int(to_seconds(ttl, name="ttl") * 1000))
        self.marker_ms = max(1, int(marker_seconds * 1000))
        self._fill = client.register_script(_FILL)
        self._invalidate = client.register_script(_INVALIDATE)
        self._lock = threading.Lock()
        self._hits = self._misses = self._errors = 0

    def redis_key(self, namespace: str, key: str) -> str:
        """The Redis key of an item (length-prefixed, so names cannot collide)."""
        return f"{self.prefix}{len(namespace)}:{namespace}:{key}"

    def stats(self) -> CacheStats:
        """Hit, miss and error counts so far."""
        with self._lock:
            return CacheStats(self._hits, self._misses, self._errors)

    def lookup(
        self, namespace: str, key: str, now: float
    ) -> tuple[int, bytes, float | None] | None:
        """(version, data, expires_at) if cached and not expired, else None."""
        try:
            fields = self.client.hmget(
                self.redis_key(namespace, key), "v", "m", "e", "d"
            )
        except Exception as exc:  # any redis-py or socket error: use the store
            self._failed("lookup", exc)
            self._count(hit=False)
            return None
        version, marker, expiry, data = fields
        if version is None or marker == b"1" or data is None:
            self._count(hit=False)
            return None
        expires_at = float(expiry) if expiry else None
        if expires_at is not None and expires_at <= now:
            self._count(hit=False)
            return None
        self._count(hit=True)
        return int(version), bytes(data), expires_at

    def fill(
        self,
        namespace: str,
        key: str,
        version: int,
        data: bytes,
        expires_at: float | None,
        now: float,
    ) -> None:
        """Cache what the store returned, unless the cache knows newer."""
        ttl_ms = self.ttl_ms
        if expires_at is not None:
            ttl_ms = min(ttl_ms, int((expires_at - now) * 1000))
            if ttl_ms <= 0:
                return
        expiry = "" if expires_at is None else repr(expires_at)
        try:
            self._fill(
                keys=[self.redis_key(namespace, key)],
                args=[version, data, expiry, ttl_ms],
            )
        except Exception as exc:
            self._failed("fill", exc)

    def invalidate(self, namespace: str, key: str, version: int) -> None:
        """Drop the cached item; refuse fills older than ``version`` a while."""
        try:
            self._invalidate(
                keys=[self.redis_key(namespace, key)], args=[version, self.marker_ms]
            )
        except Exception as exc:
            self._failed("invalidate", exc)

    def flush(self) -> int:
        """Delete every key under this cache's prefix; return how many."""
        removed = 0
        for redis_key in self.client.scan_iter(match=_glob_escape(self.prefix) + "*"):
            removed += int(self.client.delete(redis_key))
        return removed

    def _count(self, *, hit: bool) -> None:
        with self._lock:
            if hit:
                self._hits += 1
            else:
                self._misses += 1

    def _failed(self, operation: str, exc: Exception) -> None:
        with self._lock:
            self._errors += 1
        logger.warning(
            "Redis cache %s failed, using the store: %s",
            operation,
            exc,
            extra={"event": "state.cache_error"},
        )


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
