"""Who is online, across every worker: in Redis when the site has it, in process otherwise.

Each connection is a member of its user's set with an expiry that its worker refreshes every
PRESENCE_HEARTBEAT_SECONDS. A worker that dies stops refreshing; any live worker's sweep then
finds users whose every connection expired and takes them offline, so a killed worker's users go
offline within PRESENCE_TTL_SECONDS plus one heartbeat.

The same sets count a user's open connections: `connect` refuses one past SOCKETS_PER_USER
(`TooManySockets`; the consumer closes it with 4029), atomically across workers. While Redis is
away nobody is announced, `online` is empty, and the limit holds per worker instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any, cast

from channels.db import database_sync_to_async
from django.conf import settings

from . import redis as shared_redis
from . import services

if TYPE_CHECKING:
    from .fanout import Hub

logger = logging.getLogger(__name__)

TTL = settings.CHAT["PRESENCE_TTL_SECONDS"]
# How long a connection closed by a draining worker (4012) still counts.
LINGER_SECONDS = 5


def _conns_key(user_id: int) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:presence:conns:{user_id}"


def _users_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:presence:users"


# KEYS: conns key, users key. ARGV: conn id, expiry, now, user id, most connections.
# Returns 1 if first connection, 0 if not, -1 if the user already has the most allowed.
_CONNECT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local had = redis.call('ZCARD', KEYS[1])
if had >= tonumber(ARGV[5]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], 86400)
redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[4])
if had == 0 then return 1 end
return 0
"""

# KEYS: conns key, users key. ARGV: conn id, now, user id. Returns 1 if that was the last one.
_DISCONNECT = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) == 0 then
  if redis.call('ZREM', KEYS[2], ARGV[3]) == 1 then return 1 end
end
return 0
"""

# KEYS: conns key, users key. ARGV: now, user id. Returns 1 if this call took the user offline.
_SWEEP_USER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  if redis.call('ZREM', KEYS[2], ARGV[2]) == 1 then return 1 end
else
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('ZADD', KEYS[2], newest[2], ARGV[2])
end
return 0
"""


# KEYS: conns key. ARGV: conn id, expiry. Shortens a connection's life to `expiry`.
_LINGER = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
end
return 0
"""


class TooManySockets(Exception):
    """The user has as many open connections as one user may (contract: 4029)."""


class _LocalPresence:
    """One process: a count of open connections per user."""

    def __init__(self) -> None:
        self.conns: dict[int, set[str]] = {}

    async def connect(self, user_id: int, conn_id: str) -> bool:
        conns = self.conns.setdefault(user_id, set())
        if len(conns) >= settings.CHAT["SOCKETS_PER_USER"]:
            raise TooManySockets
        conns.add(conn_id)
        return len(conns) == 1

    async def linger(self, user_id: int, conn_id: str) -> None:
        await self.disconnect(user_id, conn_id)

    async def disconnect(self, user_id: int, conn_id: str) -> bool:
        conns = self.conns.get(user_id)
        if conns is None or conn_id not in conns:
            return False
        conns.discard(conn_id)
        if not conns:
            del self.conns[user_id]
            return True
        return False

    async def online(self, user_ids: Iterable[int]) -> set[int]:
        return {u for u in user_ids if u in self.conns}

    async def heartbeat(self, conns: Iterable[tuple[int, str]]) -> None:
        return None

    async def sweep(self) -> list[int]:
        return []


class _RedisPresence:
    def __init__(self) -> None:
        # This worker's own count, for the socket limit while Redis is away.
        self.fallback = _LocalPresence()

    async def connect(self, user_id: int, conn_id: str) -> bool:
        """Count the connection in (True if it is the user's first), or TooManySockets."""
        now = time.time()
        limit = settings.CHAT["SOCKETS_PER_USER"]
        try:
            if not shared_redis.usable():
                raise ConnectionError("Redis was unavailable a moment ago")
            first = await _eval(
                _CONNECT,
                2,
                _conns_key(user_id),
                _users_key(),
                conn_id,
                now + TTL,
                now,
                user_id,
                limit,
            )
        except Exception:
            shared_redis.failed("presence")
            await self.fallback.connect(user_id, conn_id)
            return False
        if first == -1:
            raise TooManySockets
        return bool(first)

    async def linger(self, user_id: int, conn_id: str) -> None:
        """Let a connection that moves to another worker expire in a few seconds: the user
        stays online meanwhile, and it stops counting against their socket limit soon."""
        await self.fallback.disconnect(user_id, conn_id)
        if not shared_redis.usable():
            return
        try:
            await _eval(_LINGER, 1, _conns_key(user_id), conn_id, time.time() + LINGER_SECONDS)
        except Exception:
            shared_redis.failed("presence")

    async def disconnect(self, user_id: int, conn_id: str) -> bool:
        await self.fallback.disconnect(user_id, conn_id)
        if not shared_redis.usable():
            return False
        try:
            last = await _eval(
                _DISCONNECT, 2, _conns_key(user_id), _users_key(), conn_id, time.time(), user_id
            )
        except Exception:
            shared_redis.failed("presence")
            return False
        return bool(last)

    async def online(self, user_ids: Iterable[int]) -> set[int]:
        """Who of these is online; nobody while Redis is away (a `joined` still answers)."""
        ids = list(user_ids)
        if not ids or not shared_redis.usable():
            return set()
        try:
            scores = await shared_redis.client().zmscore(_users_key(), [str(u) for u in ids])
        except Exception:
            shared_redis.failed("presence")
            return set()
        now = time.time()
        return {u for u, score in zip(ids, scores, strict=True) if score and score > now}

    async def heartbeat(self, conns: Iterable[tuple[int, str]]) -> None:
        """Renew this worker's connections (one round trip for all of them)."""
        expiry = time.time() + TTL
        pipe = shared_redis.client().pipeline(transaction=False)
        for user_id, conn_id in conns:
            pipe.zadd(_conns_key(user_id), {conn_id: expiry}, xx=True)
            pipe.zadd(_users_key(), {str(user_id): expiry}, gt=True)
        await pipe.execute()

    async def sweep(self) -> list[int]:
        """Take offline the users whose every connection expired; returns them."""
        conn = shared_redis.client()
        now = time.time()
        stale = await conn.zrangebyscore(_users_key(), "-inf", now)
        gone = []
        for raw in stale:
            user_id = int(raw)
            if await _eval(_SWEEP_USER, 2, _conns_key(user_id), _users_key(), now, user_id):
                gone.append(user_id)
        return gone


async def _eval(script: str, numkeys: int, *args: Any) -> Any:
    # redis-py types eval for both its sync and async clients; this one is async.
    return await cast(Awaitable[Any], shared_redis.client().eval(script, numkeys, *args))


def backend() -> _LocalPresence | _RedisPresence:
    return _redis_presence if shared_redis.enabled() else _local_presence


_local_presence = _LocalPresence()
_redis_presence = _RedisPresence()


def watch(hub: Hub) -> None:
    """Keep this worker's connections alive in presence, and take dead workers' users offline,
    for as long as the worker's hub runs."""
    hub.run_alongside("hub-presence", lambda: _heartbeat(hub))


async def _heartbeat(hub: Hub) -> None:
    interval = settings.CHAT["PRESENCE_HEARTBEAT_SECONDS"]
    while True:
        await asyncio.sleep(interval)
        presence = backend()
        try:
            await presence.heartbeat([(c.user_id, c.conn_id) for c in hub.connections()])
            for user_id in await presence.sweep():
                await database_sync_to_async(services.announce_presence)(
                    user_id=user_id, event="offline"
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("presence heartbeat failed", exc_info=True)
