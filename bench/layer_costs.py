"""What one layer event costs a worker's CPU, measured apart from everything else.

    python -m bench.layer_costs            # REDIS_URL, or redis://127.0.0.1:6379/0

Two processes, each a real Hub (rooms/fanout.py) on the real pub/sub layer and a real Redis:
one publishes events (one room's message each; the send loop batches what queues up meanwhile
into one layer message), the other receives them, and each reads its own CPU time over the run.
In `broadcast` the publisher also receives its own events, as every worker does. The receiver
runs three ways: with no socket in the room (what `CHATSITE_ROUTING=broadcast` costs every
worker for every event of a room it has no one in), with one socket, and with ten (a socket
here takes the frame and drops it, so a delivery's cost in daphne is not in these figures: see
docs/performance.md).
docs/scaling.md builds its model of many workers on these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

EVENTS = 8_000
FRAME = json.dumps({"type": "message", "room": "lobby", "message": {"body": "x" * 60}})


def _setup(redis_url: str, routing: str, prefix: str) -> None:
    os.environ.setdefault("CHATSITE_DEV", "1")
    os.environ["REDIS_URL"] = redis_url
    os.environ["CHATSITE_LAYER_PREFIX"] = prefix
    os.environ["CHATSITE_ROUTING"] = routing
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()


class Socket:
    """A local connection that takes every frame and keeps nothing."""

    session_key = None

    def __init__(self, user_id: int) -> None:
        self.conn_id = uuid.uuid4().hex
        self.user_id = user_id

    def push(self, frame: Any) -> bool:
        return True

    async def write(self, frame: str) -> None:
        return None

    async def close_with(self, code: int) -> None:
        return None


async def _receive(sockets: int, events: int) -> dict[str, float]:
    from channels.layers import get_channel_layer
    from prometheus_client import REGISTRY

    from rooms import fanout

    hub = fanout.Hub(asyncio.get_running_loop(), get_channel_layer())
    hub.start()
    assert await hub.wait_ready()
    # Routed, the hub must be in the room's group: a socket there puts it in.
    member = Socket(user_id=1)
    await hub.hold(member)
    await hub.enter(member, [1])
    await hub.release(member)
    if not sockets:
        hub.unsubscribe(member, 1)  # left in the group for the next 10 s, with no one to write to
    for n in range(1, sockets):
        extra = Socket(user_id=100 + n)
        await hub.hold(extra)
        await hub.enter(extra, [1])
        await hub.release(extra)
    print("ready", flush=True)

    def counted() -> float:
        return REGISTRY.get_sample_value("chat_layer_events_received_total") or 0.0

    start_count = counted()
    while counted() == start_count:  # noqa: ASYNC110 - polling a counter the hub bumps
        await asyncio.sleep(0.001)
    cpu, wall, first = time.process_time(), time.monotonic(), counted()
    while counted() - start_count < events:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    received = counted() - first
    result = {
        "cpu_us_per_event": (time.process_time() - cpu) / received * 1e6,
        "events": received,
        "seconds": time.monotonic() - wall,
    }
    await hub.stop()
    return result


async def _publish(events: int, rate: float) -> dict[str, float]:
    from channels.layers import get_channel_layer

    from rooms import fanout

    hub = fanout.Hub(asyncio.get_running_loop(), get_channel_layer())
    hub.start()
    assert await hub.wait_ready()
    cpu, wall = time.process_time(), time.monotonic()
    for n in range(events):
        hub.enqueue([{"room": 1, "seq": n + 1, "frame": FRAME}])
        due = wall + (n + 1) / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    while not hub.outbox.empty():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    result = {"cpu_us_per_event": (time.process_time() - cpu) / events * 1e6}
    await hub.stop()
    return result


def _child(args: argparse.Namespace) -> None:
    _setup(args.redis_url, args.routing, args.prefix)
    if args.role == "receive":
        result = asyncio.run(_receive(args.sockets, args.events))
    else:
        result = asyncio.run(_publish(args.events, args.rate))
    print(json.dumps(result), flush=True)


def measure(redis_url: str, routing: str, sockets: int, events: int, rate: float) -> dict:
    """One run: a receiver with `sockets` sockets in the room, a publisher sending `events`."""
    prefix = f"bench-costs-{uuid.uuid4().hex[:8]}"
    base = [sys.executable, "-m", "bench.layer_costs", "--child", "--redis-url", redis_url]
    base += ["--prefix", prefix, "--routing", routing, "--events", str(events)]
    receiver = subprocess.Popen(
        [*base, "--role", "receive", "--sockets", str(sockets)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        published = subprocess.run(
            [*base, "--role", "publish", "--rate", str(rate)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        received, _ = receiver.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
    return {
        "routing": routing,
        "sockets": sockets,
        "publish": json.loads(published.stdout.strip().splitlines()[-1]),
        "receive": json.loads(received.strip().splitlines()[-1]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    )
    parser.add_argument("--events", type=int, default=EVENTS)
    # Events/s offered (default: 1,000, where each goes alone, then 4,000, where the send loop
    # batches two or three into one layer message); well below what either process can do.
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("receive", "publish"), help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--routing", default="rooms", help=argparse.SUPPRESS)
    parser.add_argument("--sockets", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    rates = [args.rate] if args.rate else [1_000.0, 4_000.0]
    for rate in rates:
        for routing, sockets in (("broadcast", 0), ("rooms", 1), ("rooms", 10)):
            run = measure(args.redis_url, routing, sockets, args.events, rate)
            print(
                f"{rate:,.0f} events/s, {routing:9} receiver with {sockets:2} socket(s) in the "
                f"room: {run['receive']['cpu_us_per_event']:.1f} µs CPU per event received; "
                f"publisher {run['publish']['cpu_us_per_event']:.1f} µs per event sent "
                f"({run['receive']['events']:.0f} events in {run['receive']['seconds']:.1f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
