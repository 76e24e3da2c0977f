"""The shared Redis connection for presence and rate limits, when the site has Redis.

That is the first server of REDIS_URL (the channel layer alone shards over several), or the
master that REDIS_SENTINELS name: then every new connection asks a sentinel where the master is,
so calls follow a failover once Sentinel has promoted a replica.

When a call fails, its caller falls back (rate limits to this worker's own buckets, presence to
nothing but this worker's socket count) and Redis is skipped for RETRY_AFTER_SECONDS: a paused
Redis would otherwise cost every frame that asks it the read timeout, and every failure a
traceback in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


# Connections per worker for presence and rate limits: each command takes well under a
# millisecond, so a few dozen serve thousands of sockets.
POOL_SIZE = 32
# Each connection (and each question to a sentinel) gives up after this long (see client()).
TIMEOUTS = {"socket_connect_timeout": 1, "socket_timeout": 1}
# After a failed call, how long presence and rate limits leave Redis alone.
RETRY_AFTER_SECONDS = 5.0
# At most one warning with its traceback this often, whatever fails how often.
LOG_EVERY_SECONDS = 60.0

logger = logging.getLogger(__name__)
_skip_until = 0.0
_logged_at = -1e9


def enabled() -> bool:
    """Whether the site has Redis (REDIS_URL or REDIS_SENTINELS): the one place that decides
    for presence and rate limits, as settings.py does for the channel layer and the cache."""
    return bool(settings.REDIS_URL or settings.REDIS_SENTINELS)


def usable() -> bool:
    """Configured, and not failed within the last RETRY_AFTER_SECONDS."""
    return enabled() and time.monotonic() >= _skip_until


def failed(what: str) -> None:
    """Note a failed call: skip Redis for a while, and say so (once a minute at most)."""
    global _skip_until, _logged_at
    now = time.monotonic()
    _skip_until = now + RETRY_AFTER_SECONDS
    if now - _logged_at >= LOG_EVERY_SECONDS:
        _logged_at = now
        logger.warning("Redis unavailable (%s); falling back for now", what, exc_info=True)


def client() -> aioredis.Redis:
    """A client for the running event loop (redis-py connections belong to one loop)."""
    loop = asyncio.get_running_loop()
    conn = _clients.get(loop)
    if conn is None:
        # Short commands only (no blocking reads), so a read timeout is safe here (stack fact 1
        # concerns the channel layer's blocking reads). A paused Redis accepts connections and
        # commands but never answers: each call then costs the read timeout before its caller
        # falls back (a `send` is acked that much later), so it is short; Redis answers these
        # commands in well under a millisecond.
        # A blocking pool: when thousands of sockets connect at once (a worker restart) their
        # presence calls wait briefly for a connection instead of failing with "Too many
        # connections" (stack fact 1) or opening one each.
        pool_options: dict[str, Any] = {"max_connections": POOL_SIZE, "timeout": 5, **TIMEOUTS}
        if settings.REDIS_SENTINELS:
            # The sentinels answer with the same short timeouts: one that is down or paused
            # must not hold up the call longer than the master would.
            sentinel = Sentinel(settings.REDIS_SENTINELS, sentinel_kwargs=TIMEOUTS)
            conn = sentinel.master_for(
                settings.REDIS_SENTINEL_MASTER,
                connection_pool_class=BlockingSentinelConnectionPool,
                **pool_options | settings.REDIS_SENTINEL_MASTER_OPTIONS,
            )
        else:
            # The first server only: the keys of presence and rate limits must be where every
            # worker looks for them.
            first = settings.REDIS_URL.split(",")[0].strip()
            pool = aioredis.BlockingConnectionPool.from_url(first, **pool_options)
            conn = aioredis.Redis.from_pool(pool)
        # Either way the client owns its pool: closing the client closes the pool.
        _clients[loop] = conn
    return conn


class BlockingSentinelConnectionPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's pool of master connections, bounded like the plain one: a caller waits for a
    free connection instead of opening one more or failing with "Too many connections"."""
