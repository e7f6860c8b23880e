"""The Redis cache backend keeps one client per pool; values still round-trip through Redis."""

import pytest

from config.cache import ReusingRedisCache

# Granary's own Redis database in the shared test setup; the round trip is skipped where no Redis answers.
REDIS_URL = "redis://127.0.0.1:6379/12"


def _cache(location: str = REDIS_URL) -> ReusingRedisCache:
    return ReusingRedisCache(location, {"KEY_PREFIX": "granary-test-cache"})


def test_one_client_serves_every_call_to_a_pool():
    cache = _cache()._cache
    first = cache.get_client("a")
    assert cache.get_client("b") is first
    assert cache.get_client("c", write=True) is first
    assert first.connection_pool is cache._get_connection_pool(False)


def test_each_server_gets_its_own_client():
    cache = _cache("redis://127.0.0.1:6379/12,redis://127.0.0.1:6379/13")._cache
    writer = cache.get_client(write=True)
    reader = cache.get_client()
    assert writer is not reader
    assert writer.connection_pool is not reader.connection_pool
    assert cache.get_client(write=True) is writer


def test_values_round_trip():
    cache = _cache()
    try:
        cache.set("k", {"session": [1, 2]}, 30)
    except Exception as exc:  # redis.ConnectionError and kin: no server here
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    try:
        assert cache.get("k") == {"session": [1, 2]}
        cache.delete("k")
        assert cache.get("k") is None
    finally:
        cache.delete("k")
