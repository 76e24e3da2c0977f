"""Fan-out guard: a few hundred sockets on a real daphne worker, and not one delivery lost.

A regression in fan-out (the hub, the layer, the consumer's writes) shows up here as lost
deliveries long before anyone runs `make bench`. No timing assertions: a slow machine only
makes the test take longer. With REDIS_URL set the worker uses the Redis layer (under a prefix
of its own), otherwise the in-process one.
"""

from __future__ import annotations

import os

from bench.loadgen import LoadGenerator
from bench.server import Deployment
from bench.site import sign_up_owner_with_rooms

SOCKETS = 200
ROOMS = 4
OFFERED = 2000  # deliveries/s: 40 messages/s into rooms of 50
SECONDS = 3.0


async def test_no_delivery_is_lost_under_load() -> None:
    redis_url = os.environ.get("REDIS_URL") or None
    with Deployment(workers=1, redis_url=redis_url, name="guard") as site:
        slugs, _ = sign_up_owner_with_rooms(site.http_urls[0], ROOMS)
        keys = [key for _, key in site.seed_users("guard", SOCKETS)]
        rooms = [slugs[i * ROOMS // SOCKETS] for i in range(SOCKETS)]
        async with LoadGenerator(site.ws_urls, processes=0, server_pids=site.worker_pids) as load:
            connected = await load.connect(load.plan(keys, rooms, senders_per_room=5))
            assert connected.opened == SOCKETS, connected.failed
            joined = await load.join()
            assert joined["rooms"] == {slug: SOCKETS // ROOMS for slug in slugs}, joined

            step = await load.step("guard", OFFERED, duration=SECONDS, drain=30.0)

    assert step.sent == int(OFFERED / (SOCKETS // ROOMS) * SECONDS)
    assert step.acked == step.sent, step.errors
    assert not step.errors
    assert not step.closes
    assert step.expected == step.sent * (SOCKETS // ROOMS)
    assert step.delivered == step.expected, f"{step.lost} of {step.expected} deliveries lost"


def test_a_delivery_that_never_arrives_counts_as_lost() -> None:
    load = LoadGenerator(["ws://127.0.0.1:9/ws/chat/"], processes=0)
    load.room_sizes = {"lobby": 3}
    load.step_number = 1
    sent = {"b1.0.0.100": "lobby", "b1.0.1.200": "lobby"}
    arrived = {
        "counts": {"b1.0.0.100": 3, "b1.0.1.200": 2},
        "acked": sorted(sent),
        "latencies_us": {"websocket": [1000, 1000, 1000, 1000, 1000]},
        "last_ns": 0,
        "errors": {},
        "closes": {},
    }

    step = load._tally("guard", 300.0, 1.0, 0.0, sent, [{"late_ms": 0.0}], [arrived])

    assert (step.expected, step.delivered, step.lost) == (6, 5, 1)
    assert not step.clean
