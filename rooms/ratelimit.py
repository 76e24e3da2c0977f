"""Per-user message rate limit (token bucket), shared by all tabs and workers via Redis."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, cast

from django.conf import settings

from . import redis as shared_redis

# KEYS: bucket. ARGV: rate per second, burst, now. Returns 1 if allowed.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return allowed
"""

_local: dict[int, tuple[float, float]] = {}


async def allow(user_id: int) -> bool:
    """Take one token from the user's bucket; False when the user must slow down."""
    rate = settings.CHAT["RATE_PER_SECOND"]
    burst = settings.CHAT["RATE_BURST"]
    now = time.time()
    if shared_redis.enabled():
        key = f"{settings.REDIS_KEY_PREFIX}:rate:{user_id}"
        result = shared_redis.client().eval(_TAKE, 1, key, rate, burst, now)
        return bool(await cast(Awaitable[Any], result))
    tokens, ts = _local.get(user_id, (float(burst), now))
    tokens = min(burst, tokens + max(0.0, now - ts) * rate)
    if tokens < 1:
        _local[user_id] = (tokens, now)
        return False
    _local[user_id] = (tokens - 1, now)
    return True
