"""The Redis read-through cache, against a real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.state import RedisCache

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def cache() -> Iterator[RedisCache]:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    made = RedisCache(REDIS_URL, prefix=f"test-{uuid.uuid4().hex[:10]}:")
    yield made
    made.flush()


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config)
    yield application
    application.close()


def test_a_second_read_is_a_hit(app: ss.App, cache: RedisCache) -> None:
    carts = app.state("carts", cache=cache)
    carts.put("u1", {"items": [1]})
    assert carts.get("u1").value == {"items": [1]}  # type: ignore[union-attr]
    assert carts.get("u1").value == {"items": [1]}  # type: ignore[union-attr]
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.errors) == (1, 1, 0)


def test_a_write_invalidates_so_the_next_read_sees_it(
    app: ss.App, cache: RedisCache
) -> None:
    carts = app.state("carts", cache=cache)
    carts.put("u1", "old")
    carts.get("u1")
    carts.put("u1", "new")
    item = carts.get("u1")
    assert (item.value, item.version) == ("new", 2)  # type: ignore[union-attr]
    carts.delete("u1")
    assert carts.get("u1") is None


def test_writes_in_a_transaction_invalidate_after_the_commit(
    app: ss.App, cache: RedisCache
) -> None:
    carts = app.state("carts", cache=cache)
    carts.put("u1", "old")
    carts.get("u1")
    with app.transaction():
        carts.put("u1", "new")
    assert carts.get("u1").value == "new"  # type: ignore[union-attr]


def test_a_slow_reader_cannot_overwrite_a_newer_cached_version(
    app: ss.App, cache: RedisCache
) -> None:
    now = app._state_now()
    cache.fill("carts", "u1", 5, b'"five"', None, now)
    cache.fill("carts", "u1", 4, b'"four"', None, now)
    assert cache.lookup("carts", "u1", now) == (5, b'"five"', None)


def test_a_read_that_raced_a_write_cannot_refill_an_old_version(
    app: ss.App, cache: RedisCache
) -> None:
    now = app._state_now()
    cache.fill("carts", "u1", 3, b'"three"', None, now)
    cache.invalidate("carts", "u1", 4)  # a write of version 4 committed
    cache.fill("carts", "u1", 3, b'"three"', None, now)  # the slow read lands
    assert cache.lookup("carts", "u1", now) is None
    cache.fill("carts", "u1", 4, b'"four"', None, now)
    assert cache.lookup("carts", "u1", now) == (4, b'"four"', None)


def test_flushing_redis_loses_no_data(app: ss.App, cache: RedisCache) -> None:
    carts = app.state("carts", cache=cache)
    for i in range(5):
        carts.put(f"u{i}", i)
        carts.get(f"u{i}")
    assert cache.flush() == 5
    assert [carts.get(f"u{i}").value for i in range(5)] == list(range(5))  # type: ignore[union-attr]


def test_an_unreachable_redis_falls_back_to_the_store(app: ss.App) -> None:
    pytest.importorskip("redis")
    dead = RedisCache("redis://127.0.0.1:1/0", prefix="dead:")
    carts = app.state("carts", cache=dead)
    carts.put("u1", "safe")
    assert carts.get("u1").value == "safe"  # type: ignore[union-attr]
    assert dead.stats().errors >= 2


def test_an_expired_item_is_not_served_from_the_cache(
    app: ss.App, cache: RedisCache
) -> None:
    clock = [app._state_now()]
    app.clock = lambda: clock[0]  # type: ignore[attr-defined]
    sessions = app.state("sessions", cache=cache)
    sessions.put("s1", "x", ttl=100)
    assert sessions.get("s1") is not None
    clock[0] += 101
    assert sessions.get("s1") is None


def test_large_blob_values_are_cached_too(
    store_config: dict[str, Any], cache: RedisCache
) -> None:
    with ss.App(**store_config, blob_threshold_bytes=64) as app:
        docs = app.state("docs", cache=cache)
        docs.put("d", "x" * 1000)
        assert docs.get("d").value == "x" * 1000  # type: ignore[union-attr]
        assert docs.get("d").value == "x" * 1000  # type: ignore[union-attr]
        assert cache.stats().hits == 1
