"""daphne's per-socket queue, trimmed by chatsite/server/lean_sockets.py, still delivers every
frame in order to a consumer that waits for it (the real server is exercised by the whole suite)."""

from __future__ import annotations

import asyncio

from chatsite.server.lean_sockets import trim_queue


async def test_a_trimmed_queue_hands_every_message_over_in_order():
    queues = [asyncio.Queue() for _ in range(2)]  # two sockets share the trimmed parts
    for queue in queues:
        trim_queue(queue.get)
    waiting = [asyncio.create_task(queue.get()) for queue in queues]
    await asyncio.sleep(0)
    for n, queue in enumerate(queues):
        queue.put_nowait({"type": "websocket.connect", "n": n})
    assert [await task for task in waiting] == [
        {"type": "websocket.connect", "n": 0},
        {"type": "websocket.connect", "n": 1},
    ]
    for n in range(5):
        queues[0].put_nowait(n)
    assert [await queues[0].get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert queues[1].empty()


async def test_a_bounded_queue_is_left_alone_and_its_putters_still_wait():
    bounded = asyncio.Queue(maxsize=1)
    trim_queue(bounded.get)
    trim_queue(lambda: None)  # not a queue's get: ignored
    bounded.put_nowait(1)
    second = asyncio.create_task(bounded.put(2))
    await asyncio.sleep(0)
    assert not second.done()  # waits for room
    assert await bounded.get() == 1
    await asyncio.wait_for(second, 1)
    assert await bounded.get() == 2
