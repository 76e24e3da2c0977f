"""The shared Redis connection for presence and rate limits, when REDIS_URL is set."""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def client() -> aioredis.Redis:
    """A client for the running event loop (redis-py connections belong to one loop)."""
    loop = asyncio.get_running_loop()
    conn = _clients.get(loop)
    if conn is None:
        # Short commands only (no blocking reads), so a read timeout is safe here (stack fact 1
        # concerns the channel layer's blocking reads); connect fails fast so errors surface.
        conn = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5, max_connections=200
        )
        _clients[loop] = conn
    return conn
