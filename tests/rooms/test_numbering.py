"""Broadcast numbering on a real Redis: a worker that missed events asks its sockets to resync.

Two hubs, each with its own layer (pub/sub, the default, and the core layer), stand for two
workers. A hub that leaves the group for a moment misses what the other sends, as it does when
Redis drops or restarts a pub/sub subscription (the layer reconnects without telling anyone) or
empties the core layer's groups (stack fact 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from rooms import fanout
from rooms.protocol import CLOSE_SHUTDOWN

pytestmark = pytest.mark.redis


class Socket:
    """What the hub sees of one local WebSocket: the frames written to it, and its close."""

    def __init__(self, user_id: int) -> None:
        self.conn_id = uuid.uuid4().hex
        self.user_id = user_id
        self.session_key = None
        self.frames: list[str] = []
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def write(self, frame: str) -> None:
        self.frames.append(frame)

    def push(self, frame: Any) -> bool:
        return False  # not a daphne socket: the hub writes the text instead

    async def close_with(self, code: int) -> None:
        if not self.closed.done():
            self.closed.set_result(code)


@pytest.fixture
def beat(settings: Any) -> float:
    settings.CHAT = {**settings.CHAT, "HUB_BEAT_SECONDS": 0.2}
    return 0.2


@pytest.fixture(params=[RedisPubSubChannelLayer, RedisChannelLayer], ids=["pubsub", "core"])
async def workers(
    request: pytest.FixtureRequest, redis_url: str, beat: float
) -> AsyncIterator[list[fanout.Hub]]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    hubs = []
    for _ in range(2):
        hosts = [{"address": redis_url, "socket_timeout": None}]
        layer = request.param(hosts=hosts, prefix=prefix)
        hub = fanout.Hub(asyncio.get_running_loop(), layer)
        hub.start()
        hubs.append(hub)
    for hub in hubs:
        assert await hub.wait_ready()
    yield hubs
    for hub in hubs:
        await hub.stop()
        with contextlib.suppress(Exception):
            await hub.layer.flush()


async def subscribed(hub: fanout.Hub, room: int) -> Socket:
    socket = Socket(user_id=room * 10)
    hub.hold(socket)
    await hub.release(socket, [room])
    return socket


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polling what a hub does meanwhile
            await asyncio.sleep(0.02)


async def test_every_worker_delivers_in_order_and_nobody_resyncs(workers):
    sender, receiver = workers
    here, there = await subscribed(sender, 1), await subscribed(receiver, 1)
    for n in range(20):
        sender.outbox.put_nowait([{"room": 1, "frame": f'{{"n":{n}}}'}])
    expected = [f'{{"n":{n}}}' for n in range(20)]
    await until(lambda: len(there.frames) == 20 and len(here.frames) == 20)
    assert there.frames == expected and here.frames == expected
    await asyncio.sleep(1.0)  # several beats pass: saying how far one got is no gap
    assert not there.closed.done() and not here.closed.done()


async def test_a_worker_that_missed_a_broadcast_asks_its_sockets_to_resync(workers):
    sender, receiver = workers
    there = await subscribed(receiver, 1)
    sender.outbox.put_nowait([{"room": 1, "frame": '{"n":1}'}])
    await until(lambda: there.frames == ['{"n":1}'])
    # The receiver's subscription lapses; what is sent meanwhile never reaches it.
    await receiver.layer.group_discard(fanout.BROADCAST_GROUP, receiver.channel)
    sender.outbox.put_nowait([{"room": 1, "frame": '{"n":2}'}])
    await asyncio.sleep(0.1)
    await receiver.layer.group_add(fanout.BROADCAST_GROUP, receiver.channel)
    # The next number it hears (a beat, or the next broadcast) shows the gap.
    assert await asyncio.wait_for(there.closed, 5) == CLOSE_SHUTDOWN
    assert there.frames == ['{"n":1}']


async def test_a_worker_that_stops_hearing_the_broadcast_resyncs_and_rejoins(workers, beat):
    sender, receiver = workers
    there = await subscribed(receiver, 1)
    await receiver.layer.group_discard(fanout.BROADCAST_GROUP, receiver.channel)
    # Nobody sends anything: only the receiver's own beats not coming back tell it.
    assert await asyncio.wait_for(there.closed, 10 * beat + 5) == CLOSE_SHUTDOWN
    # It joined the group again: broadcasts reach its sockets once more.
    later = await subscribed(receiver, 2)
    await until(lambda: not receiver.deaf)
    sender.outbox.put_nowait([{"room": 2, "frame": '{"after":1}'}])
    await until(lambda: later.frames == ['{"after":1}'])


async def test_a_broadcast_that_failed_to_send_makes_every_worker_resync(workers, monkeypatch):
    sender, receiver = workers
    here, there = await subscribed(sender, 1), await subscribed(receiver, 1)
    await until(lambda: sender.origin in receiver.heard)  # a beat introduced them
    real_group_send = sender.layer.group_send
    calls = 0

    async def fails_once(group: str, message: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("Redis went away")
        await real_group_send(group, message)

    monkeypatch.setattr(sender.layer, "group_send", fails_once)
    sender.outbox.put_nowait([{"room": 1, "frame": '{"lost":1}'}])
    # Its own sockets and the other worker's learn of the loss from the numbers that follow.
    assert await asyncio.wait_for(here.closed, 5) == CLOSE_SHUTDOWN
    assert await asyncio.wait_for(there.closed, 5) == CLOSE_SHUTDOWN
    assert here.frames == [] and there.frames == []
