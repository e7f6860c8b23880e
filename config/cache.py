"""Django's Redis cache, keeping one Redis client per connection pool instead of making one per call.

Django's client builds a new `redis.Redis` around the same pool for every
get and set, and redis-py fills a table of some 200 response callbacks for
each one: about 0.15 ms of CPU per call, on every request that reads its
session from the cache (issue 9). The client is a thin, thread-safe wrapper
over its pool (connections are taken per command), so one per pool is
enough; the pools are Django's own.
"""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ReusingRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
