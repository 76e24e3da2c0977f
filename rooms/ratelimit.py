"""Per-user budgets (token buckets) and the typing throttle, shared by all tabs and workers.

In Redis when the site has it (rooms/redis.py), in process otherwise. While Redis is away every
worker falls back to its own in-process buckets: limits then hold per worker instead of across
them, but they hold (a Redis outage must neither stop the chat nor lift its limits).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Budget:
    """A per-user token bucket: `rate` per second sustained, `burst` at once."""

    name: str
    rate: float
    burst: float


def actions() -> Budget:
    """What the contract's `rate_limited` answers: every frame that writes or fans out."""
    return Budget("rate", settings.CHAT["RATE_PER_SECOND"], settings.CHAT["RATE_BURST"])


def queries() -> Budget:
    """`history` and `read`: database reads and writes that fan out to no one else."""
    return Budget("queries", settings.CHAT["QUERIES_PER_SECOND"], settings.CHAT["QUERIES_BURST"])


async def allow(user_id: int, budget: Budget | None = None) -> bool:
    """Take one token from the user's bucket; False when the user must slow down."""
    budget = budget or actions()
    now = time.time()
    if shared_redis.usable():
        key = f"{settings.REDIS_KEY_PREFIX}:{budget.name}:{user_id}"
        try:
            result = shared_redis.client().eval(_TAKE, 1, key, budget.rate, budget.burst, now)
            return bool(await cast(Awaitable[Any], result))
        except Exception:
            shared_redis.failed("rate limits")
    return _take_local((budget.name, user_id), budget, now)


async def wait_for(user_id: int, budget: Budget) -> None:
    """Take one token, waiting for it if the bucket is empty: a client asking faster waits
    its turn (and holds nothing but its own request meanwhile) instead of being refused.

    Of a user's requests waiting on one worker, only the first asks the bucket again; the rest
    wait in line behind it. However many a user has waiting (sockets, HTTP requests), the
    worker then asks Redis at most `rate` times a second for them.
    """
    if await allow(user_id, budget):
        return
    key = (budget.name, user_id)
    line = _lines.get(key)
    if line is None:
        line = _lines[key] = _Line()
    line.waiting += 1
    try:
        async with line.turn:
            while True:
                if await allow(user_id, budget):
                    return
                await asyncio.sleep(1 / budget.rate)
    finally:
        line.waiting -= 1
        if not line.waiting:
            del _lines[key]


class _Line:
    """The requests of one user waiting for one budget on this worker."""

    __slots__ = ("turn", "waiting")

    def __init__(self) -> None:
        self.turn = asyncio.Lock()
        self.waiting = 0


_lines: dict[tuple[str, int], _Line] = {}


async def first_typing(user_id: int, room_id: int) -> bool:
    """Whether a `typing` of this user in this room is the first within the interval (relay
    it) or a repeat (drop it)."""
    interval = settings.CHAT["TYPING_INTERVAL_SECONDS"]
    if shared_redis.usable():
        key = f"{settings.REDIS_KEY_PREFIX}:typing:{user_id}:{room_id}"
        try:
            return bool(await shared_redis.client().set(key, 1, nx=True, px=int(interval * 1000)))
        except Exception:
            shared_redis.failed("typing throttle")
    return _first_local((user_id, room_id), interval, time.monotonic())


# --- in process ----------------------------------------------------------------------------------

_buckets: dict[tuple[str, int], tuple[float, float]] = {}
_typing: dict[tuple[int, int], float] = {}
# Past this many entries, entries that no longer matter are dropped (one user could otherwise
# grow `_typing` by one entry per room and two seconds).
_PRUNE_AT = 10_000
_FULL_AFTER_SECONDS = 600


def _take_local(key: tuple[str, int], budget: Budget, now: float) -> bool:
    if len(_buckets) > _PRUNE_AT:
        # Untouched this long, a bucket is full again (whatever its budget): forget it.
        for stale in [k for k, (_, ts) in _buckets.items() if now - ts > _FULL_AFTER_SECONDS]:
            del _buckets[stale]
    tokens, ts = _buckets.get(key, (float(budget.burst), now))
    tokens = min(budget.burst, tokens + max(0.0, now - ts) * budget.rate)
    if tokens < 1:
        _buckets[key] = (tokens, now)
        return False
    _buckets[key] = (tokens - 1, now)
    return True


def _first_local(key: tuple[int, int], interval: float, now: float) -> bool:
    if len(_typing) > _PRUNE_AT:
        for stale in [k for k, until in _typing.items() if until <= now]:
            del _typing[stale]
    if _typing.get(key, 0.0) > now:
        return False
    _typing[key] = now + interval
    return True


def reset_local() -> None:
    """Forget every in-process bucket (tests)."""
    _buckets.clear()
    _typing.clear()
