"""The shared Redis connection for presence and rate limits, when REDIS_URL is set."""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


# Connections per worker for presence and rate limits: each command takes well under a
# millisecond, so a few dozen serve thousands of sockets.
POOL_SIZE = 32


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def client() -> aioredis.Redis:
    """A client for the running event loop (redis-py connections belong to one loop)."""
    loop = asyncio.get_running_loop()
    conn = _clients.get(loop)
    if conn is None:
        # Short commands only (no blocking reads), so a read timeout is safe here (stack fact 1
        # concerns the channel layer's blocking reads); connect fails fast so errors surface.
        # A blocking pool: when thousands of sockets connect at once (a worker restart) their
        # presence calls wait briefly for a connection instead of failing with "Too many
        # connections" (stack fact 1) or opening one each.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=POOL_SIZE,
            timeout=5,
            socket_connect_timeout=2,
            socket_timeout=5,
        )
        conn = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        _clients[loop] = conn
    return conn
