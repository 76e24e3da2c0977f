"""Sites that share one Redis server with different database numbers never see each other's
events or keys (contract §2).

Redis pub/sub ignores the database number (stack fact 11): two sites whose layer prefix is the
same word share every pub/sub channel, and a room event of one reaches the sockets of the room
with the same primary key in the other. So the default prefix names the database number.
Here two real sites, set up alike so their users and rooms have the same primary keys, run on
the shared Redis in databases 14 and 15 with no CHATSITE_LAYER_PREFIX.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import redis

from tests.conftest import require_redis
from tests.servers import sqlite_worker
from tests.wsclient import Account, Frame, Socket

pytestmark = pytest.mark.redis

DATABASES = (14, 15)


def prefix_of(database: int) -> str:
    """The default prefix of a site on this Redis database (chatsite/settings.py)."""
    return f"chatsite-db{database}"


def database_url(database: int) -> str:
    shared = urlparse(require_redis())
    return f"redis://{shared.hostname or '127.0.0.1'}:{shared.port or 6379}/{database}"


def keys_like(database: int, pattern: str) -> list[bytes]:
    client = redis.Redis.from_url(database_url(database), socket_timeout=5)
    try:
        return list(client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def forget_keys(database: int, prefix: str) -> None:
    """SCAN + DEL this prefix's keys (never FLUSHDB: other tests share the server)."""
    client = redis.Redis.from_url(database_url(database), socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@contextlib.contextmanager
def site(database: int) -> Iterator[str]:
    """One daphne worker on a fresh SQLite database and this Redis database; its base URL."""
    # The default prefix, whatever the caller's environment says.
    with sqlite_worker(REDIS_URL=database_url(database), CHATSITE_LAYER_PREFIX="") as worker:
        yield worker.base


class Site:
    """alice owns #lobby, bob has joined it: the same rows, so the same keys, on every site."""

    def __init__(self, base: str) -> None:
        self.alice = Account.sign_up(base, "alice")
        self.alice.create_room("Lobby", "lobby")
        self.bob = Account.sign_up(base, "bob")
        self.sockets: list[Socket] = []

    async def open(self) -> None:
        self.sockets = [await self.alice.open_socket(), await self.bob.open_socket()]
        joined = await self.sockets[1].request(type="join", room="lobby")
        assert joined["type"] == "joined", joined
        for sock in self.sockets:
            await sock.settle()

    async def close(self) -> None:
        for sock in self.sockets:
            await sock.close()


def bodies(frames: list[Frame]) -> list[str]:
    return [f["message"]["body"] for f in frames if f["type"] == "message"]


def test_a_message_of_one_site_never_reaches_another_on_the_same_redis():
    require_redis()
    try:
        with site(DATABASES[0]) as base_a, site(DATABASES[1]) as base_b:
            a, b = Site(base_a), Site(base_b)

            async def scenario() -> None:
                try:
                    await a.open()
                    await b.open()
                    for here, there, body in ((a, b, "only on A"), (b, a, "only on B")):
                        talker, listener = here.sockets
                        ack = await talker.request(type="send", room="lobby", body=body)
                        assert ack["type"] == "ack", ack
                        got = await listener.wait_for(lambda f: f["type"] == "message")
                        assert got["message"]["body"] == body
                        # Same room pk, same user pks: a leak would land in both sockets.
                        heard = await asyncio.gather(*(s.collect(1.5) for s in there.sockets))
                        assert [bodies(frames) for frames in heard] == [[], []]
                        assert bodies(await talker.settle()) == [body]  # its own, once
                    # Presence and the session cache keep their keys under the site's own
                    # prefix, in its own database, and none under the other's.
                    for mine, other in (DATABASES, DATABASES[::-1]):
                        assert keys_like(mine, f"{prefix_of(mine)}:presence:*"), mine
                        assert keys_like(mine, f"{prefix_of(mine)}:1:django.contrib.sessions*")
                        assert not keys_like(mine, f"{prefix_of(other)}:*"), mine
                finally:
                    await a.close()
                    await b.close()

            asyncio.run(scenario())
    finally:
        for database in DATABASES:
            for prefix in map(prefix_of, DATABASES):
                forget_keys(database, prefix)
