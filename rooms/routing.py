"""Which channel-layer group carries an event, and which groups every worker's hub beats into.

With `CHAT["ROUTING"] = "rooms"` (the default) a room's events go to the room's group and a
user's own events (`room_added`, `left`, `unread`, closes) to the user's group; a worker's hub
is a member of a room's group only while it has a connection in the room, and of a user's
group only while it has a connection of the user. With `"broadcast"` every event goes to the
site's group, of which every hub is a member.

The site's group also carries each hub's beat (rooms/fanout.py). With several Redis servers
channels-redis places each group on one of them (consistent hashing), so a hub beats into one
group per server: a hub whose subscriptions lapsed on any one server notices.
"""

from __future__ import annotations

import asyncio
from typing import Any

import channels_redis
import redis.asyncio as aioredis
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import _consistent_hash, create_pool
from django.conf import settings

SITE_GROUP = "chat.site"
ROOM_PREFIX = "chat.room."
USER_PREFIX = "chat.user."
# Where the pub/sub layer's shard of a group cannot be read (another channels-redis than the
# one pinned), beat into this many groups: with two or three servers every one almost surely
# holds some.
UNKNOWN_SHARDS_BEAT_GROUPS = 16
# The pub/sub layer's placement is read through private names of this release (pinned in
# requirements.txt); another release gets the fallbacks above and in GroupSender.
PUBSUB_PLACEMENT_TESTED = ("4.3.0",)
# How long one batch of group messages may take to reach Redis (a paused Redis holds it).
SEND_SECONDS = 5.0


def routed(layer: Any = None) -> bool:
    """Whether events go to room and user groups (else all to the site's group). The in-process
    layer serves one worker, which needs every event: it gets no groups per room."""
    return settings.CHAT_ROUTING == "rooms" and not isinstance(layer, InMemoryChannelLayer)


def room_group(room_id: int) -> str:
    return f"{ROOM_PREFIX}{room_id}"


def user_group(user_id: int) -> str:
    return f"{USER_PREFIX}{user_id}"


def group_of(item: dict[str, Any], by_room: bool) -> str | None:
    """The group an item travels in (None: it concerns no one)."""
    if not by_room:
        return SITE_GROUP
    room_id = item.get("room")
    if room_id is not None:
        return room_group(room_id)
    user_id = item.get("user")
    if user_id is not None:
        return user_group(user_id)
    return None


def parse(group: str) -> tuple[str, int] | None:
    """("room", pk) or ("user", pk) for a room's or a user's group, else None."""
    for kind, prefix in (("room", ROOM_PREFIX), ("user", USER_PREFIX)):
        if group.startswith(prefix):
            try:
                return kind, int(group[len(prefix) :])
            except ValueError:
                return None
    return None


def beat_groups(layer: Any) -> list[str]:
    """The site's group first, then one more group on each other Redis server of the layer."""
    placement = _placement(layer)
    if placement is None:
        return [SITE_GROUP] + [f"{SITE_GROUP}.{i}" for i in range(1, UNKNOWN_SHARDS_BEAT_GROUPS)]
    servers, shard_of = placement
    chosen = {shard_of(SITE_GROUP): SITE_GROUP}
    i = 1
    while len(chosen) < servers and i < 100 * servers:
        name = f"{SITE_GROUP}.{i}"
        chosen.setdefault(shard_of(name), name)
        i += 1
    return list(chosen.values())


def _placement(layer: Any) -> tuple[int, Any] | None:
    """How many Redis servers the layer shards over, and which one a group lives on."""
    if isinstance(layer, RedisChannelLayer):
        return layer.ring_size, layer.consistent_hash
    if isinstance(layer, RedisPubSubChannelLayer):
        if channels_redis.__version__ not in PUBSUB_PLACEMENT_TESTED:
            return None
        # channels-redis 4.3.0: the loop layer's `_shards`, and a group's pub/sub channel named
        # `<prefix>__group__<group>`, hashed over them.
        loop_layer = layer._get_layer()
        servers = len(loop_layer._shards)
        return servers, lambda group: _consistent_hash(
            loop_layer._get_group_channel_name(group), servers
        )
    return 1, lambda group: 0  # the in-process layer: one "server"


class GroupSender:
    """Sends a batch of messages, each to its group, in order per group.

    On the pub/sub layer of the tested release, one pipelined round trip per Redis server (a
    `PUBLISH` per message, on connections of its own): routed events make a message per room,
    and one round trip each would hold the hub's send loop for as many. Otherwise (another
    release, the core layer, the in-process one), one `group_send` after another.
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.servers: list[aioredis.Redis] = []
        self.loop_layer: Any = None
        if (
            isinstance(layer, RedisPubSubChannelLayer)
            and channels_redis.__version__ in PUBSUB_PLACEMENT_TESTED
        ):
            # channels-redis 4.3.0: the loop layer's `_shards`, each with the `host` it connects
            # to, and `_get_group_channel_name`, the channel a group's subscribers listen on.
            self.loop_layer = layer._get_layer()
            self.servers = [
                aioredis.Redis(connection_pool=create_pool(shard.host))
                for shard in self.loop_layer._shards
            ]

    async def send(self, messages: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """Send each message to its group; the groups whose message may not have gone."""
        if not self.servers:
            failed = []
            for group, message in messages:
                try:
                    await asyncio.wait_for(self.layer.group_send(group, message), SEND_SECONDS)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    failed.append(group)
            return failed
        by_server: dict[int, list[tuple[str, str, bytes]]] = {}
        count = len(self.servers)
        for group, message in messages:
            channel = self.loop_layer._get_group_channel_name(group)
            by_server.setdefault(_consistent_hash(channel, count), []).append(
                (group, channel, self.layer.serialize(message))
            )
        failed = []
        for index, publishes in by_server.items():
            server = self.servers[index]
            try:
                if len(publishes) == 1:
                    # Most batches until the load builds up: a plain PUBLISH costs less.
                    _, channel, data = publishes[0]
                    await asyncio.wait_for(server.publish(channel, data), SEND_SECONDS)
                else:
                    pipe = server.pipeline(transaction=False)
                    for _, channel, data in publishes:
                        pipe.publish(channel, data)
                    await asyncio.wait_for(pipe.execute(), SEND_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                failed.extend(group for group, _, _ in publishes)
        return failed

    async def close(self) -> None:
        for server in self.servers:
            await server.aclose()
