"""The load generator's HTTP-stream client (bench/loadgen.py): it reads what the server sends
however the bytes arrive, half the clients and half the senders stream when asked, and over a
real worker not one delivery is lost."""

from __future__ import annotations

from collections import Counter

from bench.loadgen import STREAM, WEBSOCKET, Dechunker, LoadGenerator
from bench.server import Deployment
from bench.site import sign_up_owner_with_rooms

EVENTS = b"id: 1\ndata: {}\n\n: keep-alive\n\nid: 2\ndata: [1, 2]\n\n"


def _chunked(body: bytes, size: int) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def test_a_chunked_body_reads_the_same_however_it_is_split():
    wire = _chunked(EVENTS, 7)
    for piece in (1, 2, 3, 5, len(wire)):
        body = Dechunker()
        read = b"".join(body.feed(wire[i : i + piece]) for i in range(0, len(wire), piece))
        assert read == EVENTS, piece
        assert body.ended


def test_half_the_clients_and_half_the_senders_stream():
    load = LoadGenerator(["ws://127.0.0.1:9/ws/chat/", "ws://127.0.0.1:10/ws/chat/"], processes=2)
    load.handles = [None, None]  # type: ignore[list-item] # plan() only counts them
    rooms = ["a"] * 40 + ["b"] * 40

    plans = load.plan([f"s{i}" for i in range(80)], rooms, senders_per_room=4, stream_share=0.5)

    specs = [spec for plan in plans for spec in plan]
    assert Counter((s.room, s.transport) for s in specs) == {
        ("a", WEBSOCKET): 20,
        ("a", STREAM): 20,
        ("b", WEBSOCKET): 20,
        ("b", STREAM): 20,
    }
    assert Counter((s.room, s.transport) for s in specs if s.sender) == {
        ("a", WEBSOCKET): 2,
        ("a", STREAM): 2,
        ("b", WEBSOCKET): 2,
        ("b", STREAM): 2,
    }
    for plan in plans:
        assert Counter(s.transport for s in plan) == {WEBSOCKET: 20, STREAM: 20}
    streams = [s for s in specs if s.transport == STREAM]
    assert {s.url for s in streams} == {"http://127.0.0.1:9", "http://127.0.0.1:10"}
    # Every stream POSTs through the other worker.
    assert all(s.post_url != s.url for s in streams)


async def test_no_delivery_is_lost_over_streams() -> None:
    with Deployment(workers=1, name="streamguard") as site:
        slugs, _ = sign_up_owner_with_rooms(site.http_urls[0], 2)
        rooms = [slugs[i * 2 // 40] for i in range(40)]
        keys = [key for _, key in site.seed_users("sg", 40, rooms)]
        async with LoadGenerator(site.ws_urls, processes=0, server_pids=site.worker_pids) as load:
            plan = load.plan(keys, rooms, senders_per_room=4, stream_share=0.5)
            connected = await load.connect(plan)
            assert connected.opened == 40, connected.failed
            await load.join(members=True)

            step = await load.step("guard", 400, duration=2.0, drain=30.0)

    assert step.acked == step.sent > 0, step.errors
    assert not step.errors and not step.closes
    assert step.delivered == step.expected == step.sent * 20
    assert step.transports[STREAM]["delivered"] == step.sent * 10
    assert step.transports[STREAM]["acks"] == step.sent // 2
