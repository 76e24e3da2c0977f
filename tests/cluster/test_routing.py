"""Routing on real workers: a worker with no socket in a room receives none of its events."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request

import pytest

from .client import ChatClient
from .traffic import assert_nothing_lost, chatter

pytestmark = pytest.mark.nginx


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"no {name} at {base}"
    return float(found.group(1))


async def until_idle(base: str, seconds: float = 30) -> None:
    """Until the worker has left every room and user group (earlier tests' sockets went)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while metric(base, "chat_layer_groups") > 0:
        assert asyncio.get_running_loop().time() < deadline, f"{base} never left its groups"
        await asyncio.sleep(0.5)


async def test_workers_without_sockets_stay_idle_while_one_works(live_cluster):
    busy, *idle = (
        f"http://127.0.0.1:{live_cluster.config.worker_port(index)}" for index in (1, 2, 3)
    )
    for base in idle:
        await until_idle(base)
    before = {base: metric(base, "chat_layer_events_received_total") for base in idle}
    busy_before = metric(busy, "chat_layer_events_received_total")

    # Every socket on the busy worker: four users, two rooms, typing, edits, a direct message.
    tag = f"{asyncio.get_running_loop().time():.0f}"
    people = [ChatClient(busy, f"{name}-{tag}", reconnect=False) for name in "abcd"]
    try:
        for person in people:
            await asyncio.to_thread(person.signup)
        await asyncio.to_thread(people[0].create_room, f"one-{tag}")
        await asyncio.to_thread(people[2].create_room, f"two-{tag}")
        for person in people:
            await person.start()
        await people[1].join(f"one-{tag}")
        await people[3].join(f"two-{tag}")
        for person, room in zip(people, [f"one-{tag}"] * 2 + [f"two-{tag}"] * 2, strict=True):
            await chatter(person, room, count=10, interval=0.01)
            await person.ws.send(json.dumps({"type": "typing", "room": room}))
        await people[0].call({"type": "direct", "to": people[3].username, "body": "hi"})
        for room, pair in ((f"one-{tag}", people[:2]), (f"two-{tag}", people[2:])):
            for person in pair:
                await person.wait_for(lambda p=person, r=room: len(p.view[r]) == 20, what="20")
            await assert_nothing_lost(pair, room)
    finally:
        await asyncio.gather(*(person.close() for person in people))

    assert metric(busy, "chat_layer_events_received_total") - busy_before >= 40
    for base in idle:
        received = metric(base, "chat_layer_events_received_total") - before[base]
        assert received == 0, f"{base} received {received} events of rooms it has no socket in"
