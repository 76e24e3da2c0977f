"""Several Redis servers (REDIS_URL lists them): the channel layer shards rooms over them, and
presence, rate limits and the cache stay on the first.

Two redis-servers of the test's own, two daphne workers reached directly (no nginx) on a
database of the module's own, and people on both workers in rooms whose groups land on either
server: every message reaches the other worker live.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import pytest
from channels_redis.utils import _consistent_hash
from django.conf import settings
from django.utils.module_loading import import_string

from tests.redis_servers import PrivateRedis, running

from .client import ChatClient
from .conftest import site_workers, wait_healthy
from .traffic import assert_nothing_lost

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

PREFIX = "chatsite-db0"  # the default, from the first server's database number
PEOPLE = 4  # on worker 1, 2, 1, 2
MIN_ROOMS = 4
# Neighbouring room ids often hash to the same server (docs/scaling.md): a dozen may share one.
MAX_ROOMS = 30


def shard_of(kind: str, group: str) -> int:
    """The server (its place in REDIS_URL) that channels-redis puts a group on."""
    hashed = f"{PREFIX}__group__{group}" if kind == "pubsub" else group
    return _consistent_hash(hashed, 2)


def room_group(database_url: str, slug: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT id FROM rooms_room WHERE slug = %s", (slug,)).fetchone()
    assert row is not None, slug
    return f"chat.room.{row[0]}"


def layer_groups(server: PrivateRedis, kind: str) -> set[str]:
    """The site's groups this server holds: subscribed pub/sub channels, or group keys."""
    with server.client() as client:
        if kind == "pubsub":
            marker = f"{PREFIX}__group__"
            names = client.pubsub_channels(f"{marker}*")
        else:
            marker = f"{PREFIX}:group:"
            names = list(client.scan_iter(f"{marker}*"))
    return {name.decode().removeprefix(marker) for name in names}


def keys(server: PrivateRedis) -> list[str]:
    with server.client() as client:
        return [key.decode() for key in client.scan_iter("*")]


@pytest.mark.parametrize("kind", ["pubsub", "core"])
async def test_rooms_on_either_redis_server_reach_every_worker(kind, own_database, tmp_path):
    started = time.monotonic()
    servers = [PrivateRedis(tmp_path / "redis1"), PrivateRedis(tmp_path / "redis2")]
    env = {
        "DATABASE_URL": own_database,
        "REDIS_URL": ",".join(server.url for server in servers),
        "REDIS_SENTINELS": "",
        "REDIS_SENTINEL_MASTER": "",
        "CHATSITE_CHANNEL_LAYER": kind,
        "CHATSITE_LAYER_PREFIX": "",
    }
    with running(*servers), site_workers(env, tmp_path) as urls:
        tag = uuid.uuid4().hex[:6]
        people = [ChatClient(urls[n % 2], f"p{n}-{tag}") for n in range(PEOPLE)]
        await asyncio.gather(*(asyncio.to_thread(p.signup) for p in people))

        # Rooms until their groups are on both servers (neighbouring ids often share one).
        rooms: dict[str, str] = {}  # slug -> group
        while len(rooms) < MIN_ROOMS or len({shard_of(kind, g) for g in rooms.values()}) < 2:
            assert len(rooms) < MAX_ROOMS, f"{MAX_ROOMS} rooms, all on one server: {rooms}"
            slug = f"shard{len(rooms)}-{tag}"
            await asyncio.to_thread(people[len(rooms) % PEOPLE].create_room, slug)
            rooms[slug] = await asyncio.to_thread(room_group, own_database, slug)

        try:
            for person in people:
                await person.start()
            for person in people:
                for slug in rooms:
                    if slug not in person.view:
                        await person.join(slug)
            for n, person in enumerate(people):
                for slug in rooms:
                    await person.send_message(
                        slug, f"hi from worker {n % 2 + 1}", f"{person.username}-{slug}"
                    )
            for person in people:
                await person.wait_for(
                    lambda p=person: all(len(p.view[slug]) == PEOPLE for slug in rooms),
                    timeout=15,
                    what="every message of every room",
                )
            # Live, not recovered: no socket was closed to resync.
            assert [p.close_codes for p in people] == [[]] * PEOPLE
            # /healthz's round trip goes through a fresh channel on either server: every time.
            for url in urls * 10:
                await asyncio.to_thread(wait_healthy, url, 0)

            # Each room's group is where channels-redis hashes it, and both servers hold some;
            # each server also holds one of the groups every hub beats into (rooms/routing.py).
            held = [layer_groups(server, kind) for server in servers]
            for index, groups in enumerate(held):
                assert {g for g in rooms.values() if shard_of(kind, g) == index} <= groups
                assert {g for g in groups if g.startswith("chat.room.")} <= set(rooms.values())
                assert any(g.startswith("chat.site") for g in groups), (index, groups)
            # Presence, rate limits and cached sessions are on the first server only.
            first, second = keys(servers[0]), keys(servers[1])
            assert any(key.startswith(f"{PREFIX}:presence:") for key in first), first
            assert any("sessions.cached_db" in key for key in first), first
            layer_keys = (f"{PREFIX}:group:", f"{PREFIX}specific.")
            assert [key for key in second if not key.startswith(layer_keys)] == []

            for slug in rooms:
                await assert_nothing_lost(people, slug)
        finally:
            await asyncio.gather(*(person.close() for person in people))
    print(f"{kind}: {len(rooms)} rooms on two servers, {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("kind", ["pubsub", "core"])
async def test_direct_sends_reach_a_channel_on_either_server(kind, tmp_path):
    """channels-redis#221: `core` once sent half of them to the server no one reads them on."""
    servers = [PrivateRedis(tmp_path / "redis1"), PrivateRedis(tmp_path / "redis2")]
    with running(*servers):
        layer = import_string(settings.CHANNEL_LAYER_BACKENDS[kind])(
            hosts=[{"address": server.url, "socket_timeout": None} for server in servers],
            prefix=f"test-{uuid.uuid4().hex[:8]}",
        )
        try:
            for n in range(20):
                channel = await layer.new_channel()
                await layer.send(channel, {"type": "test.ping", "n": n})
                message = await asyncio.wait_for(layer.receive(channel), 2)
                assert message == {"type": "test.ping", "n": n}
        finally:
            await layer.flush()
