"""The shared Redis connection for presence and rate limits, when REDIS_URL is set.

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

import redis.asyncio as aioredis
from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


# Connections per worker for presence and rate limits: each command takes well under a
# millisecond, so a few dozen serve thousands of sockets.
POOL_SIZE = 32
# After a failed call, how long presence and rate limits leave Redis alone.
RETRY_AFTER_SECONDS = 5.0
# At most one warning with its traceback this often, whatever fails how often.
LOG_EVERY_SECONDS = 60.0

logger = logging.getLogger(__name__)
_skip_until = 0.0
_logged_at = -1e9


def enabled() -> bool:
    return bool(settings.REDIS_URL)


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
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=POOL_SIZE,
            timeout=5,
            socket_connect_timeout=1,
            socket_timeout=1,
        )
        conn = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        _clients[loop] = conn
    return conn
