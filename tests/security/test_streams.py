"""The HTTP fallback (contract §5) under the limits of §4: a stream costs its worker no more than
a socket, whatever its client does, and counts against the same per-user caps and budgets.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.contract.conftest import Site
from tests.servers import sqlite_worker
from tests.streamclient import StreamEnded, StreamTab
from tests.wsclient import Account

from .conftest import MIB
from .test_buffers import FAST_POSTING, fill_room, peak_rss, settled_rss, still_served


def test_a_stream_that_stops_reading_a_busy_room_ends_with_4013() -> None:
    with sqlite_worker(**FAST_POSTING) as site:

        async def scenario() -> None:
            poster = Account.sign_up(site.base, "poster")
            poster.create_room("Busy", "busy")
            sleeper = Account.sign_up(site.base, "sleeper")
            tab = await sleeper.open_socket()
            await tab.request(type="join", room="busy")
            await tab.close()
            before = await settled_rss(site, 1)

            stream = await StreamTab.connect(sleeper, site.base, receive_buffer=4096)
            await stream.wait_for_hello()
            # 400 messages of 16 KB (6 MB) pushed at a stream that reads nothing.
            await fill_room(poster, "busy", 400)
            peak = await peak_rss(site, 1)
            # Now it reads: whatever was buffered, then the close event.
            assert await stream.close_code(timeout=30) == 4013
            grown = (peak - before) / MIB
            print(f"stream stopped reading: +{grown:.1f} MiB at peak")
            assert grown < 30, f"the worker grew by {grown:.0f} MiB"
            # It comes back on a new stream and resumes by seq: every message is there.
            again = await StreamTab.connect(sleeper, site.base)
            hello = await again.wait_for_hello()
            assert next(r for r in hello["rooms"] if r["slug"] == "busy")["last_seq"] == 400
            await again.close()

        asyncio.run(scenario())


def test_streams_posting_history_requests_without_reading_cannot_grow_the_worker() -> None:
    with sqlite_worker(**FAST_POSTING) as site:

        async def scenario() -> None:
            owner = Account.sign_up(site.base, "owner")
            owner.create_room("Big", "big")
            greedy = Account.sign_up(site.base, "greedy")
            bystander = Account.sign_up(site.base, "bystander")
            for account in (greedy, bystander):
                tab = await account.open_socket()
                assert (await tab.request(type="join", room="big"))["type"] == "joined"
                await tab.close()
            # 120 messages of 16 KB: each `history` of 100 is a reply of 1 MiB.
            await fill_room(owner, "big", 120)
            before = await settled_rss(site, 1)

            streams = []
            for _ in range(10):
                stream = await StreamTab.connect(greedy, site.base, receive_buffer=4096)
                await stream.wait_for_hello()
                streams.append(stream)
            batch = json.dumps([{"type": "history", "room": "big"}] * 50).encode()

            async def flood(stream: StreamTab) -> None:
                for _ in range(20):
                    await stream.post(batch)

            flooding = asyncio.gather(*(flood(s) for s in streams))
            peak, latencies = await asyncio.gather(
                peak_rss(site, 12), still_served(bystander, "big", 12)
            )
            await flooding
            statuses = [status for s in streams for status in s.statuses]
            for stream in streams:
                stream.writer.transport.abort()
            after = await settled_rss(site)
            grown = (peak - before) / MIB
            print(
                f"streams asking without reading: +{grown:.1f} MiB at peak, "
                f"+{(after - before) / MIB:.1f} MiB after, bystander {max(latencies):.3f} s, "
                f"{statuses.count(429)} of {len(statuses)} POSTs answered 429"
            )
            # Held back: the frames wait on the worker (bounded), their replies one at a time.
            assert 429 in statuses
            assert set(statuses) <= {202, 429}
            assert grown < 60, f"the worker grew by {grown:.0f} MiB"
            assert max(latencies) < 2, f"the bystander waited {max(latencies):.1f} s"
            assert (after - before) / MIB < 60

        asyncio.run(scenario())


@pytest.mark.redis
async def test_streams_and_sockets_share_the_32_per_user_and_the_message_budget(
    chat: Site,
) -> None:
    alice, bob = await chat.people("alice", "bob")
    room = await alice.create_room(chat.unique("room"))
    # 16 sockets and 16 streams, on both workers.
    for n in range(16):
        await alice.tab(1 + n % 2)
    chat.transport = "stream"
    try:
        streams = [await alice.tab(1 + n % 2) for n in range(16)]
        for worker in (1, 2):
            # The 33rd: closed before `hello`, its only event the close.
            extra = await StreamTab.connect(alice.account, chat.urls[worker - 1])
            with pytest.raises(StreamEnded) as ended:
                await extra.wait_for_hello(timeout=10)
            assert ended.value.code == 4029
            await extra.close()
        other = await bob.tab(2)
        assert (await other.request(type="ping"))["type"] == "pong"
    finally:
        chat.transport = "socket"

    # One budget per user, whatever carries the frames: a burst of 20 across socket and stream.
    sock = chat.sockets[0]
    replies = await asyncio.gather(
        *(
            (sock if n % 2 else streams[n % 16]).request(type="send", room=room, body=f"{n}")
            for n in range(30)
        )
    )
    acked = [r for r in replies if r["type"] == "ack"]
    assert 20 <= len(acked) <= 24, len(acked)
    assert {r["code"] for r in replies if r["type"] == "error"} == {"rate_limited"}
