"""Routing and loss detection on a real Redis: each worker hears only the rooms and users it has
sockets of, and a worker that missed events of a room asks that room's sockets to resync.

Two hubs, each with its own layer (pub/sub, the default, and the core layer), stand for two
workers. A hub that leaves a group for a moment misses what the other sends there, as it does
when Redis drops or restarts a pub/sub subscription (the layer reconnects without telling
anyone) or empties the core layer's groups (stack fact 3).
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
from prometheus_client import REGISTRY

from rooms import fanout, routing
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
    settings.CHAT = {**settings.CHAT, "HUB_BEAT_SECONDS": 0.2, "HUB_LEAVE_AFTER_SECONDS": 0.5}
    return 0.2


async def start_hubs(layer_class: Any, redis_url: str, count: int = 2) -> list[fanout.Hub]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    hubs = []
    for _ in range(count):
        hosts = [{"address": redis_url, "socket_timeout": None}]
        hub = fanout.Hub(asyncio.get_running_loop(), layer_class(hosts=hosts, prefix=prefix))
        hub.start()
        hubs.append(hub)
    for hub in hubs:
        assert await hub.wait_ready()
    return hubs


async def stop_hubs(hubs: list[fanout.Hub]) -> None:
    for hub in hubs:
        await hub.stop()
        with contextlib.suppress(Exception):
            await hub.layer.flush()


@pytest.fixture(params=[RedisPubSubChannelLayer, RedisChannelLayer], ids=["pubsub", "core"])
async def workers(
    request: pytest.FixtureRequest, redis_url: str, beat: float
) -> AsyncIterator[list[fanout.Hub]]:
    hubs = await start_hubs(request.param, redis_url)
    yield hubs
    await stop_hubs(hubs)


async def subscribed(hub: fanout.Hub, room: int, user: int | None = None) -> Socket:
    socket = Socket(user_id=room * 10 if user is None else user)
    await hub.hold(socket)
    await hub.enter(socket, [room])
    await hub.release(socket)
    return socket


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polling what a hub does meanwhile
            await asyncio.sleep(0.02)


def events_received() -> float:
    return REGISTRY.get_sample_value("chat_layer_events_received_total") or 0.0


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


async def test_a_worker_hears_only_the_rooms_and_users_it_has_sockets_of(workers):
    sender, receiver = workers
    await subscribed(sender, 1)
    there = await subscribed(receiver, 2)
    before = events_received()
    for n in range(10):
        sender.outbox.put_nowait([{"room": 1, "frame": f'{{"n":{n}}}'}])
        sender.outbox.put_nowait([{"user": 10, "frame": f'{{"mine":{n}}}'}])
    await until(lambda: events_received() - before >= 20)  # the sender's own sockets
    sender.outbox.put_nowait([{"room": 2, "frame": '{"two":1}'}])
    await until(lambda: there.frames == ['{"two":1}'])
    # The 20 events of room 1 and user 10 were received by the sender's hub alone; the
    # receiver's hub got the one event of its room.
    assert events_received() - before == 21
    assert routing.room_group(1) not in receiver.groups
    assert routing.room_group(2) in receiver.groups


async def test_a_worker_leaves_a_room_a_while_after_its_last_socket_there(workers, beat):
    sender, receiver = workers
    there = await subscribed(receiver, 3)
    assert routing.room_group(3) in receiver.groups
    receiver.unregister(there)
    await until(lambda: routing.room_group(3) not in receiver.groups)
    before = events_received()
    sender.outbox.put_nowait([{"room": 3, "frame": '{"late":1}'}])
    await asyncio.sleep(0.5)
    assert events_received() == before  # nobody is in room 3 any more


async def test_a_room_added_is_written_once_the_worker_hears_the_room(workers):
    sender, receiver = workers
    alice = await subscribed(receiver, 4, user=77)
    assert routing.room_group(5) not in receiver.groups
    # A new room for the user, and at once a message in it from another worker.
    sender.outbox.put_nowait([{"user": 77, "subscribe": 5, "frame": '{"added":5}'}])
    await until(lambda: alice.frames == ['{"added":5}'])
    sender.outbox.put_nowait([{"room": 5, "frame": '{"in":5}'}])
    await until(lambda: alice.frames == ['{"added":5}', '{"in":5}'])


async def test_a_worker_that_missed_a_rooms_events_resyncs_that_rooms_sockets(workers):
    sender, receiver = workers
    there = await subscribed(receiver, 1)
    elsewhere = await subscribed(receiver, 2)
    sender.outbox.put_nowait([{"room": 1, "frame": '{"n":1}'}])
    await until(lambda: there.frames == ['{"n":1}'])
    # The receiver's subscription lapses; what is sent meanwhile never reaches it.
    group = routing.room_group(1)
    await receiver.layer.group_discard(group, receiver.channel)
    sender.outbox.put_nowait([{"room": 1, "frame": '{"n":2}'}])
    await asyncio.sleep(0.1)
    await receiver.layer.group_add(group, receiver.channel)
    # The room's next event shows the gap.
    sender.outbox.put_nowait([{"room": 1, "frame": '{"n":3}'}])
    assert await asyncio.wait_for(there.closed, 5) == CLOSE_SHUTDOWN
    assert '{"n":2}' not in there.frames  # the client gets it when it resumes by seq
    # Only that room's sockets: the other room saw no gap.
    await asyncio.sleep(0.5)
    assert not elsewhere.closed.done()


async def test_a_worker_that_stops_hearing_the_layer_resyncs_and_rejoins(workers, beat):
    sender, receiver = workers
    there = await subscribed(receiver, 1)
    for group in receiver.beat_groups:
        await receiver.layer.group_discard(group, receiver.channel)
    # Nobody sends anything: only the receiver's own beats not coming back tell it.
    assert await asyncio.wait_for(there.closed, 10 * beat + 5) == CLOSE_SHUTDOWN
    # It joined the groups again: events reach its sockets once more.
    later = await subscribed(receiver, 2)
    await until(lambda: not receiver.deaf)
    sender.outbox.put_nowait([{"room": 2, "frame": '{"after":1}'}])
    await until(lambda: later.frames == ['{"after":1}'])


async def test_an_event_that_failed_to_send_makes_the_rooms_sockets_resync(workers, monkeypatch):
    sender, receiver = workers
    here, there = await subscribed(sender, 1), await subscribed(receiver, 1)
    sender.outbox.put_nowait([{"room": 1, "frame": '{"first":1}'}])
    await until(lambda: len(there.frames) == 1 and len(here.frames) == 1)
    real_send = sender.sender.send
    calls = 0

    async def fails_once(messages: list[tuple[str, dict[str, Any]]]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return [group for group, _ in messages]  # Redis went away: nothing went
        return await real_send(messages)

    monkeypatch.setattr(sender.sender, "send", fails_once)
    sender.outbox.put_nowait([{"room": 1, "frame": '{"lost":1}'}])
    # Its own sockets and the other worker's learn of the loss from the beat that follows.
    assert await asyncio.wait_for(here.closed, 5) == CLOSE_SHUTDOWN
    assert await asyncio.wait_for(there.closed, 5) == CLOSE_SHUTDOWN
    assert here.frames == ['{"first":1}'] and there.frames == ['{"first":1}']


async def test_broadcast_routing_reaches_every_worker(redis_url, beat, settings):
    settings.CHAT_ROUTING = "broadcast"
    hubs = await start_hubs(RedisPubSubChannelLayer, redis_url)
    try:
        sender, receiver = hubs
        await subscribed(receiver, 2)
        before = events_received()
        sender.outbox.put_nowait([{"room": 1, "frame": '{"n":1}'}])
        # Nobody is in room 1, yet both hubs receive its event.
        await until(lambda: events_received() - before == 2)
        assert receiver.groups == set()
    finally:
        await stop_hubs(hubs)


async def test_what_a_room_said_before_its_group_was_joined_is_caught_up_once(workers):
    sender, receiver = workers
    alice = await subscribed(receiver, 6, user=78)
    stored = [(1, '{"seq":1}'), (2, '{"seq":2}')]

    async def read_missed(room_id: int, after: int) -> list[tuple[int, str]]:
        return [(seq, frame) for seq, frame in stored if room_id == 7 and seq > after]

    previous = fanout.read_missed_with(read_missed)
    try:
        # A new room for the user, its first message sent before the receiver is in the
        # room's group (so the layer drops it there), the second after.
        sender.outbox.put_nowait(
            [
                {"user": 78, "subscribe": 7, "seq": 0, "frame": '{"added":7}'},
                {"room": 7, "seq": 1, "frame": '{"seq":1}'},
            ]
        )
        await until(lambda: len(alice.frames) >= 3)
        sender.outbox.put_nowait([{"room": 7, "seq": 2, "frame": '{"seq":2}'}])
        sender.outbox.put_nowait([{"room": 7, "seq": 3, "frame": '{"seq":3}'}])
        await until(lambda: '{"seq":3}' in alice.frames)
        # Both stored messages once each, after `room_added`; the live copy of the second
        # (caught up already) is not written again.
        assert alice.frames == ['{"added":7}', '{"seq":1}', '{"seq":2}', '{"seq":3}']
    finally:
        fanout.read_missed_with(previous)
