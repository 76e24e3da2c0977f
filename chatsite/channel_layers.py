"""The channel layer classes settings.CHANNEL_LAYER_BACKENDS names that are not channels-redis's
own."""

from __future__ import annotations

from channels_redis.core import RedisChannelLayer


class ShardedRedisChannelLayer(RedisChannelLayer):
    """channels-redis's `core` layer, sending a process's channels to the server it reads them on.

    With several hosts, channels-redis 4.3.0 `send` places a process channel
    (`specific.<client>!<id>`) by hashing its full name, while `receive` reads on the server of
    its non-local part (`specific.<client>!`): about half of the direct sends (the /healthz round
    trip, a hub's own channel) land where no one reads them and expire (channels-redis#221).
    `group_send` already hashes the non-local part; so does `send` here. One host: no change.
    """

    def consistent_hash(self, value: str | bytes) -> int:
        # Group names cannot contain "!": only a process channel is re-placed.
        if isinstance(value, str) and "!" in value:
            value = self.non_local_name(value)
        return int(super().consistent_hash(value))
